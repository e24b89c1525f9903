r"""ResNet-50 on ImageNet TFRecords with LARS, LAMB or Goyal et al.'s momentum SGD, on one
device, a mirrored set of GPUs, several workers or a TPU.

    # MLPerf's LARS at batch 8,192 on a TPU (the reference's records: train-*, validation-*)
    python -m recipes.resnet.train --config=mlperf_lars_8k --tpu=local \
        --train_files='gs://.../train-*' --eval_files='gs://.../validation-*' \
        --output_dir=gs://.../lars_8k
    # the CPU miniature: a ResNet-20 on Fashion-MNIST records (recipes.resnet.convert)
    python -m recipes.resnet.train --config=fashion_lamb_2k \
        --train_files='/tmp/fashion_records/train-*' \
        --eval_files='/tmp/fashion_records/validation-*' --output_dir=/tmp/resnet_lamb

``--config`` picks a named configuration (:mod:`recipes.resnet.configs`); any flag given
overrides its field, and a ``metadata.json`` beside the training files (written by the
converter) sets the data's size, classes and label offset. The loop, strategies, checkpoints
(a restarted run resumes with the same step, learning rate, data position and augmentation),
TensorBoard and progress bar are the BERT recipe's (:mod:`recipes.common.driver`). Written to
``--output_dir``: ``config.json``, checkpoints, ``history.jsonl``, summaries under ``train/``
and ``eval/`` (loss, top-1 and top-5 accuracy, learning rate, examples per second, trust
ratios).
"""

import dataclasses
import json
import os

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from ..common import driver, optimizers, runtime, tfrecords  # noqa: E402
from . import configs, input_pipeline, model as model_lib  # noqa: E402

FLAGS = flags.FLAGS
#: metadata.json keys (the converter's) that set configuration fields.
_METADATA = {"train_examples": "train_examples", "validation_examples": "eval_examples",
             "num_classes": "num_classes", "label_offset": "label_offset"}


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (tests pass a fresh ``flags.FlagValues()``)."""
    # 1,024 encoded ImageNet JPEGs: about 110 MB in each checkpoint.
    driver.define_flags(fv, max_per_replica_batch_size=256, shuffle_buffer=1024)
    driver.define_config_flags(fv, configs.CONFIGS, "fashion_lamb_2k",
                               skip=("boundaries_epochs",),
                               eval_help="Globs of validation TFRecords (optional).")
    flags.DEFINE_list("boundaries_epochs", None, "Overrides the configuration's "
                      "boundaries_epochs (comma-separated epochs).", flag_values=fv)
    flags.DEFINE_string("tfds_name", None, "Read TensorFlow Datasets' NAME (e.g. imagenet2012, "
                        "prepared beforehand) instead of --train_files / --eval_files; its "
                        "'train' and 'validation' splits, labels 0-based.", flag_values=fv)
    flags.DEFINE_string("tfds_data_dir", None, "TFDS' data_dir.", flag_values=fv)


def read_metadata(files):
    """The converter's ``metadata.json`` beside the first file, as configuration fields."""
    path = os.path.join(os.path.dirname(files[0]), "metadata.json") if files else None
    if not path or not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        metadata = json.load(f)
    return {field: metadata[key] for key, field in _METADATA.items() if key in metadata}


def resolve_config(fv=FLAGS, metadata=None):
    """The named configuration, then ``metadata`` (the data's size and classes), then the
    flags that were given (checked)."""
    overrides = dict(metadata or {})
    overrides.update(driver.config_overrides(fv, configs.TrainConfig))
    if "boundaries_epochs" in overrides:
        try:
            overrides["boundaries_epochs"] = tuple(float(e) for e in overrides["boundaries_epochs"])
        except ValueError as error:
            raise ValueError("--boundaries_epochs takes comma-separated numbers. Received: "
                             f"{fv.boundaries_epochs}") from error
    return dataclasses.replace(configs.CONFIGS[fv.config], **overrides)


def make_optimizer(config, variables=None):
    """The configuration's optimizer from the recipes' factory, batch-norm and bias variables
    excluded from weight decay (and, by each optimizer's reference rule, from layer-wise
    adaptation: LARS, LARC and LAMB skip them, LANS adapts every layer). ``momentum`` is Goyal
    et al.'s form (Sec. 2.1: the rate inside the velocity, L2 weight decay in the gradient).

    Args:
        config: a :class:`configs.TrainConfig`.
        variables: the model's trainable variables (Keras' baselines exclude them by
            identity).
    """
    return optimizers.build_optimizer(
        config.optimizer, config.schedule_fn(), weight_decay=config.weight_decay,
        exclude_from_weight_decay=model_lib.EXCLUDE, variables=variables,
        beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon,
        momentum=config.momentum, trust_coefficient=config.trust_coefficient,
    )


