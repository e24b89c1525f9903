r"""BERT pre-training with LAMB, LANS or AdamW: one phase per run, any ``tf.distribute`` strategy.

    # the CPU miniature: BERT-tiny, LAMB at batch 1,024
    python -m recipes.bert.pretrain --config=tiny_lamb_1k \
        --train_files='/tmp/bert_data/seq128/train-*' --eval_files='/tmp/bert_data/seq128/heldout-*' \
        --output_dir=/tmp/bert_tiny_lamb
    # the paper's two phases on a TPU (phase 2 starts from phase 1's last checkpoint)
    python -m recipes.bert.pretrain --config=bert_large_phase1_64k --tpu=local \
        --train_files='gs://.../seq128/train-*' --output_dir=gs://.../phase1
    python -m recipes.bert.pretrain --config=bert_large_phase2_32k --tpu=local \
        --train_files='gs://.../seq512/train-*' --init_checkpoint=gs://.../phase1 \
        --output_dir=gs://.../phase2

``--config`` picks a named configuration (:mod:`recipes.bert.configs`); any flag given on the
command line overrides its field. The global batch is reached with gradient accumulation
when it exceeds ``replicas x --max_per_replica_batch_size``; the arithmetic is printed at start.
A restarted run resumes from the newest checkpoint in ``--output_dir`` with the same step,
learning rate and data position. Written to ``--output_dir``: ``config.json`` (the resolved
configuration), checkpoints, ``history.jsonl`` (one line per log step), TensorBoard summaries
under ``train/`` and ``eval/`` (loss, MLM and NSP accuracy, learning rate, trust ratios).
"""

import dataclasses
import json
import os
import signal
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tqdm  # noqa: E402

import tf_lamb  # noqa: E402

from ..common import checkpointing, distribute, training  # noqa: E402
from . import configs, input_pipeline, model as model_lib, records  # noqa: E402

FLAGS = flags.FLAGS
_FIELDS = {f.name: f for f in dataclasses.fields(configs.PretrainConfig)}


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (tests pass a fresh ``flags.FlagValues()``)."""
    flags.DEFINE_enum("config", "tiny_lamb_1k", sorted(configs.CONFIGS),
                      "Named configuration; flags below override its fields.", flag_values=fv)
    flags.DEFINE_string("train_files", None, "Comma-separated globs of training TFRecords.",
                        flag_values=fv)
    flags.DEFINE_string("eval_files", None, "Globs of held-out TFRecords (optional).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Checkpoints, summaries and logs.", flag_values=fv)
    flags.DEFINE_string("init_checkpoint", None, "Start from this checkpoint's model weights "
                        "(a file prefix or a directory: its newest), e.g. phase 1's output_dir. "
                        "Ignored when --output_dir already holds a checkpoint (resume).",
                        flag_values=fv)
    flags.DEFINE_integer("vocab_size", None, "Rows of the token embedding. Default: the data's "
                         "vocabulary (metadata.json next to the training files).", flag_values=fv)
    flags.DEFINE_enum("strategy", "auto", distribute.STRATEGIES,
                      "tf.distribute strategy (see recipes/common/distribute.py).", flag_values=fv)
    flags.DEFINE_string("tpu", None, "TPU name or address for TPUClusterResolver ('local' on a "
                        "TPU VM or Colab).", flag_values=fv)
    flags.DEFINE_integer("max_per_replica_batch_size", 64, "The most examples one replica "
                         "processes per pass; larger global batches accumulate gradients.",
                         flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 100, "Optimizer steps between checkpoints (and one "
                         "at exit).", flag_values=fv)
    flags.DEFINE_integer("log_every", 10, "Steps between summaries and history lines.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_every", 100, "Steps between held-out evaluations (0: only at "
                         "the end).", flag_values=fv)
    flags.DEFINE_integer("eval_batches", 0, "Held-out batches of 128 per evaluation (0: all).",
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of initialization, dropout and data order.",
                         flag_values=fv)
    flags.DEFINE_integer("shuffle_buffer", 10000, "Training examples in the shuffle buffer (0: "
                         "the files' interleaved order).", lower_bound=0, flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=fv)
    flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into this many logical devices (try "
                         "--strategy=mirrored on one machine; 0: leave it whole).", flag_values=fv)
    flags.DEFINE_integer("kill_at_step", 0, "Testing: SIGKILL this process right after this "
                         "step, as a preempted host would be (0: never).", flag_values=fv)
    flags.DEFINE_list("sqrt_scaling_base", None, "BATCH,LEARNING_RATE: set the peak by the "
                      "LAMB paper's untuned rule, LEARNING_RATE * sqrt(global batch / BATCH).",
                      flag_values=fv)
    for name, field in _FIELDS.items():
        if name == "sqrt_scaling_base":
            continue
        kind = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
        define = kind.get(field.type if isinstance(field.type, type) else type(field.default),
                          flags.DEFINE_float)
        define(name, None, f"Overrides the configuration's {name}.", flag_values=fv)


def resolve_config(fv=FLAGS):
    """The named configuration with the flags that were given applied (checked)."""
    base = configs.CONFIGS[fv.config]
    overrides = {n: fv[n].value for n in _FIELDS if n in fv and fv[n].value is not None}
    if "sqrt_scaling_base" in overrides:
        if "learning_rate" in overrides:
            raise ValueError("Give --learning_rate or --sqrt_scaling_base, not both.")
        try:
            batch, rate = overrides["sqrt_scaling_base"]
            overrides["sqrt_scaling_base"] = (int(batch), float(rate))
        except ValueError as error:
            raise ValueError("--sqrt_scaling_base takes BATCH,LEARNING_RATE, e.g. 32768,5e-3. "
                             f"Received: {fv.sqrt_scaling_base}") from error
    elif "learning_rate" in overrides:
        overrides["sqrt_scaling_base"] = None  # an explicit rate wins over the sqrt rule
    return dataclasses.replace(base, **overrides)


def make_schedule(config):
    """The phase's learning-rate schedule, from 0 at step 0 (phase 2 re-warms from 0)."""
    if config.schedule == "lans":
        return tf_lamb.schedules.WarmupConstantDecay(
            config.peak_learning_rate, config.train_steps, config.warmup_steps,
            constant_steps=config.constant_steps,
        )
    return tf_lamb.schedules.PolynomialDecayWithWarmup(
        config.peak_learning_rate, config.train_steps, config.warmup_steps,
        power=config.decay_power,
    )


