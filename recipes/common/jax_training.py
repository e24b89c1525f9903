"""The recipes' optimizer step on the JAX backend, over every device.

The TensorFlow step (:class:`~recipes.common.training.StepRunner`) runs under a
``tf.distribute`` strategy. On JAX the same step, with the same task
(``task(model, batch, training) -> (loss_sum, metrics)`` written in ``keras.ops``), is one
``jax.jit`` function of the variables' values, and Keras' own distribution API
(``keras.distribution``) spreads it: under ``DataParallel`` the variables are replicated on
every device, under ``ModelParallel`` the large kernels are split along a model axis, and in
both each global batch is split along the mesh's batch axis, so XLA sums the gradients across
the devices inside the step, before the optimizer (and its ``global_clipnorm``) sees them. One
device, the devices of one host and several hosts run the same code.

Gradient accumulation happens inside the compiled step: a step's batch then holds
``accumulation_steps`` passes along a new first axis, and ``jax.lax.scan`` sums their
gradients (and threads batch-norm statistics and dropout seeds from pass to pass) before the
one optimizer update.

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
    if global_batch_size % len(devices):
        raise ValueError(
            f"{flag}: the global batch size {global_batch_size} does not divide across the "
            f"{len(devices)} devices; use a multiple of {len(devices)}.")
    keras.distribution.set_distribution(make_distribution(devices)[0])
    return len(devices)


def make_distribution(devices, model_parallel=1, layout_map=None):
    """The ``keras.distribution`` for ``devices`` and its mesh shape ``(batch, model)``:
    None on one device, ``DataParallel`` without a model axis, else ``ModelParallel`` with
    the recipe's ``layout_map`` (``f(device_mesh) -> LayoutMap``) on a ``(batch, model)``
    mesh (in the TPU topology's order; on several hosts each host's devices form whole rows).

    Raises:
        ValueError: ``model_parallel`` > 1 without a ``layout_map``, or not dividing each
            host's devices (the messages name ``--model_parallel``).
    """
    if model_parallel == 1:
        if len(devices) == 1:
            return None, (1, 1)
        return keras.distribution.DataParallel(devices=devices), (len(devices), 1)
    if layout_map is None:
        raise ValueError(f"--model_parallel={model_parallel}: this recipe has no "
                         "model-parallel layout; it runs data parallel (--model_parallel=1).")
    local = len(devices) // jax.process_count()
    if local % model_parallel:
        raise ValueError(f"--model_parallel={model_parallel} must divide the {local} devices "
                         "of each host.")
    from jax.experimental import mesh_utils

    shape = (len(devices) // model_parallel, model_parallel)
    if jax.process_count() == 1:
        grid = mesh_utils.create_device_mesh(shape, devices)
    else:  # each host's devices form whole rows, so each host feeds its own batch rows
        grid = mesh_utils.create_hybrid_device_mesh(
            (local // model_parallel, model_parallel), (jax.process_count(), 1), devices,
            process_is_granule=True)
    mesh = keras.distribution.DeviceMesh(shape, ("batch", "model"), devices=grid)
    return keras.distribution.ModelParallel(layout_map=layout_map(mesh),
                                            batch_dim_name="batch"), shape


def batch_axis_size():
    """The devices a batch is split across: the size of the current distribution's batch
    axis (1 without a distribution)."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]


