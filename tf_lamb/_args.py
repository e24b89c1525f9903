"""Argument checks shared by the optimizers and the schedules: every message names the argument,
the allowed values or range, and the value received."""

import math
import numbers

import numpy as np


def _is_real(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bound(value, label):
    if label is not None:
        return f"{label}={value!r}"
    return "inf" if value == math.inf else repr(value)


def _interval(low, high, low_open, high_open, low_label, high_label):
    left = "(" if low_open or low == -math.inf else "["
    right = ")" if high_open or high == math.inf else "]"
    return f"{left}{_bound(low, low_label)}, {_bound(high, high_label)}{right}"


def _inside(value, low, high, low_open, high_open):
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def check_real(
    name,
    value,
    low=-math.inf,
    high=math.inf,
    *,
    low_open=False,
    high_open=False,
    low_label=None,
    high_label=None,
):
    """Returns `value` as a float; raises `ValueError` unless it is a finite number in range."""
    if not _is_real(value) or not _inside(value, low, high, low_open, high_open):
        interval = _interval(low, high, low_open, high_open, low_label, high_label)
        raise ValueError(
            f"`{name}` must be a number in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_int(name, value, low=0, high=math.inf, *, low_label=None, high_label=None):
    """Returns `value` as an int; raises `ValueError` unless it is an integer in range."""
    if not _is_int(value) or not _inside(value, low, high, False, False):
        interval = _interval(low, high, False, False, low_label, high_label)
        raise ValueError(
            f"`{name}` must be an integer in {interval}. Received: {name}={value!r}"
        )
    return int(value)


def _matches(value, choice):
    """`value` is `choice`, of the same kind: a string (NumPy's too) equal to a string choice,
    True/False (NumPy's too) for a bool choice, else the same object (None); 1 is not True."""
    if isinstance(choice, str):
        return isinstance(value, str) and value == choice
    if isinstance(choice, bool):
        return isinstance(value, (bool, np.bool_)) and bool(value) == choice
    return value is choice


def check_choice(name, value, choices):
    """Returns the choice `value` matches (see `_matches`); raises `ValueError` unless it
    matches one of `choices`."""
    for choice in choices:
        if _matches(value, choice):
            return choice
    allowed = ", ".join(repr(choice) for choice in choices)
    raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")


def check_increasing(name, values, low, high, *, low_label=None, high_label=None, cast=int):
    """Returns `values` as a list; each must lie in `(low, high]` and be larger than the last.

    `cast=int` wants integers (step numbers), `cast=float` any finite numbers (epochs).
    """
    ok_type = _is_int if cast is int else _is_real
    try:
        items = list(values)
    except TypeError:
        items = None
    interval = _interval(low, high, True, False, low_label, high_label)
    kind = "integers" if cast is int else "numbers"
    if items is None or not all(ok_type(item) for item in items):
        raise ValueError(
            f"`{name}` must be a list of {kind}, strictly increasing, each in {interval}. "
            f"Received: {name}={values!r}"
        )
    for previous, item in zip([None] + items[:-1], items):
        if not _inside(item, low, high, True, False) or (
            previous is not None and item <= previous
        ):
            raise ValueError(
                f"`{name}` must be strictly increasing, each in {interval}. "
                f"Received: {name}={values!r}"
            )
    return [cast(item) for item in items]


def to_steps(count, steps_per_unit):
    """`count` epochs (or a fraction of a run) in steps, rounded to the nearest step
    (halves up, unlike Python's `round`, so 2.5 steps is 3)."""
    return int(math.floor(count * steps_per_unit + 0.5))


def check_boundary_steps(boundaries, warmup_steps, steps_per_epoch, received):
    """Raises `ValueError` naming `boundaries_epochs` unless the boundaries, rounded to steps,
    are distinct and after the warmup (epochs that pass `check_increasing` can still round to
    the same step). `received` describes the epoch arguments for the message."""
    steps = [warmup_steps] + list(boundaries)
    if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
        raise ValueError(
            "`boundaries_epochs` must fall on distinct steps after the warmup's "
            f"{warmup_steps}; at steps_per_epoch={steps_per_epoch} they round to steps "
            f"{list(boundaries)}. Received: {received}"
        )


def check_bounds(name, value):
    """A pair ``(lower, upper)`` with ``0 <= lower <= upper`` (``upper`` may be None, and
    is > 0 where ``lower`` is 0); returns it as a tuple of floats (and None)."""
    try:
        lower, upper = value
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{name}` must be a pair (lower, upper) with 0 <= lower <= upper (upper "
            f"may be None). Received: {name}={value!r}"
        ) from None
    lower = check_real(f"{name}[0]", lower, 0.0, math.inf)
    if upper is not None:
        upper = check_real(f"{name}[1]", upper, lower, math.inf, low_open=lower == 0.0)
    return lower, upper


def check_bool(name, value):
    """Returns `value` as a bool; raises `ValueError` unless it is True or False (NumPy's
    included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def check_name(value):
    """Returns `value`; raises `ValueError` unless it is a string or None."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"`name` must be a string or None. Received: name={value!r}")
    return value


def check_warmup_schedule(peak_learning_rate, total_steps, warmup_steps):
    """The three arguments every warmup schedule shares, checked.

    Returns:
        ``(peak_learning_rate, total_steps, warmup_steps)`` as float, int, int.

    Raises:
        ValueError: ``peak_learning_rate <= 0``, ``total_steps < 1``, or ``warmup_steps``
            outside ``[0, total_steps]``; the message names the argument and the range.
    """
    peak = check_real("peak_learning_rate", peak_learning_rate, 0.0, math.inf, low_open=True)
    total = check_int("total_steps", total_steps, 1)
    warmup = check_int("warmup_steps", warmup_steps, 0, total, high_label="total_steps")
    return peak, total, warmup
