"""tf.data input for BERT pre-training: TFRecord files -> per-replica batches.

Files are sharded across hosts before anything is read, shuffled, read interleaved, shuffled
again by example and batched at the host's share of a pass. Everything is seeded, so a run's
data order repeats; :class:`recipes.common.training.DataFeed` checkpoints the iterator with the
model, so a resumed run continues at the same example.
"""

import tensorflow as tf

from . import records


def list_files(pattern, flag="--train_files"):
    """The sorted files matching the comma-separated glob(s) ``pattern``.

    Raises:
        FileNotFoundError: nothing matches (the message names the flag and the pattern).
    """
    files = sorted({f for p in pattern.split(",") if p for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"{flag}: no file matches {pattern!r}")
    return files


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
):
    """Batches of parsed pre-training examples, for one host.

    Args:
        files: list of TFRecord paths (Google's or Model Garden's feature names).
        max_seq_length, max_predictions_per_seq: the records' shapes (128/20 or 512/80).
        batch_size: int, examples per element: this host's share of one forward pass (its
            replicas x the per-replica batch).
        num_shards, shard_index: this host's share of the files (one input pipeline per host).
        training: bool; shuffle and repeat forever (else one pass, in file order).
        seed: int, for the file and example shuffles.
        shuffle_buffer: int, examples in the shuffle buffer; 0 keeps the files' interleaved
            order (the files are still shuffled): a run then reads exactly the examples that
            any other host split of the same files reads, step by step (tests).

    Returns:
        A ``tf.data.Dataset`` of dicts: int32 ``input_ids``, ``input_mask``, ``segment_ids``
        ``[batch_size, max_seq_length]``; int32 ``masked_lm_positions``, ``masked_lm_ids``,
        float32 ``masked_lm_weights`` ``[batch_size, max_predictions_per_seq]``; int32
        ``next_sentence_labels`` ``[batch_size, 1]``; in training full batches only (in evaluation
        the last batch may be smaller).

    Raises:
        ValueError: the files use neither naming, or there are fewer files than hosts (each
            host must read its own files).
    """
    names = records.feature_names(files[0])
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if num_shards > 1:
        if len(files) < num_shards:
            raise ValueError(
                f"{len(files)} input files cannot be split across {num_shards} hosts; "
                "write at least one shard per host (--num_shards)."
            )
        dataset = dataset.shard(num_shards, shard_index)
    # This host's files: reading more at once than it has would open a file twice (after the
    # repeat) and give each batch duplicated examples.
    host_files = len(range(shard_index, len(files), num_shards))
    if training:
        dataset = dataset.shuffle(host_files, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(8, host_files),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if training and shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    parse = records.parse_fn(names, max_seq_length, max_predictions_per_seq)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