def classification_task(label_smoothing, num_classes):
    """``task(model, (images, labels), training) -> (loss_sum, metrics)``: softmax
    cross-entropy with label smoothing, summed over the batch; metrics ``correct`` (top-1),
    ``top5_correct`` and ``examples`` (float32 sums). In ``keras.ops``: TensorFlow and JAX."""

    def task(model, batch, training):
        images, labels = batch
        labels = ops.cast(labels, "int32")
        logits = ops.cast(model(images, training=training), "float32")
        targets = ops.one_hot(labels, num_classes)
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
        loss = ops.categorical_crossentropy(targets, logits, from_logits=True)
        top1 = ops.equal(ops.cast(ops.argmax(logits, -1), "int32"), labels)
        top5 = ops.in_top_k(labels, logits, min(5, num_classes))
        return ops.sum(loss), {
            "correct": ops.sum(ops.cast(top1, "float32")),
            "top5_correct": ops.sum(ops.cast(top5, "float32")),
            "examples": ops.cast(ops.shape(labels)[0], "float32"),
        }

    return task


def summarize(sums):
    """Per-example loss and top-1 / top-5 accuracy from the task's metric sums."""
    return {"loss": sums["loss"] / sums["examples"],
            "accuracy": sums["correct"] / sums["examples"],
            "top5_accuracy": sums["top5_correct"] / sums["examples"]}


def record_check(config):
    """``f(serialized)`` that parses, decodes and range-checks one record (to find a bad
    one after an input error)."""

    def check(serialized):
        jpeg, label = input_pipeline.decode_check(serialized)
        return jpeg, input_pipeline.class_index(label, config.label_offset, config.num_classes)

    return check


def run(fv=FLAGS, log=print):
    """Runs (or resumes) one training run with the flag values ``fv``.

    Returns:
        A dict: ``step`` reached, the last ``train`` values and the last ``eval`` values.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs, naming the flag or file.
        tf_lamb.callbacks.SummariesNotAvailableError: TensorBoard is not installed (checked
            before anything is read or written).
    """
    driver.check_run_flags(fv, fv.train_files or fv.tfds_name, "--train_files (or --tfds_name)")
    train_files = runtime.list_files(fv.train_files) if fv.train_files else []
    eval_files = runtime.list_files(fv.eval_files, "--eval_files") if fv.eval_files else []
    metadata = read_metadata(train_files)
    if fv.tfds_name:
        metadata["label_offset"] = 0
    config = resolve_config(fv, metadata)
    strategy, policy = driver.make_strategy(fv)
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    dtype = tf.bfloat16 if policy == "mixed_bfloat16" else tf.float32
    pipeline = dict(image_size=config.image_size, label_offset=config.label_offset,
                    num_classes=config.num_classes, min_crop_area=config.min_crop_area,
                    crop_padding=config.crop_padding, dtype=dtype)

    def examples(training, shards, index):
        if fv.tfds_name:
            return input_pipeline.read_tfds(fv.tfds_name, "train" if training else "validation",
                                            fv.tfds_data_dir, training, shards, index)
        return input_pipeline.read_records(train_files if training else eval_files, training,
                                           shards, index, fv.seed)

    def train_dataset(batch, shards, index, skip):
        return input_pipeline.make_dataset(
            examples(True, shards, index), batch, training=True, shard_index=index,
            seed=fv.seed, shuffle_buffer=fv.shuffle_buffer, skip=skip, **pipeline)

    def eval_dataset(batch, shards, index):
        return input_pipeline.make_dataset(examples(False, shards, index), batch,
                                           training=False, drop_remainder=on_tpu, **pipeline)

    return driver.train(
        fv, strategy, policy, config=config, summary=config.describe(),
        build_model=lambda: model_lib.build(config.model, config.image_size, config.num_classes),
        build_optimizer=lambda variables: make_optimizer(config, variables),
        task=classification_task(config.label_smoothing, config.num_classes),
        train_dataset=train_dataset, train_steps=config.total_steps, summarize=summarize,
        eval_dataset=eval_dataset if (eval_files or fv.tfds_name) else None,
        run_config={"peak_learning_rate": config.peak_learning_rate,
                    "warmup_steps": config.warmup_steps, "total_steps": config.total_steps,
                    "steps_per_epoch": config.steps_per_epoch},
        explain_data_error=tfrecords.bad_file_explainer(
            {"--train_files": train_files, "--eval_files": eval_files}, record_check(config)),
        log=log,
    )


def cli():
    """Console-script entry point."""
    driver.command_line(define_flags, run)


if __name__ == "__main__":
    cli()
