"""Every bad argument raises ValueError naming the argument, its range and the value."""

import math

import pytest

from tf_lamb.schedules import (
    LEGW,
    GoyalStepDecay,
    PolynomialDecayWithWarmup,
    WarmupConstantDecay,
    linear_scaling,
    sqrt_scaling,
)

Poly, WCD, Goyal = PolynomialDecayWithWarmup, WarmupConstantDecay, GoyalStepDecay

# (case, constructor call, pattern the message must match). Looped over inside a few tests
# rather than parametrized: tests/conftest.py clears the Keras session per test item.
POLYNOMIAL = [
    ("zero peak", lambda: Poly(0.0, 100), r"`peak_learning_rate` must be a number in "
     r"\(0\.0, inf\)\. Received: peak_learning_rate=0\.0"),
    ("negative peak", lambda: Poly(-1e-3, 100), r"`peak_learning_rate`.*=-0\.001"),
    ("nan peak", lambda: Poly(math.nan, 100), r"`peak_learning_rate`.*=nan"),
    ("string peak", lambda: Poly("0.1", 100), r"`peak_learning_rate`.*='0\.1'"),
    ("zero total", lambda: Poly(1.0, 0), r"`total_steps` must be an integer in \[1, inf\)"),
    ("float total", lambda: Poly(1.0, 100.0), r"`total_steps`.*Received: total_steps=100\.0"),
    ("warmup > total", lambda: Poly(1.0, 100, warmup_steps=150),
     r"^`warmup_steps` must be an integer in \[0, total_steps=100\]\. "
     r"Received: warmup_steps=150$"),
    ("negative warmup", lambda: Poly(1.0, 100, -1), r"`warmup_steps`.*=-1"),
    ("negative power", lambda: Poly(1.0, 100, power=-0.5),
     r"`power` must be a number in \[0\.0, inf\)\. Received: power=-0\.5"),
    ("end > peak", lambda: Poly(1.0, 100, end_learning_rate=2.0),
     r"`end_learning_rate` must be a number in \[0\.0, peak_learning_rate=1\.0\]\. "
     r"Received: end_learning_rate=2\.0"),
    ("negative end", lambda: Poly(1.0, 100, end_learning_rate=-0.1), r"`end_learning_rate`"),
    ("non-bool switch", lambda: Poly(1.0, 100, decay_from_warmup_end="yes"),
     r"`decay_from_warmup_end` must be True or False\. Received: "
     r"decay_from_warmup_end='yes'"),
    ("bad name", lambda: Poly(1.0, 100, name=3), r"`name` must be a string or None"),
]

LEGW_CASES = [
    ("zero peak", lambda: LEGW(0, 10, 100), r"`peak_learning_rate`.*Received"),
    ("warmup > total", lambda: LEGW(1.0, 101, 100),
     r"`warmup_steps` must be an integer in \[0, total_steps=100\]"),
    ("zero total", lambda: LEGW(1.0, 0, 0), r"`total_steps`"),
    ("unknown decay", lambda: LEGW(1.0, 10, 100, "linear"),
     r"`decay` must be one of 'polynomial', 'cosine', 'constant', 'step'\. "
     r"Received: decay='linear'"),
    ("negative power", lambda: LEGW(1.0, 10, 100, power=-1.0), r"`power`.*=-1\.0"),
    ("end > peak", lambda: LEGW(1.0, 10, 100, end_learning_rate=2.0),
     r"`end_learning_rate`.*peak_learning_rate=1\.0"),
    ("end with constant", lambda: LEGW(1.0, 10, 100, "constant", end_learning_rate=0.1),
     r"`end_learning_rate` must be 0 with decay='constant'.*Received: end_learning_rate"),
    ("step without boundaries", lambda: LEGW(1.0, 10, 100, "step"),
     r"`boundaries`.*required with decay='step'"),
    ("boundaries decreasing", lambda: LEGW(1.0, 10, 100, "step", boundaries=[50, 40]),
     r"`boundaries` must be strictly increasing, each in "
     r"\(warmup_steps=10, total_steps=100\]\. Received: boundaries=\[50, 40\]"),
    ("boundary in warmup", lambda: LEGW(1.0, 10, 100, "step", boundaries=[10, 50]),
     r"`boundaries`.*\(warmup_steps=10"),
    ("boundary past total", lambda: LEGW(1.0, 10, 100, "step", boundaries=[50, 101]),
     r"`boundaries`.*total_steps=100\]"),
    ("float boundary", lambda: LEGW(1.0, 10, 100, "step", boundaries=[50.5]),
     r"`boundaries` must be a list of integers"),
    ("boundaries with polynomial", lambda: LEGW(1.0, 10, 100, boundaries=[50]),
     r"`boundaries` is only used with decay='step'"),
    ("zero factor", lambda: LEGW(1.0, 10, 100, "step", boundaries=[50], decay_factor=0.0),
     r"`decay_factor` must be a number in \(0\.0, 1\.0\]\. Received: decay_factor=0\.0"),
    ("factor > 1", lambda: LEGW(1.0, 10, 100, "step", boundaries=[50], decay_factor=1.5),
     r"`decay_factor`.*=1\.5"),
]

