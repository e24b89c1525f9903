"""BERT pre-training examples as arrays: the padded features of an instance, the structured
dtype of the NumPy shards (:mod:`recipes.common.array_shards`), and the check of a shard
against the run's flags. Needs no TensorFlow; the TFRecords (:mod:`recipes.bert.records`)
hold the same features.

==========================  ==========  ================================================
feature                     dtype       shape
==========================  ==========  ================================================
``input_ids``               int32       ``[max_seq_length]``, 0-padded
``input_mask``              int32       ``[max_seq_length]``, 1 on tokens, 0 on padding
``segment_ids``             int32       ``[max_seq_length]``, 0 for A, 1 for B
``masked_lm_positions``     int32       ``[max_predictions_per_seq]``, 0-padded
``masked_lm_ids``           int32       ``[max_predictions_per_seq]``, the true ids
``masked_lm_weights``       float32     ``[max_predictions_per_seq]``, 1.0 real, 0.0 pad
``next_sentence_labels``    int32       ``[1]``, 0 is-next, 1 random-next
==========================  ==========  ================================================

The TFRecords store the integers as int64 (``tf.train.Example``); the input pipelines give
int32 either way.
"""

import numpy as np

from ..common import array_shards


def padded(instance, max_seq_length, max_predictions_per_seq):
    """The features of one :class:`~recipes.bert.instances.Instance`, padded: a dict of
    lists (ints; floats for ``masked_lm_weights``).

    Raises:
        ValueError: the instance is longer than ``max_seq_length``.
    """
    ids, length = instance.input_ids, len(instance.input_ids)
    if length > max_seq_length:
        raise ValueError(f"An instance has {length} tokens, more than {max_seq_length}.")
    pad = max_seq_length - length
    predictions = len(instance.masked_lm_positions)
    pad_predictions = max_predictions_per_seq - predictions
    return {
        "input_ids": ids + [0] * pad,
        "input_mask": [1] * length + [0] * pad,
        "segment_ids": instance.segment_ids + [0] * pad,
        "masked_lm_positions": instance.masked_lm_positions + [0] * pad_predictions,
        "masked_lm_ids": instance.masked_lm_ids + [0] * pad_predictions,
        "masked_lm_weights": [1.0] * predictions + [0.0] * pad_predictions,
        "next_sentence_labels": [instance.next_sentence_label],
    }


def record_dtype(max_seq_length, max_predictions_per_seq):
    """The structured dtype of one example in a NumPy shard (the table above)."""
    sequence, predictions = (max_seq_length,), (max_predictions_per_seq,)
    return np.dtype([
        ("input_ids", np.int32, sequence),
        ("input_mask", np.int32, sequence),
        ("segment_ids", np.int32, sequence),
        ("masked_lm_positions", np.int32, predictions),
        ("masked_lm_ids", np.int32, predictions),
        ("masked_lm_weights", np.float32, predictions),
        ("next_sentence_labels", np.int32, (1,)),
    ])


def to_records(instances, max_seq_length, max_predictions_per_seq):
    """``instances`` as a structured array, one row each (:func:`record_dtype`)."""
    records = np.zeros(len(instances), record_dtype(max_seq_length, max_predictions_per_seq))
    for row, instance in zip(records, instances):
        for name, values in padded(instance, max_seq_length, max_predictions_per_seq).items():
            row[name] = values
    return records


def check_shard(path, max_seq_length, max_predictions_per_seq, vocab_size, count=100,
                flag="--train_files"):
    """Checks a NumPy shard against the run's flags before training: its dtype, and that the
    token ids of its first ``count`` records fit the model's vocabulary (an id past the
    embedding is an error on a CPU, and silently wrong on a GPU or TPU).

    Raises:
        ValueError: the file is not a whole shard of BERT examples, holds no records, or does
            not fit a flag (the message names the file and the flag).
    """
    shard = array_shards.load(path, flag)
    expected = record_dtype(max_seq_length, max_predictions_per_seq)
    if shard.dtype != expected:
        lengths = {n: shard.dtype[n].shape for n in ("input_ids", "masked_lm_ids")
                   if n in (shard.dtype.names or ()) and len(shard.dtype[n].shape) == 1}
        if len(lengths) == 2 and shard.dtype == record_dtype(lengths["input_ids"][0],
                                                             lengths["masked_lm_ids"][0]):
            raise ValueError(
                f"{flag}: {path}: its records hold input_ids {lengths['input_ids']} and "
                f"masked_lm_ids {lengths['masked_lm_ids']}, not --max_seq_length="
                f"{max_seq_length} and --max_predictions_per_seq={max_predictions_per_seq} "
                "(records of another phase?)."
            )
        raise ValueError(f"{flag}: {path}: not a shard of BERT pre-training examples; it holds "
                         f"{shard.dtype}, not {expected}.")
    if not len(shard):
        raise ValueError(f"{flag}: {path}: the file holds no records.")
    head = shard[:count]
    largest = int(max(head["input_ids"].max(), head["masked_lm_ids"].max()))
    if largest >= vocab_size:
        raise ValueError(
            f"{flag}: {path}: token id {largest} does not fit the model's "
            f"--vocab_size={vocab_size}."
        )