#: BERT's exclusions (google-research/bert optimization.py), matched on variable paths.
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]


def make_optimizer(config):
    """LAMB / LANS / AdamW with the configuration's settings and BERT's exclusions."""
    common = dict(
        learning_rate=make_schedule(config), beta_1=config.beta_1, beta_2=config.beta_2,
        epsilon=config.epsilon, global_clipnorm=config.global_clipnorm or None,
    )
    if config.optimizer == "lamb":
        return tf_lamb.LAMB(weight_decay=config.weight_decay, exclude_from_weight_decay=EXCLUDE,
                            **common)
    if config.optimizer == "lans":
        return tf_lamb.LANS(weight_decay=config.weight_decay, exclude_from_weight_decay=EXCLUDE,
                            **common)
    optimizer = keras.optimizers.AdamW(weight_decay=config.weight_decay, **common)
    optimizer.exclude_from_weight_decay(var_names=EXCLUDE)
    return optimizer


def pretraining_task(model, batch, training):
    """Masked-LM + next-sentence loss of a batch, as sums over its examples.

    Each example's masked-LM loss is the mean cross-entropy over its real masked positions
    (``masked_lm_weights``); its total loss adds the next-sentence cross-entropy.

    Returns:
        ``(loss_sum, metrics)``: float32 scalars; metrics ``mlm_correct``, ``mlm_count``,
        ``nsp_correct``, ``examples``.
    """
    outputs = model(batch, training=training)
    weights = batch["masked_lm_weights"]
    mlm_logits = tf.cast(outputs["mlm_logits"], tf.float32)
    mlm_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["masked_lm_ids"], mlm_logits)
    count = tf.reduce_sum(weights, axis=1)
    per_example_mlm = tf.reduce_sum(mlm_loss * weights, axis=1) / tf.maximum(count, 1.0)
    nsp_labels = batch["next_sentence_labels"][:, 0]
    nsp_logits = tf.cast(outputs["nsp_logits"], tf.float32)
    nsp_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(nsp_labels, nsp_logits)
    correct = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, tf.int32), batch["masked_lm_ids"]),
                      tf.float32)
    metrics = {
        "mlm_correct": tf.reduce_sum(correct * weights),
        "mlm_count": tf.reduce_sum(weights),
        "nsp_correct": tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(nsp_logits, -1, tf.int32), nsp_labels), tf.float32)),
        "examples": tf.cast(tf.shape(nsp_labels)[0], tf.float32),
    }
    return tf.reduce_sum(per_example_mlm + nsp_loss), metrics


