"""Tests of BERT pre-training (recipes/bert/pretrain.py) on records made from the real corpus:
a few steps of each phase, resumption after SIGKILL, the task's losses, the named configurations
and the errors for bad input (test_bert_distributed.py has the runs under tf.distribute).

Each training run is a separate process, as a user runs it (and as a killed run must be
resumed); runs that must stop on bad input call the same ``run()`` in this process, one of them
through the command line.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from recipes.bert import configs, input_pipeline
from recipes.bert import model as model_lib
from recipes.bert import pretrain as pretrain_lib
from recipes.bert import pretraining
from recipes.common import batching, distribute
from tf_lamb.callbacks import SummariesNotAvailableError

from .bert_runs import ROOT, assert_same_weights, command, environment, history, pretrain, weights

pytestmark = pytest.mark.slow


def pretrain_error(data_dir, output_dir, *args, seq=128):
    """Runs the program in this process (faster than a fresh one) on input it must reject;
    returns the error's message, which the command line prints after ``error:``."""
    fv = flags.FlagValues()
    pretrain_lib.define_flags(fv)
    fv(command(data_dir, output_dir, *args, seq=seq)[2:])  # argv from the module name on
    with pytest.raises((ValueError, FileNotFoundError, tf.errors.DataLossError)) as error:
        pretrain_lib.run(fv, log=lambda *_: None)
    return str(error.value)


def phase_one_args(data_dir):
    """Dropout (its random state is checkpointed), XLA-compiled passes and held-out
    evaluation at steps 3 and 6."""
    return ("--dropout_rate=0.1", "--jit_compile", f"--eval_files={data_dir}/seq128/heldout-*",
            "--eval_every=3")


@pytest.fixture(scope="module")
def phase_one(bert_data_dir, tmp_path_factory):
    """A phase-1 run of 6 steps, uninterrupted: ``(output_dir, CompletedProcess)``."""
    output_dir = tmp_path_factory.mktemp("phase1")
    return output_dir, pretrain(bert_data_dir, output_dir, *phase_one_args(bert_data_dir))


def test_phase_one_trains_and_phase_two_starts_from_it(bert_data_dir, phase_one, tmp_path):
    (phase1, out), phase2 = phase_one, tmp_path / "phase2"
    assert "global batch 16 = 1 replica(s) x 16 per replica x 1 accumulation step(s)" in out.stdout
    assert "float32, XLA passes" in out.stdout
    lines = history(phase1)
    train = [r for r in lines if "loss" in r]
    evals = [r for r in lines if "eval_mlm_accuracy" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(np.isfinite(r["loss"]) for r in train)
    assert train[-1]["loss"] < train[0]["loss"]  # 6 steps already learn
    for r in train + evals:  # both parts of the loss reach the history
        prefix = "eval_" if "eval_loss" in r else ""
        parts = r[prefix + "mlm_loss"] + r[prefix + "nsp_loss"]
        assert abs(r[prefix + "loss"] - parts) <= 1e-5 * parts
    config = json.loads((phase1 / "config.json").read_text())
    assert config["optimizer"] == "lamb" and config["global_batch_size"] == 16
    assert os.path.isfile(phase1 / "train" / os.listdir(phase1 / "train")[0])

    out = pretrain(bert_data_dir, phase2, f"--init_checkpoint={phase1}", "--train_steps=2",
                   "--warmup_steps=1", seq=512)
    assert f"model weights from {phase1}/ckpt-6" in out.stdout
    lines = history(phase2)
    # A new optimizer: the step count (and so the LR schedule) starts again from 0. The log
    # after step 1 shows the LR of step 2 of 2: peak * (1 - 1/2), the peak being the sqrt
    # rule's 1e-2 * sqrt(16 / 64).
    assert [r["step"] for r in lines] == [1, 2]
    assert lines[0]["learning_rate"] == pytest.approx(5e-3 * 0.5, rel=1e-6)

    # A phase 1 that stopped before its last step is not taken for a finished one.
    unfinished = tmp_path / "unfinished"
    shutil.copytree(phase1, unfinished)
    (unfinished / "config.json").write_text(json.dumps({**config, "train_steps": 10}))
    out = pretrain(bert_data_dir, tmp_path / "phase2b", f"--init_checkpoint={unfinished}",
                   "--train_steps=2", "--warmup_steps=1", seq=512, check=False)
    assert out.returncode != 0
    assert (f"--init_checkpoint={unfinished}: that run stopped at step 6 of its 10; resume it "
            f"to the end first, or pass --init_checkpoint={unfinished}/ckpt-6") in out.stderr


@pytest.mark.parametrize("args", [
    ("--optimizer=lans", "--schedule=lans", "--constant_steps=1"),
    ("--optimizer=adamw", "--global_clipnorm=0"),
])
def test_lans_with_its_schedule_and_the_adamw_baseline_train(bert_data_dir, tmp_path, args):
    pretrain(bert_data_dir, tmp_path, "--train_steps=4", "--warmup_steps=1", *args)
    lines = history(tmp_path)
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in lines) and lines[-1]["loss"] < lines[0]["loss"]
    name = json.loads((tmp_path / "config.json").read_text())["optimizer"]
    assert name == args[0].split("=")[1]
    # The LR logged after step k is the schedule at k (the next step's). LANS: warmup 1 step,
    # the peak held for 1 constant step, then linear decay to 0 at step 4. The polynomial
    # schedule decays over all steps from 0 (Google BERT's convention): peak * (1 - k/4).
    lr = [r["learning_rate"] for r in lines]
    peak = 1e-2 * (16 / 64) ** 0.5
    expected = [1, 1, 0.5, 0] if name == "lans" else [0.75, 0.5, 0.25, 0]
    assert lr == pytest.approx([peak * e for e in expected], rel=1e-6, abs=1e-12)


