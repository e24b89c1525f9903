"""The step plan: which fast paths a step takes, decided once per trace.

The reference update (:meth:`tf_lamb.optimizers.LayerwiseOptimizer._update_layer`) is
written in ``keras.ops`` as the papers write the algorithm. A :class:`StepPlan` names the
runtime-specific changes a step may make to it, each equal to the reference up to float
rounding and each tested so against the same float64 reference:

- ``norm``: how a layer's l2 norm is reduced (:func:`l2_norm`);
- ``two_pass``: under XLA, the direction whose norm is taken is built a second time in a form
  XLA cannot merge with the applied one (:mod:`tf_lamb.optimizers.xla`);
- ``ordered``: each layer's reads wait for the previous layer's write
  (:mod:`tf_lamb.optimizers.ordering`);
- ``kernels``: TensorFlow outside XLA updates float32 and float64 layers with its fused
  training kernels (:mod:`tf_lamb.optimizers.tf_graph`);
- ``groups``: TensorFlow outside XLA runs the fused step's layers in memory-bounded groups.

:func:`plan_for` picks them from the backend, the device and whether the step is compiled;
each was adopted where a row of ``benchmarks/optimizer_step.py`` showed it paying (see
``benchmarks/README.md`` and ``docs/design.md``). Elsewhere, GPUs and TPUs included, the
plain plan runs (on PyTorch, with its one-kernel norm): no measurement there has shown that a
trick tuned on a CPU helps.
"""

import dataclasses

import keras
from keras import ops

from tf_lamb.optimizers import terms

#: How ``l2_norm`` reduces: ``"reduce"``, ``sqrt(sum(x**2))``; ``"fold"``, the squares
#: first summed over the tensor's eighths (``tf_lamb.optimizers.xla.folded_sum_of_squares``);
#: ``"l2_loss"``, TensorFlow's one-kernel ``sqrt(2 * tf.nn.l2_loss(x))``; ``"norm"``,
#: ``keras.ops.norm`` (float32 only, else ``"reduce"``).
NORM_METHODS = ("reduce", "fold", "l2_loss", "norm")


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """The fast paths one step takes; every field at its default is the reference path.

    Args:
        norm: one of :data:`NORM_METHODS`.
        two_pass: bool, build a direction again for its norm (XLA only).
        ordered: bool, update the layers strictly one after the other.
        kernels: bool, TensorFlow's fused training kernels (TensorFlow outside XLA only).
        groups: bool, memory-bounded layer groups (TensorFlow outside XLA only).

    Raises:
        ValueError: ``norm`` is not one of :data:`NORM_METHODS`.
    """

    norm: str = "reduce"
    two_pass: bool = False
    ordered: bool = False
    kernels: bool = False
    groups: bool = False

    def __post_init__(self):
        if self.norm not in NORM_METHODS:
            raise ValueError(
                f"Argument `norm` must be one of {NORM_METHODS}. Received: norm={self.norm!r}"
            )


#: The reference path: no fast path at all.
REFERENCE = StepPlan()

#: The fields a ``step_plan`` argument may override.
FIELDS = tuple(f.name for f in dataclasses.fields(StepPlan))


def plan_for(backend, on_cpu, compiled, stored_directions=False):
    """The plan a step takes on this runtime.

    Args:
        backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``.
        on_cpu: bool, whether the step's variables live on a CPU.
        compiled: bool, whether XLA compiles the step (TensorFlow's ``jit_compile`` or a TPU
            program; always true on JAX).
        stored_directions: bool, the optimizer's directions are stored tensors (a slot or the
            gradient), so building them makes no full-size temporary (classic LARS).

    Returns:
        A :class:`StepPlan`.
    """
    if backend == "torch":
        return StepPlan(norm="norm")  # One kernel, wherever PyTorch runs.
    if not on_cpu:
        return REFERENCE
    if backend == "tensorflow" and compiled:  # Rows `*/fused-xla`.
        return StepPlan(norm="fold", two_pass=True, ordered=True)
    if backend == "tensorflow":  # Rows `*/fused` and `*/generic` (graph mode).
        return StepPlan(norm="l2_loss", kernels=True, groups=True)
    return StepPlan(ordered=not stored_directions)  # JAX's XLA:CPU, rows `*/fused`.


def resolve(spec, auto):
    """The plan a ``step_plan`` argument asks for.

    Args:
        spec: ``None`` (``auto``), ``"reference"`` or :class:`StepPlan` fields overriding
            ``auto``'s, as :func:`check_spec` returns them.
        auto: the :class:`StepPlan` of :func:`plan_for`.
    """
    if spec is None:
        return auto
    if spec == "reference":
        return REFERENCE
    return dataclasses.replace(auto, **dict(spec))


