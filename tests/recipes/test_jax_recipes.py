"""The BERT and ResNet recipes on the JAX backend (``KERAS_BACKEND=jax``), from the same flags
and configurations as on TensorFlow: over 8 virtual CPU devices under
``keras.distribution.DataParallel`` (with gradient accumulation) they train as one device at the
same global batch, and BERT under ``ModelParallel`` as unsharded; a run killed with SIGKILL
resumes from its orbax checkpoint to the uninterrupted run's weights; phase 2 starts from phase
1; bfloat16 keeps float32 variables and the trust ratios reach TensorBoard; and TensorFlow and
JAX reach the same validation accuracy.

Every run is a separate process, as a user starts it (the backend and the device count are
fixed when JAX starts).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.docs_support import require

from .bert_runs import (ROOT, assert_same_weights, command, environment,
                        environment_without_tensorflow, event_tags, free_ports, history,
                        jax_values, partition_specs, pretrain)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _jax_installed():
    import importlib.util

    require(importlib.util.find_spec("jax") is not None
            and importlib.util.find_spec("orbax") is not None,
            "JAX and orbax-checkpoint (scripts/setup.sh --test)")


def _bert(data_dir, output_dir, *args, **kwargs):
    return pretrain(data_dir, output_dir, *args, backend="jax", **kwargs)


def test_bert_data_and_model_parallel_over_8_devices_equal_one_device(bert_data_dir, tmp_path):
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
    # ModelParallel on a (4 batch x 2 model) mesh: the kernels split as recipes.bert.layout
    # says, each pass's 8 examples split along the batch axis. Measured 1.2e-7.
    sharded = tmp_path / "sharded"
    out = _bert(bert_data_dir, sharded, "--cpu_replicas=8", "--model_parallel=2",
                "--max_per_replica_batch_size=2").stdout
    assert ("JAX ModelParallel, 8 cpu device(s) as batch 4 x model 2: global batch 16 = "
            "4 replica(s) x 2 per replica x 2 accumulation step(s)") in out
    assert_same_weights(reference, jax_values(sharded), atol=1e-5)
    specs = partition_specs(sharded)  # trailing None (whole) axes dropped
    assert specs[0] == (None, "model")  # word embeddings, along the hidden axis
    assert specs[5] == (None, "model") and specs[6] == ("model",)  # query kernel, bias: by head
    assert specs[11] == ("model",)  # attention output kernel, by head
    assert specs[15] == (None, "model") and specs[17] == ("model",)  # feed-forward
    assert specs[13] == ()  # a layer norm: whole on every device
    assert sum("model" in s for s in specs) == 2 * 10 + 1  # 10 per block, and the embeddings
    slots = partition_specs(sharded, "optimizer")
    assert sum("model" in s for s in slots) >= 2 * 21  # LAMB's m and v follow their weights

    moved = max(abs(r["loss"] - history(one)[0]["loss"]) for r in history(one))
    assert moved > 1e-3  # the steps changed the model
    assert [r["loss"] for r in history(one)] == pytest.approx(
        [r["loss"] for r in history(many)], rel=1e-5)


def test_bert_killed_on_2_devices_with_accumulation_resumes_exactly_and_starts_phase_two(
        bert_data_dir, tmp_path):
    # Dropout on (its seed states are in the checkpoint) and held-out evaluation at 3 and 6.
    # Each step accumulates 2 passes of 2 devices x 4 examples.
    args = ("--cpu_replicas=2", "--max_per_replica_batch_size=4", "--dropout_rate=0.1",
            "--eval_every=3", f"--eval_files={bert_data_dir}/seq128/heldout-*")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _bert(bert_data_dir, whole, *args)
    proc = _bert(bert_data_dir, killed, *args, "--kill_at_step=6", check=False)
    assert proc.returncode == -9  # SIGKILL: no exit checkpoint
    assert sorted(os.listdir(killed / "checkpoints")) == ["2", "4"]
    assert [r["step"] for r in history(killed) if "loss" in r] == [1, 2, 3, 4, 5]
    out = _bert(bert_data_dir, killed, *args).stdout
    assert f"resumed from {killed}/checkpoints/4" in out
    assert "data position: skipped the 8 passes of the 4 steps done" in out
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


def test_bert_from_numpy_shards_runs_without_tensorflow_and_resumes_exactly(tutorial_dir,
                                                                            tmp_path):
    # Where JAX is installed and TensorFlow is not: the shards written by tf-lamb-bert-data,
    # read by grain, on 2 devices x 4 examples x 2 accumulation passes, dropout on, held-out
    # evaluation at 3 and 6. Killed after step 5 and restarted, the run goes straight to its
    # batch and ends where the uninterrupted one does.
    env = environment_without_tensorflow(tmp_path / "no_tensorflow", backend="jax")
    data = tmp_path / "data"
    # The data tool needs no KERAS_BACKEND: it names an installed backend itself (and no
    # keras.json of this machine's names one for it).
    data_env = {k: v for k, v in env.items() if k != "KERAS_BACKEND"}
    data_env["KERAS_HOME"] = str(tmp_path / "keras_home")
    made = subprocess.run(
        [sys.executable, "-m", "recipes.bert.create_pretraining_data", "--output_format=npy",
         f"--input_dir={tutorial_dir}", f"--output_dir={data}", "--vocab_size=1000",
         "--duplication_factor=1", "--num_shards=2", "--heldout_fraction=0.15",
         "--max_seq_lengths=128", "--max_predictions_per_seq=20"],
        env=data_env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert made.returncode == 0, made.stderr[-3000:]
    assert sorted(p.name for p in (data / "seq128").glob("*.npy")) == [
        "heldout-00000-of-00001.npy", "train-00000-of-00002.npy", "train-00001-of-00002.npy"]
    args = ("--cpu_replicas=2", "--max_per_replica_batch_size=4", "--dropout_rate=0.1",
            "--eval_every=3", f"--eval_files={data}/seq128/heldout-*")

    def run(output_dir, *more):
        return subprocess.run(command(data, output_dir, *args, *more), env=env,
                              capture_output=True, text=True, timeout=600, cwd=ROOT)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run(whole)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 replica(s) x 4 per replica x 2 accumulation step(s)" in done.stdout
    assert run(killed, "--kill_at_step=5").returncode == -9
    done = run(killed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {killed}/checkpoints/4" in done.stdout
    assert [(r["step"], "loss" in r) for r in history(killed)] == [
        (r["step"], "loss" in r) for r in history(whole)]
    for item in ("weights", "model_state", "optimizer"):
        assert_same_weights(jax_values(whole, item), jax_values(killed, item), atol=1e-6)
    losses = [r["loss"] for r in history(whole) if "loss" in r]
    assert len(losses) == 6 and all(7.0 < x < 8.0 for x in losses)  # about ln(1000) + ln 2
    final = [r for r in history(whole) if "eval_loss" in r]
    assert [r["step"] for r in final] == [3, 6]
    resumed = [r for r in history(killed) if "eval_loss" in r][-1]
    assert resumed["eval_loss"] == pytest.approx(final[-1]["eval_loss"], abs=1e-6)
    # TensorBoard through tensorboardX: the losses and the trust ratios.
    assert {"loss", "learning_rate", "trust_ratio", "trust_ratio/median"} <= event_tags(
        whole / "train")


def test_two_hosts_on_localhost_resume_after_sigkill_and_equal_one_device(bert_data_dir,
                                                                           tmp_path):
    # Two processes of 2 virtual devices each, joined by jax.distributed (gloo on the CPU).
    # Without the example shuffle each host reads its own file in order and one device reads
    # both interleaved: each global batch of 16 holds the same examples in both runs.
    steps = ("--train_steps=4", "--warmup_steps=1", "--shuffle_buffer=0", "--checkpoint_every=2")
    one, two = tmp_path / "one", tmp_path / "two"
    _bert(bert_data_dir, one, *steps)

    def cluster_run(*args):  # two hosts of 2 devices, unless args say otherwise
        addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
        hosts = [subprocess.Popen(
            command(bert_data_dir, two, *steps, "--strategy=multi_worker", "--cpu_replicas=2",
                    *args),
            env=dict(environment(backend="jax"), KERAS_DISTRIBUTION_JOB_ADDRESSES=addresses,
                     KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for i in range(2)]
        outputs = [host.communicate(timeout=900) for host in hosts]
        return [host.returncode for host in hosts], outputs

    codes, _ = cluster_run("--kill_at_step=3")
    assert all(code != 0 for code in codes)  # SIGKILL (or the other host's death noticed)
    assert sorted(os.listdir(two / "checkpoints")) == ["2"]
    codes, outputs = cluster_run()
    assert codes == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    assert ("JAX DataParallel, 4 cpu device(s) on 2 hosts: global batch 16 = 4 replica(s) x 4 "
            "per replica x 1 accumulation step(s)") in outputs[0][0]
    assert all(f"resumed from {two}/checkpoints/2" in out for out, _ in outputs)
    assert [r["step"] for r in history(two)] == [1, 2, 3, 4]  # host 0 logs; killed before 3
    # Same examples, same initialization, another summation order: 4 LAMB steps.
    assert_same_weights(jax_values(one), jax_values(two), atol=1e-5)
    losses = {r["step"]: r["loss"] for r in history(one)}
    assert {r["step"]: r["loss"] for r in history(two)} == pytest.approx(losses, rel=1e-5)

    # ModelParallel across the two hosts' 8 devices: each host's devices form whole rows of
    # the (4 batch x 2 model) mesh, so each host feeds its own batch rows; the held-out pass
    # runs the same batches on both hosts.
    two = tmp_path / "sharded"
    codes, outputs = cluster_run("--cpu_replicas=4", "--model_parallel=2", "--eval_every=2",
                                 f"--eval_files={bert_data_dir}/seq128/heldout-*")
    assert codes == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    assert "8 cpu device(s) on 2 hosts as batch 4 x model 2" in outputs[0][0]
    assert_same_weights(jax_values(one), jax_values(two), atol=1e-5)
    evals = [r for r in history(two) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(7 < r["eval_loss"] < 8 for r in evals)


def test_bert_in_bfloat16_keeps_float32_variables_and_records_trust_ratios(bert_data_dir,
                                                                          tmp_path):
    out = _bert(bert_data_dir, tmp_path, "--precision=mixed_bfloat16", "--train_steps=4",
                "--log_every=2").stdout
    assert "BERT-tiny, seq 128, mixed_bfloat16, XLA steps" in out
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "mixed_bfloat16"
    # bfloat16 compute; the weights and LAMB's slots stay float32 (as on TensorFlow).
    assert {a.dtype.name for a in jax_values(tmp_path).values()} == {"float32"}
    slots = jax_values(tmp_path, "optimizer")
    assert {a.dtype.name for a in slots.values() if a.ndim} == {"float32"}
    losses = [r["loss"] for r in history(tmp_path)]
    assert len(losses) == 2 and all(7.0 < x < 8.0 for x in losses)  # about ln(1000) + ln 2
    assert {"loss", "learning_rate", "trust_ratio", "trust_ratio/median", "weight_norm",
            "update_norm"} <= event_tags(tmp_path / "train")


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


def test_tensorflow_and_jax_reach_the_same_validation_accuracy(miniature_records, tmp_path):
    # The ResNet miniature's configuration (LAMB, untuned sqrt rule and LEGW warmup) at batch
    # 128 for 8 epochs of 4,096 images (256 steps), evaluated on 4,096 validation images.
    args = (f"--eval_files={miniature_records}/validation-*", "--global_batch_size=128",
            "--epochs=8", "--train_steps=0", "--eval_every=0", "--checkpoint_every=1000",
            "--model=resnet8")
    final = {}
    for backend in ("tensorflow", "jax"):
        _resnet(miniature_records, tmp_path / backend, *args, backend=backend)
        final[backend] = history(tmp_path / backend)[-1]
        assert final[backend]["step"] == 256
    # The data order and augmentation are the same tf.data pipeline with the same seed, but
    # each backend draws its own initial weights, so the two runs differ as two seeds do. Measured at seeds 0, 1, 2:
    # TensorFlow 69.60 / 67.87 / 71.58%, JAX 70.43 / 68.12 / 69.46% (loss 1.239 / 1.247 /
    # 1.199 and 1.221 / 1.263 / 1.222); the spread of three seeds on one backend is 3.7
    # points, the bound 4 points (a wrong step lands far below: chance is 10%).
    tf_run, jax_run = final["tensorflow"], final["jax"]
    assert tf_run["eval_accuracy"] > 0.6 and jax_run["eval_accuracy"] > 0.6
    assert abs(tf_run["eval_accuracy"] - jax_run["eval_accuracy"]) <= 0.04
    assert abs(tf_run["eval_loss"] - jax_run["eval_loss"]) <= 0.08


def test_the_bert_large_layout_table_on_the_jax_page_is_the_programs_output():
    from recipes.bert import layout

    page = open(os.path.join(ROOT, "docs", "recipes", "jax.md")).read()
    table = page.split("<!-- layout-table:start -->\n")[1].split("\n<!-- layout-table:end -->")[0]
    assert table == layout.bert_large_table()
    assert "| 2 | 2.53 GiB | 16% | 4 x 2 | 16 x 2 | 64 x 2 | 256 x 2 | 1024 x 2 |" in table


def test_mesh_flags_that_do_not_fit_stop_naming_the_flag(bert_data_dir, record_dir, tmp_path):
    # Checked before any device is touched, on either backend.
    proc = _bert(bert_data_dir, tmp_path / "a", "--model_parallel=3", check=False)
    assert proc.returncode == 1
    assert "error: --model_parallel=3 must divide the model's 2 attention heads" in proc.stderr
    # ResNet has no model-parallel layout; TensorFlow's strategies have no model axis.
    proc = _resnet(record_dir, tmp_path / "b", "--cpu_replicas=2", "--model_parallel=2",
                   check=False)
    assert proc.returncode == 1
    assert "error: --model_parallel=2: this recipe has no model-parallel layout" in proc.stderr
    proc = pretrain(bert_data_dir, tmp_path / "c", "--model_parallel=2", check=False)
    assert proc.returncode == 1
    assert "error: --model_parallel runs on the JAX backend (KERAS_BACKEND=jax)" in proc.stderr


def test_the_gpu_benchmark_runs_on_jax_alone(bert_array_dir, tmp_path):
    # benchmarks/bert_jax.py as on the GPU machine, where neither TensorFlow nor grain is
    # installed: every process of the benchmark runs with both made unimportable, on 2
    # virtual devices, from the recipe's NumPy shards.
    env = environment_without_tensorflow(tmp_path / "no_tensorflow", backend="jax",
                                         also=("grain",))
    env["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bert_jax.py"),
         f"--train_files={bert_array_dir}/seq128/train-*", "--max_examples=300",
         "--model_size=tiny", "--per_device_batch=4", "--steps=2", "--warmup=1",
         f"--output={tmp_path / 'rows.json'}"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["optimizer"] for r in rows] == ["lamb", "adamw"]
    assert all(r["devices"] == "2 x cpu" and r["global_batch"] == 8 for r in rows)
    assert all(r["examples_per_second"] > 0 and 7 < r["last_loss"] < 12 for r in rows)
    assert "| lamb | 2 x cpu | 8 |" in done.stdout and "| 1.00 |" in done.stdout