def test_resume_after_sigkill_equals_the_uninterrupted_run(bert_data_dir, phase_one, tmp_path):
    (whole, _), killed = phase_one, tmp_path / "killed"
    args = phase_one_args(bert_data_dir)
    # Killed while step 6 runs: step 5 is logged but not checkpointed.
    proc = pretrain(bert_data_dir, killed, *args, "--kill_at_step=6", check=False)
    assert proc.returncode == -9  # SIGKILL: no exit checkpoint
    assert tf.train.latest_checkpoint(str(killed)).endswith("ckpt-4")
    assert [r["step"] for r in history(killed) if "loss" in r] == [1, 2, 3, 4, 5]
    out = pretrain(bert_data_dir, killed, *args)
    assert "resumed from" in out.stdout and "ckpt-4" in out.stdout
    # Step 5 ran again and is logged once, as in the uninterrupted run.
    assert [(r["step"], "loss" in r) for r in history(killed)] == [
        (r["step"], "loss" in r) for r in history(whole)]
    # Same step, LR and data position: the weights repeat to float rounding (the same
    # kernels on the same data; 1e-6 allows for a different thread interleaving).
    assert_same_weights(weights(whole), weights(killed), atol=1e-6)
    lr = {r["step"]: r["learning_rate"] for r in history(whole) if "learning_rate" in r}
    resumed = [r for r in history(killed) if r["step"] == 6]
    assert {r["step"]: r["learning_rate"] for r in resumed if "learning_rate" in r} == {6: lr[6]}
    # The held-out evaluation after the resumed step 6 sees the same weights.
    evals = [r["eval_mlm_accuracy"] for r in history(whole) if "eval_mlm_accuracy" in r]
    assert [r["eval_mlm_accuracy"] for r in resumed if "eval_mlm_accuracy" in r] == \
        pytest.approx(evals[-1:], abs=1e-6)
    # Without the iterator in the checkpoint (as on a TPU): the data are read again and the
    # passes of the 4 finished steps skipped, to the same weights; resumed with the default
    # --resume_data=iterator (as when a TPU run moves to GPUs), it skips too.
    skipped = tmp_path / "skipped"
    pretrain(bert_data_dir, skipped, *args, "--kill_at_step=6", "--resume_data=skip", check=False)
    out = pretrain(bert_data_dir, skipped, *args)
    assert "data position: skipped the 4 passes of the 4 steps done" in out.stdout
    assert_same_weights(weights(whole), weights(skipped), atol=1e-6)


