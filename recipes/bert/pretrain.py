r"""BERT pre-training with LAMB, LANS or AdamW: one phase per run, on TensorFlow (any
``tf.distribute`` strategy) or JAX (``keras.distribution``).

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

The data are TFRecords (read with tf.data), or on the JAX backend also NumPy shards
(``tf-lamb-bert-data --output_format=npy``; read with grain, no TensorFlow needed).
``--config`` picks a named configuration (:mod:`recipes.bert.configs`); any flag given on the
command line overrides its field. The global batch is reached with gradient accumulation
when it exceeds ``replicas x --max_per_replica_batch_size``; the arithmetic is printed at start.
A restarted run resumes from the newest checkpoint in ``--output_dir`` with the same step,
learning rate and data position. Written to ``--output_dir``: ``config.json`` (the resolved
configuration), checkpoints, ``history.jsonl`` (one line per log step), TensorBoard summaries
under ``train/`` and ``eval/`` (loss and its masked-LM and next-sentence parts, MLM and NSP
accuracy, learning rate, trust ratios).
"""

import dataclasses
import itertools
import json
import os
import re

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from ..common import array_shards, driver, runtime  # noqa: E402
from . import configs, features, layout, model as model_lib  # noqa: E402
from .pretraining import make_optimizer, pretraining_task, summarize  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (tests pass a fresh ``flags.FlagValues()``)."""
    driver.define_flags(fv)
    driver.define_config_flags(fv, configs.CONFIGS, "tiny_lamb_1k", skip=("sqrt_scaling_base",))
    flags.DEFINE_string("init_checkpoint", None, "Start from this checkpoint's model weights "
                        "(a file prefix or a directory: its newest), e.g. phase 1's output_dir. "
                        "Ignored when --output_dir already holds a checkpoint (resume).",
                        flag_values=fv)
    flags.DEFINE_integer("vocab_size", None, "Rows of the token embedding. Default: the data's "
                         "vocabulary (metadata.json next to the training files).", flag_values=fv)
    flags.DEFINE_integer("eval_batches", 0, "Held-out batches per input pipeline per "
                         "evaluation (0: all).", lower_bound=0, flag_values=fv)
    flags.DEFINE_list("sqrt_scaling_base", None, "BATCH,LEARNING_RATE: set the peak by the "
                      "LAMB paper's untuned rule, LEARNING_RATE * sqrt(global batch / BATCH).",
                      flag_values=fv)


def resolve_config(fv=FLAGS):
    """The named configuration with the flags that were given applied (checked)."""
    base = configs.CONFIGS[fv.config]
    overrides = driver.config_overrides(fv, configs.PretrainConfig)
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


def data_vocab_size(train_files):
    """The vocabulary size recorded next to the first training file, or None."""
    path = os.path.join(os.path.dirname(train_files[0]), "metadata.json")
    if runtime.file_exists(path):
        with runtime.open_file(path) as f:
            return json.load(f).get("vocab_size")
    return None


def _checkpoints():
    """The backend's checkpoint functions: :mod:`recipes.common.jax_checkpointing` (orbax) on
    JAX, :mod:`recipes.common.checkpointing` (``tf.train``) on TensorFlow."""
    if keras.backend.backend() == "jax":
        from ..common import jax_checkpointing

        return jax_checkpointing
    from ..common import checkpointing

    return checkpointing


def check_finished(directory):
    """Phase 2 starts from phase 1's final checkpoint: when ``--init_checkpoint`` is a run's
    directory, its newest checkpoint must be at the step its ``config.json`` trains to.

    Raises:
        ValueError: the run stopped early (the message names the flag, both steps and how to
            start from that checkpoint anyway: pass its file prefix).
    """
    latest = _checkpoints().latest_checkpoint(directory)
    config_path = os.path.join(directory, "config.json")
    if not latest or not runtime.file_exists(config_path):
        return
    with runtime.open_file(config_path) as f:
        train_steps = json.load(f).get("train_steps")
    step = int(re.split(r"[-/]", latest)[-1])  # .../ckpt-<step> or .../checkpoints/<step>
    if train_steps and step < train_steps:
        raise ValueError(
            f"--init_checkpoint={directory}: that run stopped at step {step} of its "
            f"{train_steps}; resume it to the end first, or pass --init_checkpoint={latest} "
            "to start from this checkpoint anyway."
        )


def run(fv=FLAGS, log=print):
    """Runs (or resumes) one phase with the flag values ``fv``.

    Args:
        fv: parsed flag values.
        log: a print-like function for the start-up lines.

    Returns:
        A dict: ``step`` reached, the last ``train`` metrics and the last ``eval`` metrics.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs, naming the flag or file.
        tf_lamb.callbacks.SummariesNotAvailableError: nothing that writes TensorBoard
            summaries is installed (checked before anything is read or written).
        recipes.common.array_shards.GrainNotInstalledError: NumPy shards were given and grain
            is not installed (checked likewise).
    """
    driver.check_run_flags(fv, fv.train_files)
    config = resolve_config(fv)
    train_files = runtime.list_files(fv.train_files)
    eval_files = runtime.list_files(fv.eval_files, "--eval_files") if fv.eval_files else []
    data_vocab = data_vocab_size(train_files)
    vocab_size = fv.vocab_size or data_vocab
    if not vocab_size:
        raise ValueError("--vocab_size is required: no metadata.json beside the training files.")
    if data_vocab and data_vocab > vocab_size:
        raise ValueError(
            f"The data's vocabulary ({data_vocab} tokens, metadata.json) does not fit the model's "
            f"--vocab_size={vocab_size}."
        )
    bert_config = model_lib.BertConfig.from_size(config.model_size, vocab_size,
                                                 dropout_rate=config.dropout_rate)
    layout.check(bert_config.num_heads, fv.model_parallel)
    arrays = array_shards.is_array_shards(train_files + eval_files)
    if arrays:
        if keras.backend.backend() != "jax":
            raise ValueError("--train_files: NumPy shards (.npy) are read on the JAX backend "
                             "(KERAS_BACKEND=jax); on TensorFlow give TFRecords.")
        array_shards.check_reader()
    # Before TensorFlow reads anything (devices).
    strategy, policy = driver.make_strategy(fv, tf_data=not arrays)
    shapes = (config.max_seq_length, config.max_predictions_per_seq)
    make_input = _array_input if arrays else _record_input
    train_dataset, eval_dataset, explain = make_input(fv, strategy, train_files, eval_files,
                                                      shapes, vocab_size)

    def from_init_checkpoint(model):
        if fv.init_checkpoint:
            check_finished(fv.init_checkpoint)
            log(f"model weights from {_checkpoints().restore_model(model, fv.init_checkpoint)}")

    return driver.train(
        fv, strategy, policy, config=config,
        summary=(f"{config.optimizer} peak LR {config.peak_learning_rate:.3g}, "
                 f"{config.train_steps} steps, warmup {config.warmup_steps}, "
                 f"BERT-{config.model_size}, seq {config.max_seq_length}"),
        build_model=lambda: model_lib.build(bert_config, *shapes),
        build_optimizer=lambda variables: make_optimizer(config, variables),
        task=pretraining_task, train_dataset=train_dataset, train_steps=config.train_steps,
        summarize=summarize, eval_dataset=eval_dataset if eval_files else None,
        run_config={"peak_learning_rate": config.peak_learning_rate, "vocab_size": vocab_size},
        explain_data_error=explain, on_fresh_start=from_init_checkpoint,
        layout_map=layout.layout_map, log=log,
    )


def _record_input(fv, strategy, train_files, eval_files, shapes, vocab_size):
    """The TFRecord input (tf.data): ``(train_dataset, eval_dataset, explain_data_error)`` as
    :func:`recipes.common.driver.train` takes them, after checking each set's first file."""
    import tensorflow as tf

    from ..common import tfrecords
    from . import input_pipeline, records

    names = {flag: records.check_file(files[0], *shapes, vocab_size)
             for flag, files in (("--train_files", train_files), ("--eval_files", eval_files))
             if files}

    def train_dataset(batch, shards, index, skip):
        return input_pipeline.make_dataset(
            train_files, *shapes, batch, num_shards=shards, shard_index=index, seed=fv.seed,
            shuffle_buffer=fv.shuffle_buffer, skip=skip,
        )

    def eval_dataset(batch, shards, index):
        dataset = input_pipeline.make_dataset(
            eval_files, *shapes, batch, num_shards=shards, shard_index=index, training=False,
            drop_remainder=isinstance(strategy, tf.distribute.TPUStrategy),  # static shapes
        )
        return dataset.take(fv.eval_batches) if fv.eval_batches else dataset

    explain = tfrecords.bad_file_explainer(
        {"--train_files": train_files, "--eval_files": eval_files},
        check={flag: records.parse_fn(n, *shapes) for flag, n in names.items()})
    return train_dataset, eval_dataset, explain