FROM_BASE = [
    ("unknown scaling", lambda: LEGW.from_base(256, 0.1, 1, 1024, 10, 90, scaling="cube"),
     r"`scaling` must be one of 'sqrt', 'linear'\. Received: scaling='cube'"),
    ("zero base batch", lambda: LEGW.from_base(0, 0.1, 1, 1024, 10, 90),
     r"`base_batch_size` must be a number in \(0\.0, inf\)\. Received: base_batch_size=0"),
    ("negative batch", lambda: LEGW.from_base(256, 0.1, 1, -1024, 10, 90),
     r"`batch_size`.*=-1024"),
    ("zero base lr", lambda: LEGW.from_base(256, 0.0, 1, 1024, 10, 90),
     r"`base_learning_rate`"),
    ("negative warmup epochs", lambda: LEGW.from_base(256, 0.1, -1, 1024, 10, 90),
     r"`base_warmup_epochs`.*=-1"),
    ("zero steps per epoch", lambda: LEGW.from_base(256, 0.1, 1, 1024, 0, 90),
     r"`steps_per_epoch` must be an integer in \[1, inf\)"),
    ("zero epochs", lambda: LEGW.from_base(256, 0.1, 1, 1024, 10, 0), r"`epochs`"),
    ("scaled warmup longer than training",
     lambda: LEGW.from_base(256, 0.1, 5, 65536, 20, 90),
     r"base_warmup_epochs=5\.0 times the batch ratio "
     r"k = batch_size / base_batch_size = 65536/256 = 256 gives 1280 warmup epochs, "
     r"more than epochs=90"),
    ("boundary epochs decreasing",
     lambda: LEGW.from_base(256, 0.1, 1, 1024, 10, 90, decay="step",
                            boundaries_epochs=[60, 30]),
     r"`boundaries_epochs` must be strictly increasing, each in "
     r"\(warmup_epochs=4\.0, epochs=90\.0\]"),
    ("boundary epochs rounding to one step",
     lambda: LEGW.from_base(256, 0.1, 1, 512, 2, 90, decay="step",
                            boundaries_epochs=[30.1, 30.2]),
     r"`boundaries_epochs` must fall on distinct steps after the warmup's 4; at "
     r"steps_per_epoch=2 they round to steps \[60, 60\]"),
    ("boundary epoch in warmup",
     lambda: LEGW.from_base(256, 0.1, 1, 1024, 10, 90, decay="step",
                            boundaries_epochs=[2, 30]),
     r"`boundaries_epochs`.*Received: boundaries_epochs=\[2, 30\]"),
]

WARMUP_CONSTANT = [
    ("zero peak", lambda: WCD(0.0, 100, 5, 25), r"`peak_learning_rate`"),
    ("warmup > total", lambda: WCD(1.0, 100, 101, 0), r"`warmup_steps`.*total_steps=100"),
    ("constant too long", lambda: WCD(1.0, 100, 10, 91),
     r"^`constant_steps` must be an integer in \[0, total_steps - warmup_steps=90\]\. "
     r"Received: constant_steps=91$"),
    ("negative constant", lambda: WCD(1.0, 100, 10, -1), r"`constant_steps`.*=-1"),
    ("end > peak", lambda: WCD(1.0, 100, 10, 10, 2.0), r"`end_learning_rate`"),
    ("warmup fraction > 1", lambda: WCD.from_fractions(1.0, 100, warmup_fraction=1.5),
     r"`warmup_fraction` must be a number in \[0\.0, 1\.0\]\. Received: warmup_fraction=1\.5"),
    ("negative fraction", lambda: WCD.from_fractions(1.0, 100, 0.1, -0.1),
     r"`constant_fraction`.*=-0\.1"),
    ("fractions sum > 1", lambda: WCD.from_fractions(1.0, 100, 0.8, 0.3),
     r"`warmup_fraction` \+ `constant_fraction` must be at most 1.*"
     r"Received: warmup_fraction=0\.8, constant_fraction=0\.3"),
    ("zero total", lambda: WCD.from_fractions(1.0, 0), r"`total_steps`"),
]

