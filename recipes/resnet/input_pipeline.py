"""tf.data input for ImageNet-format TFRecords (or TFDS' ``imagenet2012``), with the TPU
reference's preprocessing (tensorflow/tpu ``models/official/resnet/resnet_preprocessing.py``).

Training: a random crop of 8%-100% of the area and aspect ratio 3/4-4/3 covering at least 10%
of the image (``sample_distorted_bounding_box``, 10 attempts; a centre crop when every attempt
fails), decoded straight from the JPEG, bicubic resize to ``image_size``, random left-right
flip, then per-channel normalization. Evaluation: the centre ``image_size / (image_size +
crop_padding)`` of the shorter side, resized the same way.

Random choices use stateless ops seeded by ``(seed, host, example count)``: whether the
iterator was saved in a checkpoint or the consumed examples are skipped, a resumed run crops
and flips every example as the uninterrupted run would have.
"""

import tensorflow as tf

from ..common import tfrecords
from . import records

#: ImageNet's per-channel mean and standard deviation on [0, 1] pixels (the TPU reference).
MEAN_RGB = (0.485, 0.456, 0.406)
STDDEV_RGB = (0.229, 0.224, 0.225)
#: The reference's centre-crop padding: 224 / (224 + 32) = 87.5% of the shorter side.
CROP_PADDING = 32


def _normalize(image, image_size, dtype):
    image = tf.image.resize(image, [image_size, image_size], method="bicubic")
    image = (image - tf.constant(MEAN_RGB) * 255.0) / (tf.constant(STDDEV_RGB) * 255.0)
    return tf.cast(tf.reshape(image, [image_size, image_size, 3]), dtype)