def test_bad_inputs_stop_with_the_flag_or_file_named(bert_data_dir, tmp_path):
    # The command line: exit status 1 and the message on stderr.
    proc = pretrain(bert_data_dir, tmp_path / "a", "--train_files=/nonexistent/*", check=False)
    assert proc.returncode == 1
    assert "error: --train_files: no file matches '/nonexistent/*'" in proc.stderr
    # The other cases in this process: the same run() behind the command line.
    message = pretrain_error(bert_data_dir, tmp_path / "b", "--vocab_size=500")
    assert "does not fit the model's --vocab_size=500" in message
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    source = sorted((bert_data_dir / "seq128").glob("train-*"))[0]
    raw = source.read_bytes()
    (corrupt / "train-00000-of-00001.tfrecord").write_bytes(raw[:5000] + b"\0" * 64 + raw[5064:])
    metadata = bert_data_dir / "seq128" / "metadata.json"
    (corrupt / "metadata.json").write_text(metadata.read_text())
    message = pretrain_error(bert_data_dir, tmp_path / "c", f"--train_files={corrupt}/train-*")
    # The bytes at 5,000 lie in the first 100 records, which are checked before training.
    assert "train-00000-of-00001.tfrecord: corrupt record" in message
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("ckpt-*"))


WITHOUT_TENSORBOARD = """
import runpy, sys
sys.modules["tensorboard.summary.v2"] = None  # what tf.summary imports at each write
sys.modules["tensorboardX"] = None  # the writer without TensorFlow
sys.argv = sys.argv[1:]
runpy.run_module("recipes.bert.pretrain", run_name="__main__")
"""


