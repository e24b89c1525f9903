r"""Writes labelled images as ImageNet TFRecords in the TPU reference's format, so the ResNet
input pipeline runs end to end on real JPEGs from any data.

    # Fashion-MNIST (apt-get install dataset-fashion-mnist): 60,000 train / 10,000 validation
    python -m recipes.resnet.convert --source=fashion_mnist --output_dir=/tmp/fashion_records
    # a folder of class folders: DIR/train/<class>/* and DIR/validation/<class>/*, or
    # DIR/<class>/* with --validation_fraction of each class held out
    python -m recipes.resnet.convert --source=/data/flowers --output_dir=/tmp/flower_records

Classes get labels 1..N in sorted order of their names (Fashion-MNIST: its own order), as
ImageNet's 1..1000. Written: ``train-*-of-*``, ``validation-*-of-*`` (each shard complete or
absent), ``labels.txt`` (one class name per line, label 1 first) and ``metadata.json``
(``num_classes``, ``train_examples``, ``validation_examples``, ``label_offset``: 1), which the
training program reads.
"""

import json
import os
import random

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..common import driver, fashion_mnist, tfrecords  # noqa: E402
from . import records  # noqa: E402

FLAGS = flags.FLAGS
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv``."""
    flags.DEFINE_string("source", "fashion_mnist", "'fashion_mnist' or a folder of class "
                        "folders (see the module docstring).", flag_values=fv)
    flags.DEFINE_string("fashion_mnist_dir", None, "A folder with Fashion-MNIST's four IDX "
                        "files (default: the Debian package's, else Keras' download).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where the records go.", flag_values=fv)
    flags.DEFINE_integer("train_shards", 8, "Training files (at least one per host that will "
                         "read them).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("validation_shards", 2, "Validation files.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("max_examples", 0, "Keep at most this many examples per split, the "
                         "first in the source's order (0: all).", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("validation_fraction", 0.1, "Share of each class held out when the "
                       "folder has no validation/ split.", lower_bound=0.0, upper_bound=0.9,
                       flag_values=fv)
    flags.DEFINE_integer("jpeg_quality", 95, "Quality of the JPEGs this program encodes.",
                         lower_bound=1, upper_bound=100, flag_values=fv)


def _encode(images, quality):
    """JPEGs of uint8 images ``[n, h, w, c]``, encoded in parallel by tf.data."""
    dataset = tf.data.Dataset.from_tensor_slices(images).map(
        lambda image: tf.io.encode_jpeg(image, quality=quality),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )
    return [jpeg.numpy() for jpeg in dataset]


def fashion_mnist_splits(data_dir, quality, max_examples=0):
    """Fashion-MNIST as ``{split: [serialized record]}`` and its class names.

    Images are grey 28x28 JPEGs (one channel; the reader decodes them to RGB).
    """
    data = fashion_mnist.load_fashion_mnist(data_dir)
    splits = {}
    for split, x, y in (("train", data.x_train, data.y_train),
                        ("validation", data.x_test, data.y_test)):
        if max_examples:
            x, y = x[:max_examples], y[:max_examples]
        pixels = np.round(x * 255.0).astype(np.uint8)[..., None]
        splits[split] = [
            records.to_example(jpeg, int(label) + 1, 28, 28, 1, FASHION_CLASSES[label],
                               f"{data.source}:{split}:{i}")
            for i, (jpeg, label) in enumerate(zip(_encode(pixels, quality), y))
        ]
    return splits, list(FASHION_CLASSES)


def _class_files(directory):
    """``{class name: sorted image paths}`` of a folder of class folders."""
    classes = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            classes[name] = sorted(
                os.path.join(root, f) for root, _, files in os.walk(path) for f in files
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
    return classes


def image_record(path, label, text, quality):
    """One record of the image file at ``path``: a JPEG kept as it is (grey or RGB), any
    other image (PNG, BMP, GIF's first frame, CMYK JPEG) re-encoded as an RGB JPEG.

    Raises:
        ValueError: the file is not a readable image (the message names it).
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if raw[:2] == b"\xff\xd8":
            height, width, channels = (int(v) for v in tf.io.extract_jpeg_shape(raw))
            if channels in (1, 3):
                tf.io.decode_jpeg(raw)  # the whole file must decode
                return records.to_example(raw, label, height, width, channels, text, path)
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"--source: {path} is not a readable image ({error.message})") from None
    height, width, _ = image.shape
    jpeg = tf.io.encode_jpeg(image, quality=quality).numpy()
    return records.to_example(jpeg, label, height, width, 3, text, path)