def _center_window(shape, fraction):
    height, width = shape[0], shape[1]
    side = tf.cast(fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    side = tf.maximum(side, 1)
    return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def preprocess_for_eval(jpeg, image_size, crop_padding=CROP_PADDING, dtype=tf.float32):
    """A centre-cropped, resized, normalized image ``[image_size, image_size, 3]`` of
    ``dtype`` from a JPEG (grey or RGB)."""
    shape = tf.io.extract_jpeg_shape(jpeg)
    window = _center_window(shape, image_size / (image_size + crop_padding))
    image = tf.cast(tf.io.decode_and_crop_jpeg(jpeg, window, channels=3), tf.float32)
    return _normalize(image, image_size, dtype)


def preprocess_for_train(jpeg, image_size, seed, min_crop_area=0.08, crop_padding=CROP_PADDING,
                         dtype=tf.float32):
    """A randomly cropped, resized, flipped, normalized image ``[image_size, image_size, 3]``.

    Args:
        jpeg: a tf.string scalar.
        image_size: int.
        seed: int32 tensor ``[2]`` for the stateless random ops.
        min_crop_area: float in (0, 1], the crop's smallest share of the image (0.08 in the
            reference).
        crop_padding: int, for the centre-crop fallback.
        dtype: the output dtype (bfloat16 on a TPU).
    """
    shape = tf.io.extract_jpeg_shape(jpeg)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seeds[0],
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(min_crop_area, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    # Every attempt failed when the box is the whole image (at least 3 of its 3 dims equal).
    failed = tf.reduce_all(tf.equal(size, shape))
    window = tf.cond(
        failed,
        lambda: _center_window(shape, image_size / (image_size + crop_padding)),
        lambda: tf.stack([begin[0], begin[1], size[0], size[1]]),
    )
    image = tf.cast(tf.io.decode_and_crop_jpeg(jpeg, window, channels=3), tf.float32)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return _normalize(image, image_size, dtype)


def class_index(label, label_offset, num_classes):
    """The 0-based class of a stored ``label``; a label outside ``[0, num_classes)`` after
    the offset raises ``InvalidArgumentError`` (in a dataset: when the element is read)."""
    label = label - label_offset
    tf.debugging.assert_less(label, num_classes, "label >= --num_classes")
    tf.debugging.assert_non_negative(label, "label below --label_offset")
    return label


def decode_check(serialized):
    """Parses a record and decodes its JPEG: a bad record fails here (see
    :func:`recipes.common.tfrecords.find_bad_file`)."""
    jpeg, label = records.parse(serialized)
    return tf.io.decode_jpeg(jpeg), label


def read_records(files, training=True, num_shards=1, shard_index=0, seed=0):
    """``(jpeg, stored label)`` pairs from TFRecord ``files`` for one input pipeline: in
    training this pipeline's share of the files, shuffled and repeated forever; otherwise its
    share of the records, one pass in file order.

    Raises:
        ValueError: fewer training files than shards (each host must read its own files).
    """
    dataset = tfrecords.read(files, training, num_shards, shard_index, seed, cycle_length=16)
    return dataset.map(records.parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def read_tfds(name, split, data_dir=None, training=True, num_shards=1, shard_index=0):
    """``(jpeg, label)`` pairs from TensorFlow Datasets (e.g. ``imagenet2012``, whose labels
    are 0-based: use ``label_offset=0``), the JPEGs left encoded so the same preprocessing
    applies. TFDS must be installed and the data prepared (it downloads nothing here).

    Raises:
        ValueError: ``tensorflow_datasets`` is not installed (the message names the flag).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ValueError("--tfds_name needs TensorFlow Datasets: pip install "
                         "tensorflow-datasets") from None
    if num_shards > 1:
        split = tfds.even_splits(split, n=num_shards)[shard_index]
    dataset = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=training,
                        decoders={"image": tfds.decode.SkipDecoding()}, download=False,
                        read_config=tfds.ReadConfig(shuffle_seed=0))
    dataset = dataset.map(lambda e: (e["image"], tf.cast(e["label"], tf.int32)))
    return dataset.repeat() if training else dataset


def make_dataset(examples, batch_size, image_size, training=True, shard_index=0, seed=0,
                 shuffle_buffer=1024, label_offset=1, num_classes=1000, min_crop_area=0.08,
                 crop_padding=CROP_PADDING, dtype=tf.float32, drop_remainder=None, skip=0):
    """Batches of preprocessed ``(images, labels)`` for one input pipeline.

    Args:
        examples: ``(jpeg, stored label)`` pairs, from :func:`read_records` or
            :func:`read_tfds` with the same ``training``.
        batch_size: int, examples per element (this host's share of a pass).
        image_size: int.
        training: bool: shuffle and augment (else keep the order, centre crop).
        shard_index: int, this pipeline's index (part of the augmentation seed).
        seed: int, for the shuffle and augmentation.
        shuffle_buffer: int, examples in the shuffle buffer (saved with every checkpoint under
            ``--resume_data=iterator``: 1,024 ImageNet JPEGs are about 110 MB); 0 keeps the
            files' interleaved order.
        label_offset: int subtracted from the stored labels: 1 for 1-based records (the
            reference's, this recipe's converter), 0 for TFDS.
        num_classes: int; a label outside ``[0, num_classes)`` after the offset stops the
            run (``InvalidArgumentError``) rather than training on it.
        min_crop_area, crop_padding: see :func:`preprocess_for_train`.
        dtype: image dtype, ``tf.float32`` or ``tf.bfloat16``.
        drop_remainder: drop a last partial batch; default ``training``.
        skip: int, training examples to skip before decoding them (a resumed run's data
            position under ``--resume_data=skip``); the augmentation seeds still count them.

    Returns:
        A ``tf.data.Dataset`` of ``(images [batch, image_size, image_size, 3] dtype, labels
        [batch] int32)``.
    """
    dataset = examples
    if training and shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def preprocess(jpeg, label, count=None):
        if training:
            example_seed = tf.stack([seed * 65536 + shard_index, count])
            image = preprocess_for_train(jpeg, image_size, example_seed, min_crop_area,
                                         crop_padding, dtype)
        else:
            image = preprocess_for_eval(jpeg, image_size, crop_padding, dtype)
        return image, class_index(label, label_offset, num_classes)

    if training:  # the count (saved with the iterator, or skipped) seeds each augmentation
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.counter(dtype=tf.int32))
        if skip:
            dataset = dataset.skip(skip)
        dataset = dataset.map(lambda pair, count: preprocess(*pair, count),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if drop_remainder is None:
        drop_remainder = training
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
