"""Each schedule against a float64 reference written from the formula, at every step."""

import math

import numpy as np
import keras
import pytest
from keras import ops

from tf_lamb import schedules

from . import numpy_reference as ref

# The library computes in float32: every op rounds to 2**-24 ~ 6e-8 relative, and a value
# goes through at most ~10 of them (cast, subtract, divide, power or sin, multiply, add), so
# it stays within 1e-6 of the exact value. atol covers values at or near 0 (the start of
# the warmup, a decay ending at 0), where a relative bound means nothing.
RTOL, ATOL = 1e-6, 1e-9
# Seeds of the random hyper-parameter draws. They are looped over inside each test rather
# than parametrized: tests/conftest.py clears the Keras session around every test item, which
# costs ~0.3 s each, and the whole module must stay well under 30 s.
DRAWS = range(6)


def evaluate(schedule, steps):
    """All steps in one call: every op is elementwise, so this equals calling step by step
    (checked in `test_vector_of_steps_matches_scalar_calls`)."""
    return ops.convert_to_numpy(schedule(np.asarray(steps, dtype="int64")))


def assert_matches(schedule, reference, steps, **kwargs):
    np.testing.assert_allclose(
        evaluate(schedule, steps),
        ref.curve(reference, steps, **kwargs),
        rtol=RTOL,
        atol=ATOL,
        err_msg=f"{type(schedule).__name__} {schedule.get_config()}",
    )


def draw_common(rng):
    total = int(rng.integers(1, 1500))
    warmup = int(rng.choice([0, total, rng.integers(0, total + 1)]))
    peak = float(10 ** rng.uniform(-4, 1))
    end = float(rng.choice([0.0, rng.uniform(0.0, peak)]))
    power = float(rng.choice([0.0, 0.5, 1.0, 2.0, rng.uniform(0.0, 3.0)]))
    return total, warmup, peak, end, power


def all_steps(total):
    return np.arange(0, total + 40)


# ---------------------------------------------------------------- PolynomialDecayWithWarmup


@pytest.mark.parametrize("from_warmup_end", [False, True])
def test_polynomial_matches_reference_for_random_settings(from_warmup_end):
    for seed in DRAWS:
        rng = np.random.default_rng([seed, from_warmup_end])
        total, warmup, peak, end, power = draw_common(rng)
        schedule = schedules.PolynomialDecayWithWarmup(
            peak, total, warmup, power, end, decay_from_warmup_end=from_warmup_end
        )
        assert_matches(
            schedule,
            ref.polynomial_with_warmup,
            all_steps(total),
            peak=peak,
            total=total,
            warmup=warmup,
            power=power,
            end=end,
            from_warmup_end=from_warmup_end,
        )


POLYNOMIAL_EDGES = [  # total, warmup, power, end, from_warmup_end
    (1, 0, 1.0, 0.0, False),  # a single step
    (1, 1, 1.0, 0.0, True),  # warmup only
    (50, 50, 2.0, 0.1, True),  # T == W: end right after warmup
    (50, 0, 0.0, 0.1, False),  # power 0: peak until T, then end
    (50, 10, 0.5, 0.0, False),  # NVIDIA BERT form (rate drops at warmup end)
    (50, 10, 2.0, 1e-4, True),  # MLPerf LARS form
]


def test_polynomial_edge_settings():
    for total, warmup, power, end, from_warmup_end in POLYNOMIAL_EDGES:
        schedule = schedules.PolynomialDecayWithWarmup(
            1.0, total, warmup, power, end, decay_from_warmup_end=from_warmup_end
        )
        assert_matches(
            schedule,
            ref.polynomial_with_warmup,
            all_steps(total),
            peak=1.0,
            total=total,
            warmup=warmup,
            power=power,
            end=end,
            from_warmup_end=from_warmup_end,
        )


def test_polynomial_hand_computed_points():
    schedule = schedules.PolynomialDecayWithWarmup(1.0, 100, 10, power=0.5)
    values = evaluate(schedule, [0, 5, 10, 99, 100, 1000])
    expected = [0.0, 0.5, math.sqrt(0.9), 0.1, 0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=ATOL)
    # decay from the warmup end: half way through [10, 100] is step 55
    schedule = schedules.PolynomialDecayWithWarmup(
        2.0, 100, 10, power=2.0, decay_from_warmup_end=True
    )
    np.testing.assert_allclose(evaluate(schedule, [10, 55]), [2.0, 0.5], rtol=RTOL)


def test_polynomial_keeps_precision_over_a_million_steps():
    # Google BERT baseline: 1M steps, 10K warmup, lr 1e-4, power 1. Integer steps stay exact
    # in float32 up to 2**24, and the end of the decay keeps full relative precision.
    schedule = schedules.PolynomialDecayWithWarmup(1e-4, 1_000_000, 10_000)
    steps = [0, 1, 9_999, 10_000, 500_000, 999_990, 999_999, 1_000_000, 3_000_000]
    assert_matches(
        schedule,
        ref.polynomial_with_warmup,
        steps,
        peak=1e-4,
        total=1_000_000,
        warmup=10_000,
        power=1.0,
        end=0.0,
        from_warmup_end=False,
    )