def data_vocab_size(train_files):
    """The vocabulary size recorded next to the first training file, or None."""
    path = os.path.join(os.path.dirname(train_files[0]), "metadata.json")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            return json.load(f).get("vocab_size")
    return None


def evaluate(model, files, config, max_batches=0):
    """Held-out masked-LM and next-sentence accuracy over ``files`` (one pass, batch 128)."""
    dataset = input_pipeline.make_dataset(
        files, config.max_seq_length, config.max_predictions_per_seq, 128, training=False
    )
    if max_batches:
        dataset = dataset.take(max_batches)

    @tf.function
    def step(batch):
        return pretraining_task(model, batch, False)

    totals = {}
    try:
        for batch in dataset:
            loss, metrics = step(batch)
            for k, v in dict(metrics, loss=loss).items():
                totals[k] = totals.get(k, 0.0) + float(v)
    except tf.errors.DataLossError as error:
        path, message = records.find_corrupt_file(files)
        raise ValueError(f"--eval_files: corrupt record in {path}: {message}") from error
    if not totals:
        raise ValueError("--eval_files: the held-out files hold no records.")
    return {
        "eval_mlm_accuracy": totals["mlm_correct"] / totals["mlm_count"],
        "eval_nsp_accuracy": totals["nsp_correct"] / totals["examples"],
        "eval_loss": totals["loss"] / totals["examples"],
    }


class _Log:
    """history.jsonl and TensorBoard writers (the chief's only)."""

    def __init__(self, output_dir, enabled):
        self.enabled = enabled
        if enabled:
            self.history = open(os.path.join(output_dir, "history.jsonl"), "a")
            self.writers = {k: tf.summary.create_file_writer(os.path.join(output_dir, k))
                            for k in ("train", "eval")}

    def write(self, step, values, writer="train"):
        if not self.enabled:
            return
        self.history.write(json.dumps({"step": step, **values}) + "\n")
        self.history.flush()
        with self.writers[writer].as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)

    def close(self):
        if self.enabled:
            self.history.close()
            for w in self.writers.values():
                w.flush()


