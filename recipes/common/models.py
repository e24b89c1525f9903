"""The two models of the batch-scaling study, with seeded initializers.

Every initializer gets its own explicit seed derived from ``seed``, so two calls of
:func:`build_model` with the same arguments give bit-identical initial weights whatever the global
random state: every run of a study starts from the same point.

- ``mlp`` (the default): 784-512-256-10, ReLU, 535,818 parameters. Sized so the default sweep
  (4 optimizers x 4 batch sizes x 30 epochs) runs in 6-8 minutes on 2 CPU cores (measured,
  ``recipes/batch_scaling/TUNING.md``). Six variables, so six trust ratios: enough for
  layer-wise adaptation to matter.
- ``cnn``: two 3x3 conv layers (32, 64 filters) with 2x2 max-pooling, a 128-unit dense layer and
  the 10-way output, LeNet-like (the LAMB paper's MNIST Table 7 uses LeNet). 5-10x slower than
  the MLP on 2 CPU cores (2 epochs at batch 256: 20 s against 3.7 s), and the default learning
  rates were tuned for the MLP, not for it.

- ``lstm``: the image read row by row, 28 time steps of 28 pixels, into one LSTM layer of 128
  units whose last output feeds the 10-way layer: the MNIST-LSTM set-up of the LEGW paper (You
  et al. 2019, arXiv 1901.08256), 81,674 parameters.

No batch normalization and no dropout: the study is about the optimizer, and both would interact
with the batch size on their own.
"""

import keras

MODELS = ("mlp", "cnn", "lstm")

#: Units of the LSTM (the LEGW paper's MNIST-LSTM).
LSTM_UNITS = 128

#: Hidden widths of the MLP (see the module docstring for why).
MLP_HIDDEN_UNITS = (512, 256)


def build_model(name="mlp", seed=0, num_classes=10):
    """Builds ``name`` for 28x28 grey images, returning logits.

    Args:
        name: one of :data:`MODELS`.
        seed: int; the initial weights depend on it and on nothing else.
        num_classes: int, the output width.

    Returns:
        A built ``keras.Model`` whose input is ``(batch, 28, 28)`` float32.

    Raises:
        ValueError: unknown ``name``.
    """
    counter = iter(range(1000))

    def kernel():
        return keras.initializers.GlorotUniform(seed=seed * 1000 + next(counter))

    inputs = keras.Input((28, 28), name="image")
    if name == "mlp":
        h = keras.layers.Flatten(name="flatten")(inputs)
        for i, units in enumerate(MLP_HIDDEN_UNITS):
            h = keras.layers.Dense(
                units, activation="relu", kernel_initializer=kernel(), name=f"dense_{i}"
            )(h)
    elif name == "cnn":
        h = keras.layers.Reshape((28, 28, 1), name="channels")(inputs)
        for i, filters in enumerate((32, 64)):
            h = keras.layers.Conv2D(
                filters, 3, activation="relu", kernel_initializer=kernel(), name=f"conv_{i}"
            )(h)
            h = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(h)
        h = keras.layers.Flatten(name="flatten")(h)
        h = keras.layers.Dense(
            128, activation="relu", kernel_initializer=kernel(), name="dense_0"
        )(h)
    elif name == "lstm":
        h = keras.layers.LSTM(
            LSTM_UNITS, kernel_initializer=kernel(),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed * 1000 + next(counter)),
            name="lstm",
        )(inputs)
    else:
        raise ValueError(f"Unknown model {name!r}; expected one of {MODELS}.")
    logits = keras.layers.Dense(num_classes, kernel_initializer=kernel(), name="logits")(h)
    return keras.Model(inputs, logits, name=f"fashion_mnist_{name}")