# ---------------------------------------------------------------------------------- LEGW


@pytest.mark.parametrize("decay", ["polynomial", "cosine", "constant", "step"])
def test_legw_matches_reference_for_random_settings(decay):
    for seed in DRAWS:
        rng = np.random.default_rng([seed, len(decay)])
        total, warmup, peak, end, power = draw_common(rng)
        boundaries, factor = None, float(rng.uniform(0.05, 1.0))
        if decay in ("constant", "step"):
            end = 0.0
        if decay == "step":
            count = min(total - warmup, int(rng.integers(0, 4)))
            picks = rng.choice(np.arange(warmup + 1, total + 1), size=count, replace=False)
            boundaries = sorted(int(b) for b in picks)
        schedule = schedules.LEGW(
            peak, warmup, total, decay, power, end, boundaries=boundaries, decay_factor=factor
        )
        assert_matches(
            schedule,
            ref.legw,
            all_steps(total),
            peak=peak,
            warmup=warmup,
            total=total,
            decay=decay,
            power=power,
            end=end,
            boundaries=boundaries or [],
            factor=factor,
        )


def test_legw_from_base_hand_computed():
    # k = 4096 / 256 = 16; peak = 0.01 * sqrt(16) = 0.04; warmup 0.1 * 16 = 1.6 epochs
    # = 24 steps at 15 steps per epoch; 10 epochs = 150 steps.
    schedule = schedules.LEGW.from_base(256, 0.01, 0.1, 4096, 15, 10)
    assert schedule.peak_learning_rate == pytest.approx(0.04, rel=1e-12)
    assert (schedule.warmup_steps, schedule.total_steps) == (24, 150)
    assert isinstance(schedule.warmup_steps, int) and isinstance(schedule.total_steps, int)
    # half way up the warmup; the peak; half way down [24, 150]; the end
    values = evaluate(schedule, [0, 12, 24, 87, 150])
    np.testing.assert_allclose(values, [0.0, 0.02, 0.04, 0.02, 0.0], rtol=RTOL, atol=ATOL)


