"""Fashion-MNIST for the batch-scaling study: an IDX reader and a loader with fall-backs.

Where the data comes from, in order (recipes/README.md, "Data"):

1. ``--data_dir``: a folder holding the four IDX files (``.gz`` or uncompressed). When given, it
   is the only place looked at: a wrong folder is an error, not a silent download.
2. The Debian/Ubuntu package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
3. ``keras.datasets.fashion_mnist.load_data()``: Keras' cache (``~/.keras/datasets``), else a
   download (needs the internet).

When none works, :class:`DataNotFoundError` says how to get the data.

Images come back as float32 in [0, 1], shape ``(n, 28, 28)``; labels as int32 in 0..9.
"""

import collections
import gzip
import os

import numpy as np

#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

#: The four files of the original release (Xiao et al. 2017,
#: github.com/zalandoresearch/fashion-mnist).
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: IDX magic numbers: 0x0000 08 03 (unsigned byte, 3 dimensions) and 0x0000 08 01 (1 dimension).
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

NUM_CLASSES = 10
NUM_TRAIN = 60000
NUM_TEST = 10000
IMAGE_SHAPE = (28, 28)

FashionMNIST = collections.namedtuple(
    "FashionMNIST", ["x_train", "y_train", "x_test", "y_test", "source"]
)
FashionMNIST.__doc__ = """Arrays of Fashion-MNIST and where they were read from (``source``)."""


class IDXFormatError(ValueError):
    """An IDX file is corrupt, truncated or not the kind expected; the message names the file."""


class DataNotFoundError(FileNotFoundError):
    """No copy of Fashion-MNIST could be found or downloaded; the message says how to get one."""