def place(batch, leading_axes=0):
    """This host's share of a global batch (a structure of NumPy arrays), placed as the
    current distribution lays out data: split along the batch axis, the axis after
    ``leading_axes`` (accumulation passes stack along a first axis), and whole along every
    other mesh axis.

    Without a distribution the arrays go to the default device. On one host, an array whose
    batch does not divide across the devices (an evaluation's last batch) is placed whole on
    every device instead.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return jax.tree_util.tree_map(jax.numpy.asarray, batch)
    mesh = distribution.device_mesh.backend_mesh
    split = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(*[None] * leading_axes, distribution.batch_dim_name))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    devices = batch_axis_size()

    def put(array):
        rows = array.shape[leading_axes] * jax.process_count()
        if rows % devices and jax.process_count() == 1:
            return jax.device_put(array, whole)
        return jax.make_array_from_process_local_data(split, array)

    return jax.tree_util.tree_map(put, batch)


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
        """The next ``(x, y)`` global batch, split across the devices."""
        if self._position == self.steps_per_epoch:
            self._order, self._position = self._rng.permutation(len(self.x)), 0
        start = self._position * self.global_batch_size
        index = np.sort(self._order[start : start + self.global_batch_size])
        self._position += 1
        return place((self.x[index], self.y[index]))


def variable_values(variables):
    """The current values (JAX arrays) of Keras ``variables``, in order."""
    return [v.value for v in variables]


def stateless_task(task, model, trainable, non_trainable, batch, training):
    """``task(model, batch, training)`` on the given variable values instead of the model's
    own (inside ``jax.jit``).

    Returns:
        ``(loss_sum, metrics, non_trainable)``: the task's results and the non-trainable
        values after the call (batch-norm statistics, dropout seed states).
    """
    mapping = list(zip(model.trainable_variables, trainable))
    mapping += list(zip(model.non_trainable_variables, non_trainable))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        loss_sum, metrics = task(model, batch, training)
    updated = [scope.get_current_value(v) for v in model.non_trainable_variables]
    return loss_sum, metrics, updated


def _add(a, b):
    return jax.tree_util.tree_map(lambda x, y: x + y, a, b)


class JaxStepRunner:
    """Compiled optimizer steps for ``model`` on the JAX backend.

    The step's state is the model's and the optimizer's variables: each step reads their
    values, runs the compiled step (which takes over their buffers: they are donated) and
    assigns the results back, so the model can be evaluated, saved or inspected between steps
    as on TensorFlow.

    Args:
        model: a built ``keras.Model``.
        optimizer: a ``keras.optimizers.Optimizer`` (its learning rate may be a schedule).
        task: ``task(model, batch, training) -> (loss_sum, metrics)`` in ``keras.ops``: a
            float32 scalar, the sum of per-label losses over the batch, and a dict of float32
            scalar sums.
        plan: a :class:`~recipes.common.batching.BatchPlan`; with ``accumulation_steps`` > 1
            each step's batch stacks that many passes along a first axis.
        labels_per_example: int, labels per example (a language model's time steps): the loss
            is divided by ``loss_denominator``, the global batch times this.
    """

    def __init__(self, model, optimizer, task, plan, labels_per_example=1):
        self.model = model
        self.optimizer = optimizer
        self.task = task
        self.plan = plan
        self.loss_denominator = plan.global_batch_size * labels_per_example
        optimizer.build(model.trainable_variables)
        self._groups = (model.trainable_variables, model.non_trainable_variables,
                        optimizer.variables)
        # The new values keep their variables' layouts (replicated, or split by a layout
        # map): XLA would otherwise pick its own for some (e.g. a bias next to a split
        # kernel), and each assignment would move them back.
        layouts = tuple([v.value.sharding for v in group] for group in self._groups)
        self._step = jax.jit(self._pure_step, donate_argnums=(0, 1, 2),
                             out_shardings=(*layouts, None))

    def _gradients(self, trainable, non_trainable, batch):
        def loss(trainable):
            loss_sum, metrics, updated = stateless_task(
                self.task, self.model, trainable, non_trainable, batch, True)
            return loss_sum / self.loss_denominator, (updated, dict(metrics, loss=loss_sum))

        (_, (non_trainable, metrics)), gradients = jax.value_and_grad(
            loss, has_aux=True)(trainable)
        return gradients, non_trainable, metrics

    def _pure_step(self, trainable, non_trainable, optimizer_variables, batch):
        if self.plan.accumulation_steps == 1:
            gradients, non_trainable, metrics = self._gradients(trainable, non_trainable, batch)
        else:
            def accumulate(carry, passed):
                gradients, non_trainable, metrics = carry
                more, non_trainable, more_metrics = self._gradients(
                    trainable, non_trainable, passed)
                return (_add(gradients, more), non_trainable, _add(metrics, more_metrics)), None

            # The sums start at zero, so the pass is traced (and compiled) once.
            first = jax.tree_util.tree_map(lambda t: t[0], batch)
            shapes = jax.eval_shape(self._gradients, trainable, non_trainable, first)
            zeros = jax.tree_util.tree_map(lambda s: jax.numpy.zeros(s.shape, s.dtype),
                                           (shapes[0], shapes[2]))
            (gradients, non_trainable, metrics), _ = jax.lax.scan(
                accumulate, (zeros[0], non_trainable, zeros[1]), batch)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable)
        return trainable, non_trainable, optimizer_variables, metrics

    def train_step(self, feed):
        """One optimizer step on ``feed.next()``; returns the step's metric sums over every
        device and pass (``loss``: the sum of per-label losses)."""
        batch = feed.next()
        results = self._step(*(variable_values(g) for g in self._groups), batch)
        for variables, values in zip(self._groups, results):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return results[-1]


def evaluation_step(model, task):
    """Returns ``step(batch) -> dict of sums``: ``task`` on ``batch`` (placed by
    :func:`place`) with the model's current weights in inference mode, ``loss`` included; the
    forward pass is compiled once per batch shape and kept across calls."""

    @jax.jit
    def batch_sums(trainable, non_trainable, batch):
        loss_sum, metrics, _ = stateless_task(task, model, trainable, non_trainable, batch,
                                              False)
        return dict(metrics, loss=loss_sum)

    def step(batch):
        return batch_sums(variable_values(model.trainable_variables),
                          variable_values(model.non_trainable_variables), batch)

    return step


def make_evaluate(model, task, batch_size=10000):
    """Returns ``evaluate(x, y) -> dict of sums`` over arrays in memory: ``task``'s sums on
    batches ``(x, y)`` of ``batch_size`` (the last one smaller) added up, ``loss`` included,
    as Python floats. Each batch is split across the devices (:func:`place`)."""
    step = evaluation_step(model, task)

    def evaluate(x, y):
        totals = None
        for start in range(0, len(x), batch_size):
            part = step(place((x[start : start + batch_size], y[start : start + batch_size])))
            totals = part if totals is None else _add(totals, part)
        return {k: float(v) for k, v in totals.items()}

    return evaluate
