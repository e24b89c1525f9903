"""TFRecord files the recipes read and write: sharded atomic writes, and finding the file
behind a read error (the flags' globs: :func:`recipes.common.runtime.list_files`)."""

import os

import tensorflow as tf

from . import runtime


def read(files, training=True, num_shards=1, shard_index=0, seed=0, cycle_length=8):
    """Serialized records of ``files`` for one input pipeline.

    In training: this pipeline's share of the files (each host reads its own files, so its
    position can be saved with its checkpoint), in shuffled order, repeated forever. In
    evaluation: its share of the records of all files (any file count), one pass in order.

    Args:
        files: TFRecord paths.
        training: bool.
        num_shards, shard_index: the input pipelines and this one's index.
        seed: int, for the file shuffle.
        cycle_length: int, the most files read at once (interleaved record by record).

    Raises:
        ValueError: in training, fewer files than pipelines.
    """
    dataset = tf.data.Dataset.from_tensor_slices(files)
    host_files = len(files)
    if num_shards > 1 and training:
        if len(files) < num_shards:
            raise ValueError(
                f"{len(files)} input files cannot be split across {num_shards} hosts; "
                "write at least one file per host."
            )
        dataset = dataset.shard(num_shards, shard_index)
        host_files = len(range(shard_index, len(files), num_shards))
    if training:
        dataset = dataset.shuffle(host_files, seed=seed, reshuffle_each_iteration=True).repeat()
    # Reading more of this host's files at once than it has would open a file twice (after
    # the repeat) and give each batch duplicated examples.
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(cycle_length, host_files),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )
    if num_shards > 1 and not training:
        dataset = dataset.shard(num_shards, shard_index)
    return dataset


def write_shards(records, output_prefix, num_shards, suffix=""):
    """Writes serialized records round-robin into ``num_shards`` TFRecord files.

    Each shard is written under a temporary name and renamed when complete, so an interrupted
    run never leaves a truncated shard under a final name.

    Args:
        records: a sized sequence of ``bytes`` (serialized ``tf.train.Example`` protos).
        output_prefix: e.g. ``out/train``; shards are ``{prefix}-{i:05d}-of-{n:05d}{suffix}``
            (the TPU ImageNet reference's names when ``suffix`` is empty).
        num_shards: int >= 1, capped at the number of records.
        suffix: str, e.g. ``".tfrecord"``.

    Returns:
        The list of shard paths written (:func:`recipes.common.runtime.shard_paths`).

    Raises:
        ValueError: ``num_shards`` < 1.
    """
    paths = runtime.shard_paths(output_prefix, num_shards, len(records), suffix)
    num_shards = len(paths)
    tf.io.gfile.makedirs(os.path.dirname(output_prefix) or ".")
    writers = [tf.io.TFRecordWriter(path + ".tmp") for path in paths]
    try:
        for i, record in enumerate(records):
            writers[i % num_shards].write(record)
    finally:
        for writer in writers:
            writer.close()
    for path in paths:
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return paths


def find_bad_file(files, check=None):
    """The first of ``files`` whose records cannot all be read (and, given ``check``, parsed),
    with TensorFlow's message; ``(None, None)`` when all are good. Used after a read error met
    while training, to name the file behind it.

    Args:
        files: TFRecord paths.
        check: optional ``f(serialized) -> tensors``, e.g. parse and decode one record; its
            ``InvalidArgumentError`` counts as a bad record.
    """
    for path in files:
        dataset = tf.data.TFRecordDataset(path)
        if check is not None:
            dataset = dataset.map(check)
        try:
            for _ in dataset:
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            return path, error.message
    return None, None


def bad_file_explainer(file_sets, check=None):
    """``f(error) -> str or None`` for :func:`recipes.common.driver.run_steps`: the first
    bad file of ``file_sets`` (``{flag: files}``), named with its flag, or None.

    Args:
        file_sets: dict, e.g. ``{"--train_files": [...], "--eval_files": [...]}``.
        check: as for :func:`find_bad_file`, or a dict of them by flag (file sets may differ
            in format).
    """

    def explain(error):
        if not isinstance(error, (tf.errors.DataLossError, tf.errors.InvalidArgumentError)):
            return None  # not a read or decode error; otherwise the files are read again
        for flag, files in file_sets.items():
            path, message = find_bad_file(files, check.get(flag) if isinstance(check, dict) else check)
            if path:
                return f"{flag}: bad record in {path}: {message}"
        return None

    return explain