def test_without_tensorboard_the_run_stops_before_writing_anything(tmp_path, monkeypatch):
    # tf-lamb[recipes] beside tensorflow-cpu, which does not bring TensorBoard: the run must
    # stop at once, not at its first summary (TBNotInstalledError) with files half written.
    data_dir, output_dir = tmp_path / "data", tmp_path / "run"
    argv = command(data_dir, output_dir)
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TENSORBOARD, *argv[2:]],
                          env=environment(), capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: This recipe" in proc.stderr and "TensorBoard is not installed" in proc.stderr
    assert "pip install tf-lamb[recipes]" in proc.stderr
    assert not output_dir.exists()
    # The same run() in this process.
    monkeypatch.setitem(sys.modules, "tensorboard.summary.v2", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    fv = flags.FlagValues()
    pretrain_lib.define_flags(fv)
    fv(argv[2:])
    with pytest.raises(SummariesNotAvailableError, match="tf-lamb\\[recipes\\]"):
        pretrain_lib.run(fv, log=lambda *_: None)
    assert not output_dir.exists()


def test_records_that_do_not_fit_the_flags_stop_naming_the_file_and_flag(bert_data_dir, tmp_path):
    # Phase 2's shapes on phase 1's records.
    message = pretrain_error(bert_data_dir, tmp_path / "a", "--max_seq_length=512",
                             "--max_predictions_per_seq=80")
    assert "its records hold 128 `input_ids`, not --max_seq_length=512" in message
    source = sorted((bert_data_dir / "seq128").glob("train-*"))[0]
    # The first record corrupt (its length field): named before training starts.
    broken = tmp_path / "broken"
    broken.mkdir()
    raw = source.read_bytes()
    (broken / "train-0.tfrecord").write_bytes(raw[:2] + b"\xff" * 6 + raw[8:])
    message = pretrain_error(bert_data_dir, tmp_path / "b", f"--train_files={broken}/train-*",
                             "--vocab_size=1000")
    assert "train-0.tfrecord: corrupt record" in message
    # No metadata.json: the token ids themselves are checked against --vocab_size.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "train-0.tfrecord").write_bytes(raw)
    message = pretrain_error(bert_data_dir, tmp_path / "c", f"--train_files={bare}/train-*",
                             "--vocab_size=500")
    assert "does not fit the model's --vocab_size=500" in message and "train-0.tfrecord" in message
    # Good records first, then records of the other phase: the parse error met while
    # training is traced back to the file.
    long = sorted((bert_data_dir / "seq512").glob("train-*"))[0]
    records_128 = list(tf.data.TFRecordDataset(str(source)).take(100).as_numpy_iterator())
    records_512 = list(tf.data.TFRecordDataset(str(long)).take(200).as_numpy_iterator())
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    with tf.io.TFRecordWriter(str(mixed / "train-0.tfrecord")) as writer:
        for record in records_128 + records_512:
            writer.write(record)
    message = pretrain_error(bert_data_dir, tmp_path / "d", f"--train_files={mixed}/train-*",
                             "--vocab_size=1000")
    assert "--train_files: bad record in" in message and "train-0.tfrecord" in message


def test_task_losses_equal_a_numpy_cross_entropy_of_the_model_outputs(bert_data_dir):
    # Google BERT's losses: per example, the mean cross-entropy over its real masked positions
    # (masked_lm_weights), plus the next-sentence cross-entropy; summed over the batch.
    vocab = json.loads((bert_data_dir / "seq128" / "metadata.json").read_text())["vocab_size"]
    model = model_lib.build(model_lib.BertConfig.from_size("tiny", vocab))
    files = sorted(str(p) for p in (bert_data_dir / "seq128").glob("train-*"))
    batch = next(iter(input_pipeline.make_dataset(files, 128, 20, 8, training=False)))
    loss_sum, metrics = pretraining.pretraining_task(model, batch, False)
    outputs = model(batch, training=False)

    def cross_entropy(logits, labels):
        logits = np.asarray(logits, np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        return -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]

    weights = batch["masked_lm_weights"].numpy().astype(np.float64)
    mlm = cross_entropy(outputs["mlm_logits"], batch["masked_lm_ids"].numpy())
    mlm = (mlm * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
    nsp = cross_entropy(outputs["nsp_logits"], batch["next_sentence_labels"].numpy()[:, 0])
    assert weights.sum(1).min() >= 1 and 0 < batch["next_sentence_labels"].numpy().sum() < 8
    # float32 softmax over 1,000 classes against float64: relative 1e-5.
    np.testing.assert_allclose(float(metrics["mlm_loss"]), mlm.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["nsp_loss"]), nsp.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(loss_sum), mlm.sum() + nsp.sum(), rtol=1e-5)


def test_batch_plan_arithmetic_and_errors():
    plan = batching.plan_batch(65536, 8, 64)
    assert (plan.replicas, plan.per_replica_batch_size, plan.accumulation_steps) == (8, 64, 128)
    assert batching.plan_batch(96, 2, 20).per_replica_batch_size == 16  # 48 = 3 x 16
    with pytest.raises(ValueError, match="--global_batch_size=10 does not divide across 4"):
        batching.plan_batch(10, 4, 8)
    with pytest.raises(ValueError, match="--strategy must be one of"):
        distribute.make_strategy("gpus")


def test_named_configs_mirror_the_paper_and_check_their_fields():
    phase1, phase2 = configs.CONFIGS["bert_large_phase1_64k"], configs.CONFIGS["bert_large_phase2_32k"]
    assert (phase1.global_batch_size, phase1.max_seq_length) == (65536, 128)
    assert (phase2.global_batch_size, phase2.max_seq_length) == (32768, 512)
    assert phase1.train_steps + phase2.train_steps == 8601  # NVIDIA's 7,038 + 1,563
    assert phase1.weight_decay == 0.01 and phase1.epsilon == 1e-6 and phase1.global_clipnorm == 1.0
    untuned = configs.CONFIGS["bert_large_32k_untuned"]
    assert untuned.peak_learning_rate == pytest.approx(5e-3)
    assert untuned.warmup_steps == untuned.train_steps // 5  # LEGW's ratio at 32K: 1/5
    assert configs.CONFIGS["tiny_lamb_1k"].peak_learning_rate == pytest.approx(1e-2 * 4)
    # LEGW: warmup examples x 16 (the batch ratio), the same peak.
    base, legw = configs.CONFIGS["tiny_lamb_64"], configs.CONFIGS["tiny_lamb_1k_legw"]
    examples = [c.warmup_steps * c.global_batch_size for c in (base, legw)]
    assert examples[1] == 16 * examples[0]
    assert legw.peak_learning_rate == pytest.approx(1e-2 * 4)
    # The long pair: 4x the steps, 1/8 of them at 16x the batch, the same rule and warmups.
    small = configs.CONFIGS["tiny_adamw_64_long"]
    large = configs.CONFIGS["tiny_lamb_1k_legw_long"]
    assert small.train_steps == 8 * large.train_steps
    assert small.train_steps == 4 * configs.CONFIGS["tiny_adamw_64"].train_steps
    assert large.global_batch_size == 16 * small.global_batch_size
    assert large.peak_learning_rate == legw.peak_learning_rate
    assert large.warmup_steps == legw.warmup_steps
    with pytest.raises(ValueError, match="--optimizer must be one of"):
        configs.PretrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="--sqrt_scaling_base takes BATCH,LEARNING_RATE"):
        configs.PretrainConfig(sqrt_scaling_base=(256, -1.0))
    fv = flags.FlagValues()
    pretrain_lib.define_flags(fv)
    fv(["prog", "--config=bert_large_phase1_64k", "--global_batch_size=4096",
        "--sqrt_scaling_base=256,1e-3"])
    assert pretrain_lib.resolve_config(fv).peak_learning_rate == pytest.approx(4e-3)
    fv.learning_rate = 2e-3
    with pytest.raises(ValueError, match="--learning_rate or --sqrt_scaling_base, not both"):
        pretrain_lib.resolve_config(fv)
    fv.learning_rate, fv.sqrt_scaling_base = None, ["256"]
    with pytest.raises(ValueError, match="--sqrt_scaling_base takes BATCH,LEARNING_RATE"):
        pretrain_lib.resolve_config(fv)
    with pytest.raises(ValueError, match="--warmup_steps"):
        configs.PretrainConfig(train_steps=10, warmup_steps=11)