def check_spec(spec):
    """Validates a ``step_plan`` argument at construction.

    Returns:
        ``None``, ``"reference"``, or the dict's items as a sorted tuple (kept as a tuple, so
        TensorFlow does not track it into checkpoints as it would a dict attribute).

    Raises:
        ValueError: ``spec`` is not ``None``, ``"reference"`` or a dict of :class:`StepPlan`
            fields with valid values.
    """
    if spec is None or spec == "reference":
        return spec
    if not isinstance(spec, dict) or not set(spec) <= set(FIELDS):
        raise ValueError(
            "Argument `step_plan` must be None, 'reference' or a dict with keys among "
            f"{FIELDS}. Received: step_plan={spec!r}"
        )
    for name, value in spec.items():
        if name != "norm" and not isinstance(value, bool):
            raise ValueError(f"Argument `step_plan[{name!r}]` must be a bool. Received: {value!r}")
    StepPlan(**spec)  # Checks `norm`.
    return tuple(sorted(spec.items()))


def choose(spec, variable, compiled, stored_directions):
    """The plan of one step, made at trace time: :func:`plan_for` this runtime, overridden
    by the optimizer's ``step_plan`` argument ``spec`` (see :func:`resolve`). A fast path that
    cannot run here is left out: TensorFlow's kernels, groups and ``"l2_loss"`` norm off
    TensorFlow (so a configuration saved there loads anywhere), and the kernels and groups
    under XLA.

    Args:
        spec: the ``step_plan`` argument, as :func:`check_spec` returns it.
        variable: any variable of the step (its device tells a CPU from an accelerator).
        compiled: bool, whether this step's own ``jit_compile`` is on; on TensorFlow a
            caller's XLA (``jit_compile=True``, a TPU program) counts too, and on JAX the
            step is always compiled.
        stored_directions: as :func:`plan_for` takes it.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        compiled, on_cpu = True, jax.default_backend() == "cpu"
    else:
        from tf_lamb.optimizers import kernels

        compiled = backend == "tensorflow" and (compiled or kernels.in_xla_context())
        on_cpu = "CPU" in (getattr(variable, "device", "") or "CPU").upper()
    chosen = resolve(spec, plan_for(backend, on_cpu, compiled, stored_directions))
    if backend != "tensorflow" and chosen.norm == "l2_loss":
        chosen = dataclasses.replace(chosen, norm="reduce")
    if compiled or backend != "tensorflow":
        chosen = dataclasses.replace(chosen, kernels=False, groups=False)
    return chosen


class Step:
    """What one step's layers share: its plan, learning rate and 1-based step count, and
    scalars computed once per step and dtype (e.g. Adam's bias corrections).

    Args:
        plan: the :class:`StepPlan`.
        learning_rate: scalar tensor.
        iterations: scalar tensor, the steps taken so far (``t - 1``).
    """

    def __init__(self, plan, learning_rate, iterations):
        self.plan = plan
        self._learning_rate = learning_rate
        self._iterations = iterations
        self._scalars = {}

    def scalar(self, key, compute):
        """``compute()``, evaluated once per step for each hashable ``key``."""
        if key not in self._scalars:
            self._scalars[key] = compute()
        return self._scalars[key]

    def learning_rate(self, dtype):
        """The learning rate as a scalar of ``dtype``."""
        return self.scalar(("lr", dtype), lambda: ops.cast(self._learning_rate, dtype))

    def t(self, dtype):
        """The 1-based step as a scalar of ``dtype``."""
        return self.scalar(("t", dtype), lambda: ops.cast(self._iterations + 1, dtype))

    def norm(self, x):
        """``||x||`` by the plan's method (see :func:`l2_norm`)."""
        return l2_norm(x, self.plan.norm)


def l2_norm(x, method="reduce"):
    """The l2 norm over a whole tensor, accumulated in at least float32.

    Args:
        x: a tensor of any shape and a float dtype (16-bit inputs are upcast to float32).
        method: one of :data:`NORM_METHODS`; all give the same value up to float rounding
            (the order of the additions differs).

    Returns:
        A scalar tensor, float32 for 16-bit inputs, else the dtype of ``x``.
    """
    x = terms.as_compute(x)
    if method == "l2_loss":
        import tensorflow as tf

        return ops.sqrt(2.0 * tf.nn.l2_loss(x))
    if method == "norm" and keras.backend.standardize_dtype(x.dtype) == "float32":
        # (Keras' PyTorch `norm` computes a float64 tensor's norm in float32.)
        return ops.norm(ops.reshape(x, (-1,)))
    if method == "fold":
        from tf_lamb.optimizers import xla

        return ops.sqrt(xla.folded_sum_of_squares(x))
    return ops.sqrt(ops.sum(ops.square(x)))
