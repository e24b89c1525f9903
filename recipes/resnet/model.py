"""The recipe's models: ResNet-50 from ``keras.applications`` and the small CIFAR-style ResNets
of He et al. (2016, Sec. 4.2) for small images; all return logits.

keras-hub's ``ResNetBackbone`` would also do, but it pulls in ``tensorflow-text`` and with it the
full ``tensorflow`` wheel as dependencies, which would replace a user's
``tensorflow-cpu`` or ``tensorflow-tpu``.
"""

import keras

#: Variables that get neither weight decay nor layer-wise adaptation (the TPU reference's
#: ``skip_list=['batch_normalization', 'bias']``), matched on variable paths: every
#: batch-normalization layer here is named ``..._bn`` (``keras.applications`` does the same).
EXCLUDE = ["_bn/", "bias"]

#: Small ResNets, depth 6n + 2 (He et al. 2016, Sec. 4.2: 3 stages of n basic blocks at
#: 16, 32 and 64 filters).
SMALL_DEPTHS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet56": 56}
MODELS = ("resnet50",) + tuple(SMALL_DEPTHS)


def build(name, image_size, num_classes):
    """A ResNet classifier returning logits.

    Args:
        name: one of :data:`MODELS`.
        image_size: int, the square input's side; inputs are float ``[batch, image_size,
            image_size, 3]`` (normalized RGB).
        num_classes: int >= 2.

    Returns:
        A ``keras.Model``, logits ``[batch, num_classes]`` in the dtype policy's compute dtype.

    Raises:
        ValueError: an unknown ``name`` (the message names ``--model``).
    """
    if name == "resnet50":
        return keras.applications.ResNet50(
            weights=None, input_shape=(image_size, image_size, 3), classes=num_classes,
            classifier_activation=None,
        )
    if name not in SMALL_DEPTHS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}. Received: {name!r}")
    blocks = (SMALL_DEPTHS[name] - 2) // 6
    inputs = keras.Input((image_size, image_size, 3))
    x = _conv_bn(inputs, 16, 3, 1, "stem")
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"stage{stage + 1}_block{block + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv_bn(x, filters, kernel_size, stride, name):
    x = keras.layers.Conv2D(filters, kernel_size, stride, padding="same", use_bias=False,
                            kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def _basic_block(x, filters, stride, name):
    """Two 3x3 convolutions with a shortcut (a 1x1 projection where the shape changes)."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut")
    y = _conv_bn(x, filters, 3, stride, f"{name}_1")
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_2")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)
