"""tf.data input for BERT pre-training: TFRecord files -> per-replica batches.

Files are sharded across hosts before anything is read, shuffled, read interleaved, shuffled
again by example and batched at the host's share of a pass. Everything is seeded, so a run's
data order repeats; :class:`recipes.common.training.DataFeed` checkpoints the iterator with the
model (or skips what was consumed), so a resumed run continues at the same example.
"""

import tensorflow as tf

from ..common import tfrecords
from . import records


def make_dataset(
    files,
    max_seq_length,
    max_predictions_per_seq,
    batch_size,
    num_shards=1,
    shard_index=0,
    training=True,
    seed=0,
    shuffle_buffer=10000,
    drop_remainder=None,
    skip=0,
):
    """Batches of parsed pre-training examples, for one host.

    Args:
        files: list of TFRecord paths (Google's or Model Garden's feature names).
        max_seq_length, max_predictions_per_seq: the records' shapes (128/20 or 512/80).
        batch_size: int, examples per element: this host's share of one forward pass (its
            replicas x the per-replica batch).
        num_shards, shard_index: this input pipeline's share: in training its share of the
            files (each host reads its own files, so its position can be checkpointed); in
            evaluation its share of the records (any number of files).
        training: bool; shuffle and repeat forever (else one pass, in file order).
        seed: int, for the file and example shuffles.
        shuffle_buffer: int, examples in the shuffle buffer; 0 keeps the files' interleaved
            order (the files are still shuffled): a run then reads exactly the examples that
            any other host split of the same files reads, step by step (tests).
        drop_remainder: bool, drop a last partial batch; default ``training`` (a TPU needs
            True in evaluation too).
        skip: int, examples of this pipeline's order to skip before parsing them: where a
            resumed run's finished steps left it (``--resume_data=skip``).

    Returns:
        A ``tf.data.Dataset`` of dicts: int32 ``input_ids``, ``input_mask``, ``segment_ids``
        ``[batch_size, max_seq_length]``; int32 ``masked_lm_positions``, ``masked_lm_ids``,
        float32 ``masked_lm_weights`` ``[batch_size, max_predictions_per_seq]``; int32
        ``next_sentence_labels`` ``[batch_size, 1]``; the last batch of an evaluation pass may
        be smaller unless ``drop_remainder``.

    Raises:
        ValueError: the files use neither naming, or in training there are fewer files than
            hosts (each host must read its own files).
    """
    names = records.feature_names(files[0])
    dataset = tfrecords.read(files, training, num_shards, shard_index, seed)
    if training and shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if skip:
        dataset = dataset.skip(skip)
    parse = records.parse_fn(names, max_seq_length, max_predictions_per_seq)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if drop_remainder is None:
        drop_remainder = training
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
