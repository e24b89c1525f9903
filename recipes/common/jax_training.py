"""The recipes' optimizer step on the JAX backend, data parallel over every device.

The TensorFlow step (:class:`~recipes.common.training.StepRunner`) runs under a
``tf.distribute`` strategy. On JAX the same step is one ``jax.jit`` function of the variables'
values (Keras' stateless API: ``model.stateless_call`` and ``optimizer.stateless_apply``), and
Keras' own distribution API spreads it: under ``keras.distribution.DataParallel`` the
variables are replicated on every device and each global batch is split along its first axis,
so XLA sums the gradients across the devices inside the step, before the optimizer (and its
``global_clipnorm``) sees them. One device and several devices of one host run the same code;
several hosts would also need ``keras.distribution.initialize`` and one writer, which the
studies do not do yet.

Nothing here imports TensorFlow.
"""

import jax
import keras
import numpy as np


def use_all_devices(global_batch_size, flag="--batch_sizes"):
    """Sets ``keras.distribution.DataParallel`` over every JAX device when there are several
    (call it before the model and optimizer are built, so their variables are replicated).

    Args:
        global_batch_size: int, examples per optimizer step, split evenly across devices.
        flag: the flag that set ``global_batch_size``, named in the error.

    Returns:
        The number of devices the batch is split across (1: no distribution was set).

    Raises:
        ValueError: ``global_batch_size`` does not divide across the devices.
    """
    devices = jax.devices()
    if len(devices) == 1:
        keras.distribution.set_distribution(None)
        return 1
    if global_batch_size % len(devices):
        raise ValueError(
            f"{flag}: the global batch size {global_batch_size} does not divide across the "
            f"{len(devices)} devices; use a multiple of {len(devices)}.")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


def shard(array):
    """``array`` placed as the current distribution lays out data (split along the batch
    axis); as a plain device array when no distribution is set, or when its first axis does
    not divide across the devices (then every device holds it whole)."""
    distribution = keras.distribution.distribution()
    if distribution is None or len(array) % jax.device_count():
        return jax.numpy.asarray(array)
    return keras.distribution.distribute_tensor(
        array, distribution.get_data_layout(array.shape))


class ArrayFeed:
    """Global batches from arrays in memory, reshuffled at each epoch, the last partial
    batch dropped (as ``fashion_mnist.train_dataset`` does on TensorFlow).

    Args:
        x: array ``(n, ...)``; y: array ``(n, ...)`` of labels.
        global_batch_size: int, examples per batch.
        seed: int, the shuffle seed (the order is NumPy's, not TensorFlow's).
    """

    def __init__(self, x, y, global_batch_size, seed):
        self.x, self.y = x, y
        self.global_batch_size = global_batch_size
        self.steps_per_epoch = len(x) // global_batch_size
        self._rng = np.random.default_rng(seed)
        self._order, self._position = None, self.steps_per_epoch

    def next(self):
        """The next ``(x, y)`` global batch, sharded over the devices."""
        if self._position == self.steps_per_epoch:
            self._order, self._position = self._rng.permutation(len(self.x)), 0
        start = self._position * self.global_batch_size
        index = np.sort(self._order[start : start + self.global_batch_size])
        self._position += 1
        return shard(self.x[index]), shard(self.y[index])


def _values(variables):
    return [v.value for v in variables]


class JaxStepRunner:
    """Compiled optimizer steps for ``model`` on the JAX backend.

    The step's state is the model's and the optimizer's variables: each step reads their
    values, runs the compiled step and assigns the results back, so the model can be
    evaluated or saved between steps as on TensorFlow.

    Args:
        model: a built ``keras.Model`` returning logits.
        optimizer: a ``keras.optimizers.Optimizer`` (its learning rate may be a schedule).
        sums: ``sums(outputs, labels) -> (loss_sum, metrics)``: a float32 scalar, the sum of
            per-label losses over the batch, and a dict of float32 scalar sums.
        global_batch_size: int, examples per optimizer step.
        labels_per_example: int, labels per example (a language model's time steps): the loss
            is divided by ``loss_denominator``, the global batch times this.
    """

    def __init__(self, model, optimizer, sums, global_batch_size, labels_per_example=1):
        self.model = model
        self.optimizer = optimizer
        self.sums = sums
        self.loss_denominator = global_batch_size * labels_per_example
        optimizer.build(model.trainable_variables)
        self._step = jax.jit(self._pure_step)

    def _pure_step(self, trainable, non_trainable, optimizer_variables, x, y):
        def loss(trainable):
            outputs, new_non_trainable = self.model.stateless_call(
                trainable, non_trainable, x, training=True)
            loss_sum, metrics = self.sums(outputs, y)
            return loss_sum / self.loss_denominator, (new_non_trainable,
                                                      dict(metrics, loss=loss_sum))

        (_, (non_trainable, metrics)), gradients = jax.value_and_grad(
            loss, has_aux=True)(trainable)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable)
        return trainable, non_trainable, optimizer_variables, metrics

    def train_step(self, feed):
        """One optimizer step on ``feed.next()``; returns the step's metric sums
        (``loss``: the sum of per-label losses)."""
        x, y = feed.next()
        groups = (self.model.trainable_variables, self.model.non_trainable_variables,
                  self.optimizer.variables)
        results = self._step(*(_values(g) for g in groups), x, y)
        for variables, values in zip(groups, results):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return results[-1]


def make_evaluate(model, sums, batch_size=10000):
    """Returns ``evaluate(x, y) -> dict of sums`` over arrays in memory: ``sums`` of the
    model's outputs in inference mode, added over batches of ``batch_size`` (the last one
    smaller), and ``loss`` (the sum of per-label losses). Each batch is split across the
    devices (:func:`shard`). The forward pass is compiled once per input shape and kept
    across calls."""

    @jax.jit
    def batch_sums(trainable, non_trainable, x, y):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        loss_sum, metrics = sums(outputs, y)
        return dict(metrics, loss=loss_sum)

    def evaluate(x, y):
        totals = None
        trainable = _values(model.trainable_variables)
        non_trainable = _values(model.non_trainable_variables)
        for start in range(0, len(x), batch_size):
            part = batch_sums(trainable, non_trainable, shard(x[start : start + batch_size]),
                              shard(y[start : start + batch_size]))
            totals = part if totals is None else {k: totals[k] + part[k] for k in totals}
        return {k: float(v) for k, v in totals.items()}

    return evaluate
