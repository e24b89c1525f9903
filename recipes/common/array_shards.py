"""NumPy shards: a recipe's records as ``.npy`` files of structured arrays, read by grain.

This is the input path that needs no TensorFlow (the JAX backend, e.g. a TPU VM or GPU machine
with JAX alone). A shard ``<prefix>-00000-of-00008.npy`` holds one structured NumPy array: one
row per record, one field per feature, each of fixed shape (BERT's: int32 ``input_ids``
``[128]`` and so on; :mod:`recipes.bert.features`). ``np.load(mmap_mode="r")`` maps a shard
instead of reading it, and any record is read in O(1). So grain
(:func:`make_batches`) shuffles over all of a host's records instead of a buffer, and a
resumed run starts at its batch without reading what the finished steps consumed.

Reading needs grain (the ``jax`` extra); writing needs NumPy alone. The files must be on a
local or mounted file system (a bucket through gcsfuse), as memory maps are.
"""

import os

import numpy as np

from . import runtime

SUFFIX = ".npy"


class GrainNotInstalledError(ImportError):
    """NumPy shards were given, but grain, which reads them, is not installed."""


def check_reader():
    """Checks that grain is installed, before a run reads or writes anything.

    Raises:
        GrainNotInstalledError: it is not (the message says what to install).
    """
    try:
        import grain  # noqa: F401
    except ImportError as error:
        raise GrainNotInstalledError(
            f"NumPy shards are read with grain, which is not installed ({error}). Install "
            "with `pip install tf-lamb[jax]` (or `pip install grain`).") from error


def load(path, flag="--train_files"):
    """The structured array of the shard ``path``, memory-mapped.

    Raises:
        ValueError: the file is missing, is not a NumPy array file, is cut short, or does not
            hold one row per record (the message names the file and the flag).
    """
    if "://" in path:
        raise ValueError(f"{flag}: {path}: NumPy shards are memory-mapped, so they must be on "
                         "a local or mounted file system (e.g. a bucket through gcsfuse).")
    try:
        shard = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise ValueError(f"{flag}: {path} does not exist.") from None
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"{flag}: {path} is not a whole NumPy array file ({error}).") from None
    if shard.dtype.names is None or shard.ndim != 1:
        raise ValueError(f"{flag}: {path} holds a {shard.dtype} array of shape {shard.shape}, "
                         "not one row per record (NumPy shards).")
    return shard


def is_array_shards(files):
    """Whether ``files`` (paths) are NumPy shards (``.npy``): all of them, or none.

    Raises:
        ValueError: some are and some are not.
    """
    shards = [f.endswith(SUFFIX) for f in files]
    if any(shards) and not all(shards):
        raise ValueError(f"Give TFRecords or NumPy shards ({SUFFIX}), not both: {files}")
    return bool(shards) and all(shards)


def write_shards(records, output_prefix, num_shards):
    """Writes ``records`` round-robin into ``num_shards`` files
    ``{output_prefix}-{i:05d}-of-{n:05d}.npy``, each complete or absent (a temporary file
    renamed into place).

    Args:
        records: a structured NumPy array, one row per record.
        output_prefix: e.g. ``out/seq128/train``; its folder is created.
        num_shards: int >= 1 (capped at the number of records).

    Returns:
        The list of paths written.

    Raises:
        ValueError: ``num_shards`` < 1, or ``records`` is not a structured array.
    """
    if records.dtype.names is None:
        raise ValueError(f"NumPy shards hold structured arrays. Received dtype {records.dtype}")
    paths = runtime.shard_paths(output_prefix, num_shards, len(records), SUFFIX)
    os.makedirs(os.path.dirname(output_prefix) or ".", exist_ok=True)
    for i, path in enumerate(paths):
        with open(path + ".tmp", "wb") as f:
            np.save(f, records[i::len(paths)])
        os.replace(path + ".tmp", path)
    return paths


class ShardSource:
    """Random access to the records of several NumPy shards, in file order (a grain data
    source: ``len`` and ``[index]``).

    Args:
        files: ``.npy`` paths, each a structured array of the same fields.
        flag: the flag that named the files, for errors.

    Raises:
        ValueError: a file is not a whole shard (:func:`load`), or its fields differ from the
            first file's (the message names the file and the flag).
    """

    def __init__(self, files, flag="--train_files"):
        self.files = list(files)
        self.shards = []
        for path in self.files:
            shard = load(path, flag)
            if self.shards and shard.dtype != self.shards[0].dtype:
                raise ValueError(f"{flag}: {path} holds the fields {shard.dtype.descr}, not "
                                 f"those of {self.files[0]}: {self.shards[0].dtype.descr}")
            self.shards.append(shard)
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, index):
        shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
        row = self.shards[shard][index - self.offsets[shard]]
        return {name: np.array(row[name]) for name in row.dtype.names}

    def __repr__(self):
        return f"ShardSource({len(self.files)} files, {len(self)} records)"


def make_batches(files, batch_size, *, num_shards=1, shard_index=0, training=True, seed=0,
                 shuffle=True, drop_remainder=None, skip=0, flag="--train_files", threads=4):
    """Batches of one input pipeline's records, through grain.

    In training: this pipeline's share of the files (``files[shard_index::num_shards]``, as
    the TFRecord path splits them), shuffled over all its records with ``seed``, a new order
    each epoch, repeated forever, in full batches. In evaluation: its share of all the
    records (every ``num_shards``-th from ``shard_index``), one pass in file order.

    Args:
        files: ``.npy`` paths.
        batch_size: int, records per batch (this pipeline's share of one pass).
        num_shards, shard_index: the input pipelines (hosts) and this one's index.
        training: bool.
        seed: int, the shuffle's seed (any int; taken modulo 2**32).
        shuffle: bool; in training, False keeps the files' order (tests).
        drop_remainder: bool, drop a last partial batch; default ``training``.
        skip: int, records of this pipeline's order already consumed (a resumed run's
            finished passes, a multiple of ``batch_size``): the batches start after them,
            with nothing read to get there.
        flag: the flag that named the files, for errors.
        threads: int, grain's reading threads.

    Returns:
        An iterable of dicts of NumPy arrays ``[batch, *field shape]``, one per field.

    Raises:
        ValueError: in training, fewer files than pipelines; the files hold no records;
            ``skip`` is not a multiple of ``batch_size``.
        GrainNotInstalledError: grain is not installed (:func:`check_reader`).
    """
    check_reader()
    import grain

    if training and len(files) < num_shards:
        raise ValueError(f"{flag}: {len(files)} input files cannot be split across "
                         f"{num_shards} hosts; write at least one file per host.")
    if skip % batch_size:
        raise ValueError(f"skip={skip} is not a whole number of batches of {batch_size}.")
    source = ShardSource(files[shard_index::num_shards] if training else files, flag)
    if not len(source):
        raise ValueError(f"{flag}: the files hold no records.")
    dataset = grain.MapDataset.source(source)
    if training:
        if shuffle:
            dataset = dataset.shuffle(seed=seed % 2**32)  # grain's seeds: [0, 2**32)
        dataset = dataset.repeat(None)  # reseeds the shuffle each epoch
    elif num_shards > 1:
        dataset = dataset[shard_index::num_shards]
    if drop_remainder is None:
        drop_remainder = training
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if skip:
        dataset = dataset[skip // batch_size:]
    return dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
    )