@pytest.mark.parametrize("config_name", ["tiny_adamw_64", "tiny_lamb_64", "bert_large_lans_phase1_96k"])
def test_every_optimizer_decays_exactly_the_weights_outside_layer_norm_and_bias(config_name):
    # Keras' AdamW matches exclusion regexes on `variable.name`, which is "gamma" for a
    # LayerNorm scale; the recipe must exclude the same variables for all three optimizers.
    config = dataclasses.replace(configs.CONFIGS[config_name], model_size="tiny")
    model = model_lib.build(model_lib.BertConfig.from_size("tiny", 256), 16, 4)
    variables = model.trainable_variables
    optimizer = pretraining.make_optimizer(config, variables)
    optimizer.build(variables)
    if config.optimizer == "adamw":
        decayed = {v.path for v in variables if optimizer._use_weight_decay(v)}
    else:
        decayed = {path for path, rate, _ in optimizer.layer_settings() if rate > 0}
    kept = {v.path for v in variables if not re.search("LayerNorm|layer_norm|bias", v.path)}
    assert decayed == kept
    assert any("layer_norm" in v.path for v in variables) and len(kept) < len(variables)


@pytest.mark.parametrize(
    "config_name, no_decay_adapts",
    [("bert_large_lans_phase1_96k", True), ("bert_large_phase1_64k", False)],
)
def test_lans_adapts_every_layer_and_lamb_keeps_googles_exclusions(config_name, no_decay_adapts):
    # The LANS authors' kernel adapts every layer, the no-decay group (LayerNorm, bias)
    # included; Google's LAMB (tfa's rule) gives that group a trust ratio of 1.
    import keras

    with keras.name_scope("encoder"):
        kernel = keras.Variable(np.ones((3, 3)), name="kernel")
        with keras.name_scope("LayerNorm"):
            gamma = keras.Variable(np.ones(3), name="gamma")
        bias = keras.Variable(np.zeros(3), name="bias")
    optimizer = pretraining.make_optimizer(configs.CONFIGS[config_name], [kernel, gamma, bias])
    optimizer.build([kernel, gamma, bias])
    settings = {path: (rate, adapts) for path, rate, adapts in optimizer.layer_settings()}
    assert settings["encoder/kernel"] == (0.01, True)
    assert settings["encoder/LayerNorm/gamma"] == (0.0, no_decay_adapts)
    assert settings["encoder/bias"] == (0.0, no_decay_adapts)
