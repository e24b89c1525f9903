"""XLA:CPU fast paths: the folded norm and the direction built twice (plan fields ``norm="fold"``
and ``two_pass``).

Both change how XLA schedules a step, never its value beyond float rounding. They were
adopted from the TensorFlow rows ``*/fused-xla`` of ``benchmarks/optimizer_step.py``
(XLA:CPU, BERT-base); on GPUs and TPUs they are unmeasured and off (``docs/design.md``).
"""

import functools

from keras import ops

#: A tensor of at least this many elements is folded, once, into this many parts. One fold:
#: XLA merges consecutive folds into one loop over 16 or more slices and then stores the
#: folded tensor's input instead of recomputing it there.
FOLD_MIN_SIZE = 65536
FOLD_PARTS = 8


def folded_sum_of_squares(x):
    """``sum(x**2)``, the squares first added across the tensor's eighths.

    XLA:CPU runs a reduction slower than the elementwise work that feeds it; adding the
    eighths is one parallel elementwise loop into which XLA also fuses the computation of
    ``x`` (a direction is then never stored), and what is left to reduce is an eighth.

    Args:
        x: a float tensor of any static shape (a tensor below :data:`FOLD_MIN_SIZE` elements,
            or of a dynamic shape, is reduced as it is).

    Returns:
        A scalar tensor of ``x``'s dtype.
    """
    if not all(isinstance(d, int) for d in x.shape):
        return ops.sum(ops.square(x))
    x = ops.reshape(x, (-1,))
    size = x.shape[0]
    if size < FOLD_MIN_SIZE:
        return ops.sum(ops.square(x))
    h = size // FOLD_PARTS
    parts = [ops.square(x[i * h : (i + 1) * h]) for i in range(FOLD_PARTS)]
    total = ops.sum(functools.reduce(ops.add, parts))
    if size % FOLD_PARTS:  # The tail the parts leave.
        total = total + ops.sum(ops.square(x[FOLD_PARTS * h :]))
    return total


def copy_for_norm(u, k):
    """The ``k``-th direction of a layer written so that XLA cannot merge it with ``u``.

    Under XLA a direction used twice (its norm, then the step) is either stored, a full-size
    temporary, or recomputed in each pass. XLA recomputes it only where the two expressions
    differ: :class:`~tf_lamb.optimizers.terms.AdamRatio`'s copy multiplies by a
    reciprocal of ``sqrt(abs(v))`` (``abs`` changes nothing, a second moment is never
    negative); a layer's second such copy (LANS) writes ``max(v, 0)`` instead, so the two
    copies share no ``sqrt`` either. Any other direction is a stored tensor, taken as it is.

    Args:
        u: the direction, an ``AdamRatio`` or a tensor.
        k: int, its position among the layer's directions.

    Returns:
        A tensor equal to ``u`` up to float rounding.
    """
    if not hasattr(u, "second_moment"):
        return u
    v = u.second_moment
    # max(v, 0) by `where`: Keras' PyTorch `maximum` returns float64 as float32.
    root = ops.sqrt(ops.where(v > 0.0, v, ops.zeros_like(v)) if k else ops.abs(v))
    return u.numerator * ops.reciprocal(root + u.epsilon)