def _array_input(fv, strategy, train_files, eval_files, shapes, vocab_size):
    """The NumPy shard input (grain; JAX backend), as :func:`_record_input` returns it. Every
    record is read at random, so ``--shuffle_buffer`` only says whether to shuffle (0: the
    files' order).

    Raises:
        ValueError: a file does not fit the flags (every file's fields are checked, as each
            host reads its own; the token ids of the first file's first 100 examples, of the
            others' first one).
    """
    del strategy  # JAX: none
    for flag, files in (("--train_files", train_files), ("--eval_files", eval_files)):
        for i, path in enumerate(files):
            features.check_shard(path, *shapes, vocab_size, count=1 if i else 100, flag=flag)

    def train_dataset(batch, shards, index, skip):
        return array_shards.make_batches(
            train_files, batch, num_shards=shards, shard_index=index, seed=fv.seed,
            shuffle=fv.shuffle_buffer > 0, skip=skip,
        )

    def eval_dataset(batch, shards, index):
        batches = array_shards.make_batches(eval_files, batch, num_shards=shards,
                                            shard_index=index, training=False,
                                            flag="--eval_files")
        return itertools.islice(batches, fv.eval_batches) if fv.eval_batches else batches

    return train_dataset, eval_dataset, None


def cli():
    """Console-script entry point."""
    driver.command_line(define_flags, run,
                        (ValueError, FileNotFoundError, array_shards.GrainNotInstalledError))


if __name__ == "__main__":
    cli()
