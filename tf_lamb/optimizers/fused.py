"""The fused step: every layer of a step in one call, instead of Keras' per-variable loop.

Where this Keras has the private hooks it overrides
(:func:`tf_lamb.optimizers.seams.fused_supported`), :class:`FusedStep` replaces Keras'
per-variable loop with one call over all layers: XLA-compiled on TensorFlow (once per device
under ``tf.distribute``), traced inside the caller's ``jax.jit`` on JAX. It makes the step's
:class:`~tf_lamb.optimizers.plan.StepPlan` once, runs the layers in the order and groups the
plan asks for, and writes every layer's norms and trust ratios in one scatter.
"""

import contextlib
import math

import keras
import numpy as np
from keras import ops

from tf_lamb.optimizers import ordering, plan, tf_graph
from tf_lamb.optimizers.terms import Layer


class FusedStep:
    """Mixin of :class:`~tf_lamb.optimizers.LayerwiseOptimizer`: the fused step and its
    entry points in Keras (``_backend_update_step``, ``_distributed_tf_update_step``)."""

    def _fused_update(
        self, indices, grads, variables, slots, statistics, learning_rate, iterations, compiled
    ):
        """The fused step: every layer in one call, then one write of the statistics.

        Args:
            indices: list of int, each variable's position in build order.
            grads, variables, slots: lists aligned with ``indices``.
            statistics: the statistics slot (one device's copy).
            learning_rate: scalar tensor.
            iterations: the optimizer's ``_iterations`` variable (one device's copy), which
                counts micro-steps under gradient accumulation.
            compiled: bool, whether XLA compiles this step.
        """
        step_plan = self._plan(variables[0], compiled)
        if self.gradient_accumulation_steps:  # As Keras' `iterations` property.
            iterations = ops.floor_divide(iterations, self.gradient_accumulation_steps)
        step = plan.Step(step_plan, learning_rate, iterations)
        stats, previous, moved = [], None, []
        for group in _groups(variables) if step_plan.groups else [range(len(variables))]:
            with _after(moved):
                for position in group:
                    token = None
                    if step_plan.ordered and previous is not None:
                        token = ordering.token(previous)
                    layer = Layer(
                        indices[position], grads[position], variables[position],
                        slots[position], token,
                    )
                    stats.append(self._update_layer(step, layer))
                    previous = variables[position]
            moved = [variables[p] for p in group] if step_plan.groups else []
        self._record_statistics(statistics, indices, stats)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() == "tensorflow" or not self._fused_active:
            # TensorFlow: all-reduce, clip, then merge_call into `_distributed_tf_update_step`;
            # elsewhere: clip (ClipAfterSum), then Keras' per-variable loop.
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        grads = self._clip_by_global_norm(grads)
        indices = [self._get_variable_index(v) for v in trainable_variables]
        self._fused_update(
            indices,
            grads,
            list(trainable_variables),
            [self._slots(i) for i in indices],
            self._layer_statistics,
            learning_rate,
            self._iterations,
            keras.backend.backend() == "jax",
        )

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        """TensorFlow backend, cross-replica context: the fused step once per device.

        Keras calls ``distribution.extended.update`` once per variable; here one call covers
        all of them. ``extended.update`` runs ``update`` on each device with that device's
        copy of the first variable (on a TPU, inside the replicated XLA program, with the
        variable itself); every other variable, slot and gradient is resolved to the same
        device's copy, and the step is XLA-compiled there when ``jit_compile``.
        """
        if not self._fused_active:
            return super()._distributed_tf_update_step(
                distribution, grads_and_vars, learning_rate
            )
        import tensorflow as tf

        grads = [_with_tensor_components(g) for g, _ in grads_and_vars]
        variables = [v for _, v in grads_and_vars]
        indices = [self._get_variable_index(v) for v in variables]
        state = [[s.value for s in self._slots(i)] for i in indices]
        statistics = self._layer_statistics.value
        iterations = self._iterations.value
        anchor = variables[0]

        def update(anchor_copy, grads, learning_rate):
            if anchor_copy is anchor:  # One copy: one device, or a TPU replica context.
                local = lambda x: x  # noqa: E731
            else:
                copies = distribution.experimental_local_results(anchor)
                device = next(i for i, c in enumerate(copies) if c is anchor_copy)
                local = lambda x: distribution.experimental_local_results(x)[device]  # noqa: E731
            in_tpu_program = isinstance(distribution, tf.distribute.TPUStrategy)
            compile_here = self.jit_compile and not in_tpu_program
            args = (
                indices,
                grads,
                [local(v) for v in variables],
                [[local(s) for s in slots] for slots in state],
                local(statistics),
                tf.convert_to_tensor(learning_rate),  # May be a Keras variable: read it here.
                local(iterations),
                compile_here or in_tpu_program,
            )
            if not compile_here:  # No XLA asked for, or already inside a TPU program.
                return self._fused_update(*args)
            if self._compiled_step is None:
                self._compiled_step = _Compiled(
                    tf.function(self._fused_update, jit_compile=True)
                )
            return self._compiled_step.function(*args)

        distribution.extended.update(anchor, update, args=(grads, learning_rate), group=False)


def _groups(variables):
    """The layer groups of a step that runs in groups (see :func:`tf_graph.memory_groups`):
    each of at most the largest layer's size."""
    sizes = [
        math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        for v in variables
    ]
    return tf_graph.memory_groups(sizes, max(sizes))


def _after(group):
    """A context in which TensorFlow ops wait until every variable of ``group`` (the
    previous group, already assigned) has its new value; an empty group: no wait."""
    if not group:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.control_dependencies([tf.convert_to_tensor(v) for v in group])


def _with_tensor_components(gradient):
    """A ``tf.IndexedSlices`` gradient with tensors for components, else ``gradient``.

    Slices built from Python tuples (``indices=(0, 2)``, as Keras' own sparse tests make them)
    cannot be passed to a ``tf.function``, which the XLA-compiled step is.
    """
    import tensorflow as tf

    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    shape = gradient.dense_shape
    return tf.IndexedSlices(
        tf.convert_to_tensor(gradient.values),
        tf.convert_to_tensor(gradient.indices),
        None if shape is None else tf.convert_to_tensor(shape),
    )


class _Compiled:
    """Holds the compiled fused step out of sight of TensorFlow's object tracking (an
    optimizer attribute that is a ``tf.function`` would be exported with a SavedModel)."""

    def __init__(self, function):
        self.function = function