def read_idx(path, expected_magic=None):
    """Reads an IDX file (gzip-compressed or not) into a uint8 numpy array.

    The IDX format (LeCun et al., the MNIST page): a big-endian int32 magic number
    ``0x0000TTNN`` (``TT`` the element type, 0x08 for unsigned bytes; ``NN`` the number of
    dimensions), one big-endian int32 per dimension, then the elements in C order. So a
    28x28 image file has a 16-byte header (magic 2051) and a label file an 8-byte one (2049).

    Args:
        path: str, the file. Read through ``gzip`` when it starts with the gzip signature.
        expected_magic: optional int, e.g. :data:`IMAGES_MAGIC`; another magic is an error.

    Returns:
        A uint8 array of the shape the header gives.

    Raises:
        IDXFormatError: the file is not valid gzip, has a wrong magic number or element type,
            or holds fewer or more bytes than its header promises. The message names ``path``.
        FileNotFoundError: ``path`` does not exist.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise IDXFormatError(
                f"{path}: not a readable gzip file ({type(e).__name__}: {e}); the file is "
                "corrupt or truncated, download it again."
            ) from e
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header.")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise IDXFormatError(
            f"{path}: IDX magic number {magic}, expected {expected_magic} "
            f"({IMAGES_MAGIC} for images, {LABELS_MAGIC} for labels)."
        )
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise IDXFormatError(
            f"{path}: IDX magic number {magic:#010x} is not an unsigned-byte IDX file (0x000008NN)."
        )
    ndim = magic & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise IDXFormatError(f"{path}: truncated IDX header ({len(raw)} of {header_bytes} bytes).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) if shape else 1
    actual = len(raw) - header_bytes
    if actual != expected:
        raise IDXFormatError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{actual}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape)


def _find(directory, stem):
    """The path of ``stem`` or ``stem.gz`` in ``directory``, or None."""
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _check(x, y, split, source):
    """Checks one split's shapes and label range; returns ``(x float32 in [0,1], y int32)``."""
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise IDXFormatError(
            f"{source}: {split} images have shape {x.shape}, expected (n, 28, 28)."
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise IDXFormatError(
            f"{source}: {split} has {x.shape[0]} images but labels of shape {y.shape}."
        )
    if y.size and int(y.max()) >= NUM_CLASSES:
        raise IDXFormatError(f"{source}: {split} labels reach {int(y.max())}, expected 0..9.")
    return x.astype(np.float32) / np.float32(255.0), y.astype(np.int32)


def read_dir(directory):
    """Reads the four Fashion-MNIST IDX files from ``directory``.

    Returns:
        A :class:`FashionMNIST`, or None when any of the four files is missing.

    Raises:
        IDXFormatError: a file is there but corrupt (the message names it).
    """
    paths = {key: _find(directory, stem) for key, stem in FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    arrays = {}
    for key, path in paths.items():
        magic = IMAGES_MAGIC if key.startswith("x") else LABELS_MAGIC
        arrays[key] = read_idx(path, expected_magic=magic)
    x_train, y_train = _check(arrays["x_train"], arrays["y_train"], "train", directory)
    x_test, y_test = _check(arrays["x_test"], arrays["y_test"], "test", directory)
    return FashionMNIST(x_train, y_train, x_test, y_test, source=os.path.abspath(directory))


def _load_from_keras():
    """``keras.datasets.fashion_mnist.load_data()``: Keras' cache, else a download."""
    import keras  # Imported here: reading IDX files needs numpy only.

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    x_train, y_train = _check(x_train, y_train, "train", "keras.datasets.fashion_mnist")
    x_test, y_test = _check(x_test, y_test, "test", "keras.datasets.fashion_mnist")
    return FashionMNIST(x_train, y_train, x_test, y_test, source="keras.datasets.fashion_mnist")


def how_to_get_it(data_dir=None):
    """The text that tells a user how to get Fashion-MNIST (used in :class:`DataNotFoundError`)."""
    names = ", ".join(stem + ".gz" for stem in FILES.values())
    where = f"--data_dir={data_dir} does not hold" if data_dir else f"{DEBIAN_DIR} does not hold"
    return (
        f"Fashion-MNIST was not found: {where} the four IDX files ({names}). Get it one of "
        "three ways:\n"
        "  1. Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist   (31 MB, installs to "
        f"{DEBIAN_DIR})\n"
        "  2. Download the four files from "
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion) and pass "
        "--data_dir=<the folder>\n"
        "  3. Go online and leave --data_dir unset: keras.datasets.fashion_mnist.load_data() "
        "downloads them."
    )


def load_fashion_mnist(data_dir=None, allow_download=True):
    """Loads Fashion-MNIST from ``data_dir``, else the Debian package, else Keras (see module).

    Args:
        data_dir: optional str, a folder with the four IDX files. When given, nothing else is
            tried.
        allow_download: bool, whether to fall back on ``keras.datasets.fashion_mnist``.

    Returns:
        A :class:`FashionMNIST` (60000 train, 10000 test examples).

    Raises:
        DataNotFoundError: no copy found; the message says how to get one.
        IDXFormatError: a file was found but is corrupt (the message names it).
    """
    if data_dir:
        found = read_dir(data_dir) if os.path.isdir(data_dir) else None
        if found is None:
            raise DataNotFoundError(how_to_get_it(data_dir))
        return found
    found = read_dir(DEBIAN_DIR) if os.path.isdir(DEBIAN_DIR) else None
    if found is not None:
        return found
    if allow_download:
        try:
            return _load_from_keras()
        except Exception as e:  # Any failure to download (no network, proxy, ...) lands here.
            raise DataNotFoundError(
                how_to_get_it()
                + f"\n(keras.datasets.fashion_mnist failed: {type(e).__name__}: {e})"
            ) from e
    raise DataNotFoundError(how_to_get_it())


def steps_per_epoch(num_examples, global_batch_size):
    """Optimizer steps in one epoch; the last partial batch is dropped (:func:`train_dataset`)."""
    return num_examples // global_batch_size


def train_dataset(x, y, global_batch_size, seed):
    """The training pipeline for ONE epoch: shuffle, batch by the global batch, drop the remainder.

    Each iteration over the returned dataset is one epoch in a new order
    (``reshuffle_each_iteration``), and the sequence of orders is fixed by ``seed``, so every run
    of a study sees the same data order epoch by epoch. The shuffle is over indices and the batch
    is gathered from the arrays held in memory (cheap at 60k examples, unlike shuffling 60k image
    tensors).

    The last partial batch is DROPPED: every step uses exactly ``global_batch_size`` examples, so
    the batch size a row of the results names is the one every step used, and
    :func:`steps_per_epoch` (what the schedule is given) counts exactly the steps taken. The price:
    at batch 16384 each epoch skips 60000 - 3 * 16384 = 10848 examples (18%), a different subset
    every epoch.

    Args:
        x: float32 array ``(n, 28, 28)``.
        y: int32 array ``(n,)``.
        global_batch_size: int, examples per optimizer step (no replicas here: global = per step).
        seed: int, the shuffle seed.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)`` batches, ``steps_per_epoch(n, batch)`` long.
    """
    import tensorflow as tf

    images = tf.constant(x)
    labels = tf.constant(y)
    n = int(x.shape[0])
    return (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch_size, drop_remainder=True)
        .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        .prefetch(2)
    )
