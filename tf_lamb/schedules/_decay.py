"""The pieces every schedule here is built from, written once in `keras.ops`.

Each function takes `step` as a float32 scalar tensor and Python numbers for the rest, and
returns a float32 scalar. None branches in Python on `step`, so they trace once under
`tf.function` / `jax.jit` whatever the step.
"""

import math

from keras import ops


def float_step(step):
    """The optimizer iteration as float32 (exact up to 2**24, about 16.7M steps)."""
    return ops.cast(step, "float32")


def constant(value):
    return ops.convert_to_tensor(value, dtype="float32")


def linear_warmup(step, warmup_steps, peak, after, start=0.0):
    """`start + (peak - start) * step / warmup_steps` while `step < warmup_steps`, else `after`.

    `warmup_steps == 0` returns `after` unchanged.
    """
    if warmup_steps == 0:
        return after
    ramp = start + (peak - start) * (step / warmup_steps)
    return ops.where(step < warmup_steps, ramp, after)


def _remaining_fraction(step, decay_start, decay_steps):
    """`1 - progress`: 1 before `decay_start`, 0 from `decay_start + decay_steps` on."""
    if decay_steps == 0:
        return ops.cast(step < decay_start, "float32")
    # Written as (steps left) / decay_steps: the subtraction is exact in float32 for integer
    # steps, so the fraction keeps full relative precision near the end of the decay.
    left = ops.clip(decay_start + decay_steps - step, 0.0, float(decay_steps))
    return left / decay_steps


def polynomial_decay(step, peak, end, decay_start, decay_steps, power):
    """`end + (peak - end) * (1 - progress) ** power`, `end` from `decay_start + decay_steps` on.

    `progress = clip((step - decay_start) / decay_steps, 0, 1)`; `decay_steps` may be 0.
    """
    remaining = _remaining_fraction(step, decay_start, decay_steps)
    decayed = end + (peak - end) * ops.power(remaining, power)
    return ops.where(step >= decay_start + decay_steps, constant(end), decayed)


def cosine_decay(step, peak, end, decay_start, decay_steps):
    """Half a cosine from `peak` at `decay_start` to `end` at `decay_start + decay_steps`.

    Uses `0.5 * (1 + cos(pi * progress)) == sin(pi / 2 * (1 - progress)) ** 2`, which has no
    cancellation near the end.
    """
    remaining = _remaining_fraction(step, decay_start, decay_steps)
    return end + (peak - end) * ops.square(ops.sin((math.pi / 2) * remaining))


def step_decay(step, peak, boundaries, factor):
    """`peak * factor ** n`, `n` the number of `boundaries` (steps) that `step` has reached."""
    value = constant(peak)
    for boundary in boundaries:
        value = value * ops.where(step >= boundary, constant(factor), constant(1.0))
    return value
