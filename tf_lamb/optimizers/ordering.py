"""Layers updated strictly in order (plan field ``ordered``).

Without a data dependence between layers a compiler may start every layer's first pass
(norms) before any layer's second (the move), and then hold one direction or one norm fold
per layer at once: the whole model's size in temporaries. Adopted from the rows
``lamb/fused`` and ``lans/fused`` of ``benchmarks/optimizer_step.py`` on JAX's XLA:CPU and
``*/fused-xla`` on TensorFlow's; unmeasured on GPUs and TPUs, where the plain plan leaves the
layers unordered (``docs/design.md``).
"""

from keras import ops


def token(variable):
    """The first element of a layer's new value, as a tensor: what the next layer waits on.

    Never the variable itself: Keras would track a variable held by the step as the
    optimizer's own, into its checkpoints.
    """
    return ops.reshape(ops.convert_to_tensor(variable), (-1,))[:1]


def after(x, previous):
    """``x`` unchanged, but computed only once ``previous`` is.

    ``x * (1 + 0 * isfinite(previous[0]))`` is ``x`` bit for bit whatever ``previous``
    holds (``isfinite`` is 0 or 1, so a NaN in one layer does not reach the next).

    Args:
        x: a float tensor (a layer's dense gradient, or its weights for their norm).
        previous: a tensor of any shape and float dtype (a :func:`token`).
    """
    first = ops.reshape(ops.convert_to_tensor(previous), (-1,))[:1]
    flag = ops.sum(ops.cast(ops.isfinite(first), x.dtype))  # A scalar, 0 or 1.
    return x * (1.0 + 0.0 * flag)