GOYAL = [
    ("zero peak", lambda: Goyal(0.0, 100), r"`peak_learning_rate`"),
    ("zero steps per epoch", lambda: Goyal(0.1, 0), r"`steps_per_epoch`.*=0"),
    ("float steps per epoch", lambda: Goyal(0.1, 10.5),
     r"`steps_per_epoch` must be an integer.*=10\.5"),
    ("negative warmup", lambda: Goyal(0.1, 10, warmup_epochs=-1), r"`warmup_epochs`.*=-1"),
    ("boundaries rounding to the warmup's end", lambda: Goyal(1.0, 1, 5, (5.2, 5.4)),
     r"`boundaries_epochs` must fall on distinct steps after the warmup's 5; at "
     r"steps_per_epoch=1 they round to steps \[5, 5\]"),
    ("boundaries rounding to one step", lambda: Goyal(1.0, 2, 1, (3.0, 3.2)),
     r"round to steps \[6, 6\]"),
    ("boundaries decreasing", lambda: Goyal(0.1, 10, 5, (60, 30)),
     r"`boundaries_epochs` must be strictly increasing, each in \(warmup_epochs=5\.0, inf\)"),
    ("boundary in warmup", lambda: Goyal(0.1, 10, 5, (3, 30)),
     r"`boundaries_epochs`.*Received: boundaries_epochs=\(3, 30\)"),
    ("boundaries not numbers", lambda: Goyal(0.1, 10, 5, "30"), r"`boundaries_epochs`"),
    ("zero factor", lambda: Goyal(0.1, 10, decay_factor=0.0), r"`decay_factor`"),
    ("factor > 1", lambda: Goyal(0.1, 10, decay_factor=2.0), r"`decay_factor`.*=2\.0"),
    ("start > peak", lambda: Goyal(0.1, 10, warmup_start_learning_rate=0.2),
     r"`warmup_start_learning_rate` must be a number in \[0\.0, peak_learning_rate=0\.1\]"),
    ("negative start", lambda: Goyal(0.1, 10, warmup_start_learning_rate=-0.1),
     r"`warmup_start_learning_rate`"),
]

SCALING = [
    (f"{rule.__name__} {argument}", (lambda rule=rule, args=args: rule(*args)),
     rf"`{argument}` must be a number in \(0\.0, inf\)\. Received: {argument}=")
    for rule in (sqrt_scaling, linear_scaling)
    for argument, args in [
        ("base_learning_rate", (0.0, 256, 512)),
        ("base_batch_size", (0.1, 0, 512)),
        ("batch_size", (0.1, 256, -512)),
    ]
]


def assert_all_raise(table):
    for case, build, pattern in table:
        try:
            with pytest.raises(ValueError, match=pattern):
                build()
        except (pytest.fail.Exception, AssertionError) as error:  # say which case failed
            pytest.fail(f"{case}: {error}")


@pytest.mark.parametrize(
    "table",
    [POLYNOMIAL, LEGW_CASES, FROM_BASE, WARMUP_CONSTANT, GOYAL, SCALING],
    ids=["polynomial", "legw", "legw_from_base", "warmup_constant", "goyal", "scaling"],
)
def test_bad_arguments_raise_value_error_naming_them(table):
    assert_all_raise(table)


def test_edge_values_are_accepted():
    Poly(1.0, 1, warmup_steps=1, power=0.0, end_learning_rate=1.0)
    LEGW(1.0, 100, 100)
    LEGW(1.0, 0, 100, "step", boundaries=[], decay_factor=1.0)
    LEGW(1.0, 10, 100, "step", boundaries=[100])
    LEGW.from_base(256, 0.1, 1, 4096, 10, 16)  # warmup exactly the whole training
    WCD(1.0, 100, 10, 90)
    WCD.from_fractions(1.0, 100, 0.7, 0.3)
    Goyal(0.1, 1, 0, ())