def folder_splits(directory, quality, validation_fraction, max_examples=0, seed=0):
    """A folder's images as ``{split: [serialized record]}`` and the class names (sorted).

    Raises:
        ValueError: no class folders with images, a class in validation/ but not in train/,
            or an unreadable image (the messages name the folder or file).
    """
    if os.path.isdir(os.path.join(directory, "train")):
        train = _class_files(os.path.join(directory, "train"))
        validation_dir = os.path.join(directory, "validation")
        validation = _class_files(validation_dir) if os.path.isdir(validation_dir) else {}
        unknown = sorted(set(validation) - set(train))
        if unknown:
            raise ValueError(f"--source: {validation_dir} has classes not in train/: {unknown}")
    else:
        train, validation = {}, {}
        rng = random.Random(seed)
        for name, paths in _class_files(directory).items():
            paths = list(paths)
            rng.shuffle(paths)
            held = int(round(len(paths) * validation_fraction))
            validation[name], train[name] = sorted(paths[:held]), sorted(paths[held:])
    classes = sorted(name for name, paths in train.items() if paths)
    if not classes:
        raise ValueError(f"--source: no class folders with images ({', '.join(IMAGE_EXTENSIONS)}) "
                         f"in {directory}")
    splits = {}
    for split, files in (("train", train), ("validation", validation)):
        items = [(p, label, name) for label, name in enumerate(classes, 1)
                 for p in files.get(name, [])]
        if max_examples:
            items = items[:max_examples]
        splits[split] = [image_record(p, label, name, quality) for p, label, name in items]
    return splits, classes


def convert(fv=FLAGS, log=print):
    """Runs the conversion the flags describe; returns the metadata written.

    Raises:
        ValueError: a missing flag or bad input, naming it.
    """
    if not fv.output_dir:
        raise ValueError("--output_dir is required.")
    if fv.source == "fashion_mnist":
        splits, classes = fashion_mnist_splits(fv.fashion_mnist_dir, fv.jpeg_quality,
                                               fv.max_examples)
    elif os.path.isdir(fv.source):
        splits, classes = folder_splits(fv.source, fv.jpeg_quality, fv.validation_fraction,
                                        fv.max_examples)
    else:
        raise ValueError(f"--source must be 'fashion_mnist' or a folder. Received: {fv.source!r}")
    shards = {"train": fv.train_shards, "validation": fv.validation_shards}
    for split, serialized in splits.items():
        if serialized:
            paths = tfrecords.write_shards(serialized, os.path.join(fv.output_dir, split),
                                           shards[split])
            log(f"{split}: {len(serialized)} images in {len(paths)} files")
    with open(os.path.join(fv.output_dir, "labels.txt"), "w") as f:
        f.write("".join(f"{name}\n" for name in classes))
    metadata = {
        "source": os.path.abspath(fv.source) if fv.source != "fashion_mnist" else fv.source,
        "num_classes": len(classes), "label_offset": 1,
        "train_examples": len(splits["train"]), "validation_examples": len(splits["validation"]),
    }
    with open(os.path.join(fv.output_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def run():
    """Console-script entry point."""
    driver.command_line(define_flags, convert, (ValueError, fashion_mnist.DataNotFoundError))


if __name__ == "__main__":
    run()