def run(fv=FLAGS, log=print):
    """Runs (or resumes) one phase with the flag values ``fv``.

    Args:
        fv: parsed flag values.
        log: a print-like function for the start-up lines.

    Returns:
        A dict: ``step`` reached, the last ``train`` metrics and the last ``eval`` metrics.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs, naming the flag or file.
    """
    if not fv.output_dir:
        raise ValueError("--output_dir is required.")
    if not fv.train_files:
        raise ValueError("--train_files is required.")
    config = resolve_config(fv)
    train_files = input_pipeline.list_files(fv.train_files)
    eval_files = input_pipeline.list_files(fv.eval_files, "--eval_files") if fv.eval_files else []
    data_vocab = data_vocab_size(train_files)
    vocab_size = fv.vocab_size or data_vocab
    if not vocab_size:
        raise ValueError("--vocab_size is required: no metadata.json beside the training files.")
    if data_vocab and data_vocab > vocab_size:
        raise ValueError(
            f"The data's vocabulary ({data_vocab} tokens, metadata.json) does not fit the model's "
            f"--vocab_size={vocab_size}."
        )
    if fv.cpu_replicas:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * fv.cpu_replicas
        )
    strategy = distribute.make_strategy(fv.strategy, fv.tpu)
    plan = distribute.plan_batch(
        config.global_batch_size, strategy.num_replicas_in_sync, fv.max_per_replica_batch_size
    )
    log(f"{distribute.strategy_name(strategy)}: {plan.describe()}")
    log(f"{config.optimizer} peak LR {config.peak_learning_rate:.3g}, {config.train_steps} steps, "
        f"warmup {config.warmup_steps}, BERT-{config.model_size}, seq {config.max_seq_length}")
    tf.io.gfile.makedirs(fv.output_dir)

    keras.utils.set_random_seed(fv.seed)
    with strategy.scope():
        model = model_lib.build(
            model_lib.BertConfig.from_size(
                config.model_size, vocab_size, dropout_rate=config.dropout_rate
            ),
            config.max_seq_length, config.max_predictions_per_seq,
        )
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
    feed = training.DataFeed(
        strategy,
        lambda batch, shards, index: input_pipeline.make_dataset(
            train_files, config.max_seq_length, config.max_predictions_per_seq, batch,
            num_shards=shards, shard_index=index, seed=fv.seed, shuffle_buffer=fv.shuffle_buffer,
        ),
        plan.per_replica_batch_size,
    )
    checkpointer = checkpointing.Checkpointer(
        strategy, fv.output_dir, model=model, optimizer=optimizer, **feed.trackable()
    )
    resumed = checkpointer.restore_latest()
    if resumed:
        log(f"resumed from {resumed}")
    elif fv.init_checkpoint:
        log(f"model weights from {checkpointing.restore_model(model, fv.init_checkpoint)}")
    if checkpointer.is_chief:
        with tf.io.gfile.GFile(os.path.join(fv.output_dir, "config.json"), "w") as f:
            json.dump({"config_name": fv.config, **dataclasses.asdict(config),
                       "peak_learning_rate": config.peak_learning_rate,
                       "vocab_size": vocab_size, "batch_plan": dataclasses.asdict(plan),
                       "strategy": distribute.strategy_name(strategy)}, f, indent=2)

    runner = training.StepRunner(strategy, model, optimizer, pretraining_task, plan)
    logger = _Log(fv.output_dir, checkpointer.is_chief)
    monitor = (tf_lamb.callbacks.TrustRatioMonitor(os.path.join(fv.output_dir, "train"))
               if config.optimizer != "adamw" and checkpointer.is_chief else None)
    step = int(optimizer.iterations.numpy())
    last_train, last_eval, window = {}, {}, {}
    end = config.train_steps
    started, examples_since = time.perf_counter(), 0
    bar = tqdm.tqdm(total=config.train_steps, initial=step, unit="step", dynamic_ncols=True,
                    disable=not (fv.progress and checkpointer.is_chief))
    try:
        while step < end:
            try:
                metrics = {k: float(v) for k, v in runner.train_step(feed).items()}
            except tf.errors.DataLossError as error:
                path, message = records.find_corrupt_file(train_files)
                raise ValueError(f"--train_files: corrupt record in {path}: {message}"
                                 if path else f"--train_files: {error.message}") from error
            step += 1
            if step == fv.kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            for k, v in metrics.items():
                window[k] = window.get(k, 0.0) + v
            examples_since += config.global_batch_size
            bar.update(1)
            if step % fv.log_every == 0 or step == end:
                elapsed = time.perf_counter() - started
                last_train = {
                    "loss": window["loss"] / window["examples"],
                    "mlm_accuracy": window["mlm_correct"] / window["mlm_count"],
                    "nsp_accuracy": window["nsp_correct"] / window["examples"],
                    "learning_rate": float(optimizer.learning_rate),
                    "examples_per_second": examples_since / elapsed,
                }
                logger.write(step, last_train)
                if monitor:
                    monitor.record(optimizer, step)
                bar.set_postfix(loss=f"{last_train['loss']:.3f}",
                                mlm=f"{last_train['mlm_accuracy']:.3f}",
                                ex_s=f"{last_train['examples_per_second']:.0f}")
                window, started, examples_since = {}, time.perf_counter(), 0
            if eval_files and ((fv.eval_every and step % fv.eval_every == 0) or step == end):
                last_eval = evaluate(model, eval_files, config, fv.eval_batches)
                logger.write(step, last_eval, "eval")
                bar.write(f"step {step}: held-out MLM accuracy {last_eval['eval_mlm_accuracy']:.4f}")
            if step % fv.checkpoint_every == 0 and step < end:
                checkpointer.save(step)
    finally:
        bar.close()
        if step > 0 and not checkpointer.saved(step):
            checkpointer.save(step)  # at exit, also after an error or Ctrl-C
        logger.close()
    return {"step": step, "train": last_train, "eval": last_eval}


def main(argv):
    del argv
    try:
        run()
    except (ValueError, FileNotFoundError, tf.errors.DataLossError) as error:
        sys.exit(f"error: {error}")


def cli():
    """Console-script entry point."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    cli()
