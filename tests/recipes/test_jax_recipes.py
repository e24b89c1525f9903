"""The BERT and ResNet recipes on the JAX backend (``KERAS_BACKEND=jax``), from the same flags
and configurations as on TensorFlow: over 8 virtual CPU devices under
``keras.distribution.DataParallel`` (with gradient accumulation) they train as one device at the
same global batch; a run killed with SIGKILL resumes from its orbax checkpoint to the
uninterrupted run's weights; phase 2 starts from phase 1; and TensorFlow and JAX reach the same
validation accuracy.

Every run is a separate process, as a user starts it (the backend and the device count are
fixed when JAX starts).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.docs_support import require

from .bert_runs import ROOT, assert_same_weights, environment, history, jax_values, pretrain

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _jax_installed():
    import importlib.util

    require(importlib.util.find_spec("jax") is not None
            and importlib.util.find_spec("orbax") is not None,
            "JAX and orbax-checkpoint (scripts/setup.sh --test)")


def _bert(data_dir, output_dir, *args, **kwargs):
    return pretrain(data_dir, output_dir, *args, backend="jax", **kwargs)


def test_bert_over_8_devices_with_accumulation_equals_one_device(bert_data_dir, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    out = _bert(bert_data_dir, one).stdout
    assert ("JAX one device, 1 cpu device(s): global batch 16 = 1 replica(s) x 16 per replica "
            "x 1 accumulation step(s)") in out
    out = _bert(bert_data_dir, many, "--cpu_replicas=8", "--max_per_replica_batch_size=1").stdout
    assert ("JAX DataParallel, 8 cpu device(s): global batch 16 = 8 replica(s) x 1 per replica "
            "x 2 accumulation step(s)") in out
    config = json.loads((many / "config.json").read_text())
    assert config["keras_backend"] == "jax" and config["strategy"] == "DataParallel"
    assert config["batch_plan"]["accumulation_steps"] == 2
    # The same 16 examples per step: one pass on one device, or two passes of 8 x 1 summed
    # inside the compiled step and across the devices. Measured 1.2e-7 after 6 LAMB steps
    # (weights up to 1.0); float32 summation order only.
    reference = jax_values(one)
    assert len(reference) == 46  # BERT-tiny with both heads
    assert_same_weights(reference, jax_values(many), atol=1e-5)
    moved = max(abs(r["loss"] - history(one)[0]["loss"]) for r in history(one))
    assert moved > 1e-3  # the steps changed the model
    assert [r["loss"] for r in history(one)] == pytest.approx(
        [r["loss"] for r in history(many)], rel=1e-5)


def test_bert_killed_on_2_devices_resumes_to_the_same_weights_and_starts_phase_two(
        bert_data_dir, tmp_path):
    # Dropout on (its seed states are in the checkpoint) and held-out evaluation at 3 and 6.
    args = ("--cpu_replicas=2", "--dropout_rate=0.1", "--eval_every=3",
            f"--eval_files={bert_data_dir}/seq128/heldout-*")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _bert(bert_data_dir, whole, *args)
    proc = _bert(bert_data_dir, killed, *args, "--kill_at_step=6", check=False)
    assert proc.returncode == -9  # SIGKILL: no exit checkpoint
    assert sorted(os.listdir(killed / "checkpoints")) == ["2", "4"]
    assert [r["step"] for r in history(killed) if "loss" in r] == [1, 2, 3, 4, 5]
    out = _bert(bert_data_dir, killed, *args).stdout
    assert f"resumed from {killed}/checkpoints/4" in out
    assert "data position: skipped the 4 passes of the 4 steps done" in out
    assert [(r["step"], "loss" in r) for r in history(killed)] == [
        (r["step"], "loss" in r) for r in history(whole)]
    for item in ("weights", "model_state", "optimizer"):
        assert_same_weights(jax_values(whole, item), jax_values(killed, item), atol=1e-6)
    final = [r for r in history(whole) if "eval_mlm_accuracy" in r][-1]
    resumed = [r for r in history(killed) if "eval_mlm_accuracy" in r][-1]
    assert resumed["eval_loss"] == pytest.approx(final["eval_loss"], abs=1e-6)

    # Phase 2 (sequences of 512) on one device starts from phase 1's weights on two devices.
    phase2 = tmp_path / "phase2"
    out = _bert(bert_data_dir, phase2, f"--init_checkpoint={whole}", "--train_steps=2",
                seq=512).stdout
    assert f"model weights from {whole}/checkpoints/6" in out
    assert len(history(phase2)) == 2
    # A phase 1 that stopped early is refused, naming both steps.
    early = tmp_path / "early"
    _bert(bert_data_dir, early, "--kill_at_step=3", check=False)
    proc = _bert(bert_data_dir, tmp_path / "phase2b", f"--init_checkpoint={early}",
                 "--train_steps=2", seq=512, check=False)
    assert proc.returncode == 1
    assert f"--init_checkpoint={early}: that run stopped at step 2 of its 6" in proc.stderr


def _resnet(record_dir, output_dir, *args, backend="jax", check=True):
    command = [sys.executable, "-m", "recipes.resnet.train", "--config=fashion_lamb_2k",
               "--model=resnet8", f"--train_files={record_dir}/train-*",
               f"--output_dir={output_dir}", "--global_batch_size=32", "--train_steps=6",
               "--log_every=1", "--checkpoint_every=2", "--noprogress", "--shuffle_buffer=64",
               *args]
    proc = subprocess.run(command, env=environment(backend=backend), capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_resnet_over_8_devices_equals_one_device_and_resumes_after_sigkill(record_dir,
                                                                           tmp_path):
    one, many, killed = tmp_path / "one", tmp_path / "many", tmp_path / "killed"
    _resnet(record_dir, one)
    _resnet(record_dir, many, "--cpu_replicas=8")
    # Under DataParallel the step is one program over the global batch: batch normalization
    # takes its statistics over all 32 examples, as on one device (TensorFlow's mirrored
    # replicas would each take their own 4). Weights and moving statistics alike.
    for item in ("weights", "model_state"):
        assert_same_weights(jax_values(one, item), jax_values(many, item), atol=1e-5)
    proc = _resnet(record_dir, killed, "--cpu_replicas=8", "--kill_at_step=3", check=False)
    assert proc.returncode == -9
    out = _resnet(record_dir, killed, "--cpu_replicas=8").stdout
    assert f"resumed from {killed}/checkpoints/2" in out
    # The same shuffle position and the same crops and flips (seeded by the example count).
    for item in ("weights", "model_state", "optimizer"):
        assert_same_weights(jax_values(many, item), jax_values(killed, item), atol=1e-6)
