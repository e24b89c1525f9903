"""BERT pre-training TFRecords: writing Google's format, reading it (or Model Garden's) back.

Each record is a ``tf.train.Example`` with Google BERT's features, the table of
:mod:`recipes.bert.features`, the integers stored as int64 (the parser gives int32).

Model Garden writes ``input_word_ids`` and ``input_type_ids`` for the first and third; the
reader accepts either.
"""

import tensorflow as tf
from google.protobuf.message import DecodeError

from ..common import tfrecords
from . import features

GOOGLE_NAMES = ("input_ids", "input_mask", "segment_ids")
MODEL_GARDEN_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def _int64(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def to_example(instance, max_seq_length, max_predictions_per_seq):
    """A ``tf.train.Example`` of one :class:`~recipes.bert.instances.Instance`, padded
    (:func:`recipes.bert.features.padded`)."""
    values = features.padded(instance, max_seq_length, max_predictions_per_seq)
    feature = {name: _int64(v) for name, v in values.items() if name != "masked_lm_weights"}
    feature["masked_lm_weights"] = tf.train.Feature(
        float_list=tf.train.FloatList(value=values["masked_lm_weights"])
    )
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_shards(instances, output_prefix, num_shards, max_seq_length, max_predictions_per_seq):
    """Writes ``instances`` round-robin into ``num_shards`` TFRecord files
    ``{output_prefix}-{i:05d}-of-{n:05d}.tfrecord``, each complete or absent
    (:func:`recipes.common.tfrecords.write_shards`).

    Args:
        instances: list of :class:`~recipes.bert.instances.Instance`.
        output_prefix: e.g. ``out/seq128/train``.
        num_shards: int >= 1 (capped at the number of instances).

    Returns:
        The list of shard paths written.
    """
    records = [
        to_example(instance, max_seq_length, max_predictions_per_seq).SerializeToString(
            deterministic=True
        )
        for instance in instances
    ]
    return tfrecords.write_shards(records, output_prefix, num_shards, suffix=".tfrecord")


def _first_examples(path, count):
    """The first ``count`` records of ``path`` as ``tf.train.Example`` s.

    Raises:
        ValueError: a record is corrupt (the message names the file).
    """
    try:
        return [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(path).take(count)]
    except tf.errors.DataLossError as error:
        raise ValueError(f"{path}: corrupt record: {error.message}") from None
    except DecodeError as error:  # Its checksum holds, but it is no tf.train.Example.
        raise ValueError(f"{path}: a record is not a tf.train.Example ({error})") from None


def feature_names(path):
    """``(ids, mask, segments)`` feature names used in the TFRecord file ``path``: Google's or
    Model Garden's.

    Raises:
        ValueError: the file is empty, its first record is corrupt or it holds neither naming
            (the message names the file).
    """
    for example in _first_examples(path, 1):
        features = example.features.feature
        for names in (GOOGLE_NAMES, MODEL_GARDEN_NAMES):
            if all(name in features for name in names):
                return names
        raise ValueError(
            f"{path}: not a BERT pre-training record; it has the features "
            f"{sorted(features)}, not {list(GOOGLE_NAMES)} or {list(MODEL_GARDEN_NAMES)}."
        )
    raise ValueError(f"{path}: the file holds no records.")


def check_file(path, max_seq_length, max_predictions_per_seq, vocab_size, count=100):
    """Checks the first ``count`` records of ``path`` against the run's flags, before training.

    Args:
        path: a TFRecord file.
        max_seq_length, max_predictions_per_seq: the run's ``--max_seq_length`` and
            ``--max_predictions_per_seq``.
        vocab_size: the model's ``--vocab_size``: every token id must be below it (an id past
            the embedding is an error on a CPU, and silently wrong on a GPU or TPU).

    Returns:
        The file's feature names, as :func:`feature_names` gives them.

    Raises:
        ValueError: the file is empty or corrupt, or its records do not fit a flag (the
            message names the file and the flag).
    """
    names = feature_names(path)
    ids = names[0]
    for example in _first_examples(path, count):
        features = example.features.feature
        for flag, value, name in (("--max_seq_length", max_seq_length, ids),
                                  ("--max_predictions_per_seq", max_predictions_per_seq,
                                   "masked_lm_ids")):
            length = len(features[name].int64_list.value) if name in features else None
            if length != value:
                raise ValueError(
                    f"{path}: its records hold {length} `{name}`, not {flag}={value} (records "
                    "of another phase?)."
                )
        largest = max(max(features[name].int64_list.value, default=0)
                      for name in (ids, "masked_lm_ids"))
        if largest >= vocab_size:
            raise ValueError(
                f"{path}: token id {largest} does not fit the model's --vocab_size={vocab_size}."
            )
    return names


def parse_fn(names, max_seq_length, max_predictions_per_seq):
    """``parse(serialized) -> dict`` of int32 / float32 tensors under Google's names."""
    ids, mask, segments = names

    def fixed(length, dtype=tf.int64):
        return tf.io.FixedLenFeature([length], dtype)

    spec = {
        ids: fixed(max_seq_length),
        mask: fixed(max_seq_length),
        segments: fixed(max_seq_length),
        "masked_lm_positions": fixed(max_predictions_per_seq),
        "masked_lm_ids": fixed(max_predictions_per_seq),
        "masked_lm_weights": fixed(max_predictions_per_seq, tf.float32),
        "next_sentence_labels": fixed(1),
    }
    rename = {ids: "input_ids", mask: "input_mask", segments: "segment_ids"}

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        return {
            rename.get(k, k): v if v.dtype == tf.float32 else tf.cast(v, tf.int32)
            for k, v in parsed.items()
        }

    return parse
