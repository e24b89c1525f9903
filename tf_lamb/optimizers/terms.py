"""What an optimizer hands the core for one layer: its directions (:class:`Direction`,
:class:`AdamRatio`), the layer they belong to (:class:`Layer`), and the dtype it computes in."""

import keras
from keras import ops

from tf_lamb.optimizers import ordering

#: Variable dtypes whose step is computed in float32 (see :func:`compute_dtype`).
HALF_DTYPES = ("float16", "bfloat16")


def compute_dtype(dtype):
    """The dtype a layer of ``dtype`` is updated in: float32 for float16 and bfloat16
    variables (their moments, norms, trust ratios and step are computed in float32 from the
    stored 16-bit values, and the results rounded once when stored), else ``dtype`` itself.

    Args:
        dtype: a float dtype (string or backend dtype).

    Returns:
        str, the standardized dtype name.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    return "float32" if dtype in HALF_DTYPES else dtype


def as_compute(x):
    """``x`` (a tensor or variable, read now) as a tensor of its :func:`compute_dtype`.

    A variable is read into a tensor before any arithmetic, so a Python float multiplying
    it keeps the tensor's precision (Keras' PyTorch ops turn a Python float into a float32
    tensor before multiplying a float64 variable by it)."""
    if keras.backend.standardize_dtype(x.dtype) in HALF_DTYPES:
        return ops.cast(x, "float32")
    return ops.convert_to_tensor(x)


class AdamRatio:
    """Adam's elementwise direction ``numerator / (sqrt(second_moment) + epsilon)``, kept as
    its parts so that a fast path may write it differently
    (:func:`tf_lamb.optimizers.xla.copy_for_norm`).

    Args:
        numerator: tensor, ``m_hat`` or ``g`` (any shape).
        second_moment: tensor of the same shape, ``v_hat >= 0``.
        epsilon: scalar > 0.
    """

    def __init__(self, numerator, second_moment, epsilon):
        self.numerator = numerator
        self.second_moment = second_moment
        self.epsilon = epsilon

    def value(self):
        return self.numerator / (ops.sqrt(self.second_moment) + self.epsilon)


class Direction:
    """One term of a layer's step, ``coefficient * ratio * u``.

    Args:
        u: the direction: a tensor of the layer's shape and compute dtype, or an
            :class:`AdamRatio`.
        coefficient: Python float weighting the term (LANS' ``beta_1`` and ``1 - beta_1``).
            Default 1.
        norm_of: optional tensor whose norm stands for ``||u||`` in the ratio, with
            ``wd * ||w|| + epsilon`` added to it (classic LARS and LARC: ``||g||``). Default
            None: ``||u||`` itself.
        epsilon: float >= 0, added to the denominator with ``norm_of``.
        trust_coefficient: Python float ``eta`` multiplying the ratio (LARS). Default 1.
    """

    def __init__(self, u, coefficient=1.0, norm_of=None, epsilon=0.0, trust_coefficient=1.0):
        self.u = u
        self.coefficient = coefficient
        self.norm_of = norm_of
        self.epsilon = epsilon
        self.trust_coefficient = trust_coefficient

    def value(self):
        """``u`` as a tensor."""
        return self.u.value() if isinstance(self.u, AdamRatio) else self.u


class Layer:
    """One layer of a step: its position, gradient, variable and slots.

    Args:
        index: int, the layer's position in build order.
        gradient: its gradient (dense, ``IndexedSlices`` or BCOO).
        variable: the variable (under ``tf.distribute``, one device's copy).
        slots: tuple of its slot variables (same device).
        previous: when the step orders its layers, the previous layer's
            :func:`tf_lamb.optimizers.ordering.token`; else None.
    """

    def __init__(self, index, gradient, variable, slots, previous=None):
        self.index = index
        self.gradient = gradient
        self.variable = variable
        self.slots = slots
        self.previous = previous

    def ordered(self, x):
        """``x``, read only once the previous layer has moved (when the step is ordered)."""
        return x if self.previous is None else ordering.after(x, self.previous)