def test_legw_from_base_keeps_warmup_steps_when_batch_and_epoch_length_scale():
    # LEGW: k times the batch -> k times the warmup epochs, 1/k the steps per epoch.
    small = schedules.LEGW.from_base(512, 0.1, 0.25, 512, 6400, 90)
    large = schedules.LEGW.from_base(512, 0.1, 0.25, 32768, 6400 // 64, 90)
    assert small.warmup_steps == large.warmup_steps == 1600
    assert large.peak_learning_rate == pytest.approx(0.8)


def test_epoch_to_step_conversion_rounds_halves_up():
    # 0.5 warmup epochs x 5 steps = 2.5 -> 3 (Python's round would give 2)
    legw = schedules.LEGW.from_base(256, 0.1, 0.5, 256, 5, 3)
    goyal = schedules.GoyalStepDecay(0.1, 5, 0.5, [1.5])
    assert legw.warmup_steps == goyal.warmup_steps == 3
    assert goyal.boundaries == [8]


def test_legw_from_base_linear_scaling_and_step_boundaries():
    schedule = schedules.LEGW.from_base(
        256,
        0.1,
        0.5,
        2048,
        100,
        90,
        scaling="linear",
        decay="step",
        boundaries_epochs=[30, 60, 80],
    )
    assert schedule.peak_learning_rate == pytest.approx(0.8)
    assert schedule.warmup_steps == 400  # 0.5 * 8 epochs
    assert schedule.boundaries == [3000, 6000, 8000]
    values = evaluate(schedule, [200, 2999, 3000, 6000, 8000, 9000])
    np.testing.assert_allclose(
        values, [0.4, 0.8, 0.08, 0.008, 0.0008, 0.0008], rtol=RTOL
    )


def test_legw_polynomial_is_polynomial_decay_from_warmup_end():
    legw = schedules.LEGW(0.3, 17, 200, "polynomial", power=2.0, end_learning_rate=0.01)
    poly = schedules.PolynomialDecayWithWarmup(
        0.3, 200, 17, power=2.0, end_learning_rate=0.01, decay_from_warmup_end=True
    )
    steps = all_steps(200)
    np.testing.assert_array_equal(evaluate(legw, steps), evaluate(poly, steps))


# ---------------------------------------------------------------------- WarmupConstantDecay


def test_warmup_constant_decay_matches_reference_for_random_settings():
    for seed in DRAWS:
        rng = np.random.default_rng([seed, 7])
        total, warmup, peak, end, _ = draw_common(rng)
        constant = int(rng.choice([0, total - warmup, rng.integers(0, total - warmup + 1)]))
        schedule = schedules.WarmupConstantDecay(peak, total, warmup, constant, end)
        assert_matches(
            schedule,
            ref.warmup_constant_decay,
            all_steps(total),
            peak=peak,
            total=total,
            warmup=warmup,
            constant=constant,
            end=end,
        )


def test_warmup_constant_decay_from_fractions_hand_computed():
    # LANS paper example: warmup 5%, constant 25% of 1000 steps -> 50 and 250 steps.
    schedule = schedules.WarmupConstantDecay.from_fractions(1e-3, 1000)
    assert (schedule.warmup_steps, schedule.constant_steps) == (50, 250)
    values = evaluate(schedule, [0, 25, 50, 299, 300, 650, 1000, 1200])
    expected = [0.0, 5e-4, 1e-3, 1e-3, 1e-3, 5e-4, 0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=ATOL)


def test_warmup_constant_decay_without_constant_is_linear_decay_from_warmup_end():
    lans = schedules.WarmupConstantDecay(0.7, 120, 12, 0, end_learning_rate=0.05)
    poly = schedules.PolynomialDecayWithWarmup(
        0.7, 120, 12, power=1.0, end_learning_rate=0.05, decay_from_warmup_end=True
    )
    steps = all_steps(120)
    np.testing.assert_array_equal(evaluate(lans, steps), evaluate(poly, steps))


# --------------------------------------------------------------------------- GoyalStepDecay


def test_goyal_matches_reference_for_random_settings():
    for seed in DRAWS:
        rng = np.random.default_rng([seed, 11])
        steps_per_epoch = int(rng.integers(1, 40))
        warmup_epochs = float(rng.choice([0.0, 5.0, rng.uniform(0.0, 6.0)]))
        count = int(rng.integers(0, 4))
        boundaries = sorted(
            set(float(e) for e in warmup_epochs + rng.uniform(0.5, 30.0, size=count))
        )
        peak = float(10 ** rng.uniform(-3, 1))
        start = float(rng.choice([0.0, rng.uniform(0.0, peak)]))
        factor = float(rng.choice([0.1, rng.uniform(0.05, 1.0)]))
        schedule = schedules.GoyalStepDecay(
            peak, steps_per_epoch, warmup_epochs, boundaries, factor, start
        )
        last_epoch = (boundaries[-1] if boundaries else warmup_epochs) + 3
        assert_matches(
            schedule,
            ref.goyal,
            np.arange(0, int(last_epoch * steps_per_epoch)),
            peak=peak,
            steps_per_epoch=steps_per_epoch,
            warmup_epochs=warmup_epochs,
            boundaries_epochs=boundaries,
            factor=factor,
            start=start,
        )


def test_goyal_hand_computed_imagenet_8k():
    # Goyal et al.: batch 8192 = 32 x 256, eta = 0.1 -> k * eta = 3.2; ImageNet 1.28M
    # images -> ~156 steps per epoch; warmup 5 epochs = 780 steps from 0.1.
    schedule = schedules.GoyalStepDecay(
        schedules.linear_scaling(0.1, 256, 8192), 156, warmup_start_learning_rate=0.1
    )
    steps = [0, 390, 780, 30 * 156 - 1, 30 * 156, 60 * 156, 80 * 156, 90 * 156]
    expected = [0.1, 1.65, 3.2, 3.2, 0.32, 0.032, 0.0032, 0.0032]
    np.testing.assert_allclose(evaluate(schedule, steps), expected, rtol=RTOL)


def test_goyal_step_decay_is_legw_step_decay():
    goyal = schedules.GoyalStepDecay(0.5, 1, 10, [40, 70], 0.3)
    legw = schedules.LEGW(0.5, 10, 100, "step", boundaries=[40, 70], decay_factor=0.3)
    steps = all_steps(100)
    np.testing.assert_array_equal(evaluate(goyal, steps), evaluate(legw, steps))


# ---------------------------------------------------------------------------- call forms


ALL_KINDS = [
    schedules.PolynomialDecayWithWarmup(0.02, 90, 9, power=0.5),
    schedules.LEGW(0.02, 9, 90, "cosine", end_learning_rate=0.001),
    schedules.LEGW(0.02, 9, 90, "step", boundaries=[30, 60]),
    schedules.WarmupConstantDecay(0.02, 90, 9, 20),
    schedules.GoyalStepDecay(0.02, 3, 3, [10, 20], warmup_start_learning_rate=0.001),
]


def test_vector_of_steps_matches_scalar_calls():
    steps = [0, 1, 8, 9, 10, 29, 30, 45, 60, 89, 90, 500]
    for schedule in ALL_KINDS:
        scalar = [float(ops.convert_to_numpy(schedule(step))) for step in steps]
        np.testing.assert_allclose(
            evaluate(schedule, steps), scalar, rtol=RTOL, atol=ATOL, err_msg=str(schedule)
        )


@pytest.mark.parametrize("form", ["python_int", "int32", "int64", "float32"])
def test_returns_float32_scalar_for_any_step_type(form):
    step = 37
    if form != "python_int":
        step = ops.convert_to_tensor(np.asarray(37, dtype=form))
    for schedule in ALL_KINDS:
        value = schedule(step)
        assert ops.convert_to_numpy(value).shape == ()
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        np.testing.assert_allclose(
            ops.convert_to_numpy(value), evaluate(schedule, [37])[0], rtol=RTOL
        )
