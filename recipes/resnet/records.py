"""ImageNet TFRecords in the TPU reference's format (tensorflow/tpu ``imagenet_to_gcs.py``).

Each record is a ``tf.train.Example``; the reader needs only the first two features:

=======================  =======  =====================================================
feature                  dtype    value
=======================  =======  =====================================================
``image/encoded``        bytes    the JPEG
``image/class/label``    int64    the class, 1-based (1..1000 on ImageNet)
``image/class/text``     bytes    the class name (ImageNet: the synset)
``image/format``         bytes    ``JPEG``
``image/height``         int64    pixels
``image/width``          int64    pixels
``image/channels``       int64    3 (RGB) or 1 (grey)
``image/filename``       bytes    where the image came from
=======================  =======  =====================================================

Shards are named ``train-00000-of-01024`` and ``validation-00000-of-00128``, like the
reference's.
"""

import tensorflow as tf

ENCODED = "image/encoded"
LABEL = "image/class/label"


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def to_example(jpeg, label, height, width, channels, text, filename):
    """One serialized record.

    Args:
        jpeg: bytes, a JPEG.
        label: int >= 1, the 1-based class.
        height, width, channels: ints, the image's shape.
        text: str, the class name.
        filename: str, the image's source.
    """
    features = {
        ENCODED: _bytes(jpeg),
        LABEL: _int64(label),
        "image/class/text": _bytes(text.encode()),
        "image/format": _bytes(b"JPEG"),
        "image/height": _int64(height),
        "image/width": _int64(width),
        "image/channels": _int64(channels),
        "image/filename": _bytes(filename.encode()),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(
        deterministic=True
    )


def parse(serialized):
    """``(jpeg bytes: tf.string scalar, label: tf.int32 scalar as stored, -1 when absent)``."""
    parsed = tf.io.parse_single_example(serialized, {
        ENCODED: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    })
    return parsed[ENCODED], tf.cast(parsed[LABEL], tf.int32)
