"""LAMB against the float64 reference, step by step, for every option (any Keras backend)."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LAMBReference

# Every test runs on the fused step and on Keras' per-variable loop (conftest.py).
pytestmark = pytest.mark.usefixtures("optimizer_path")

PATHS = [
    "encoder/scale",
    "encoder/dense/vector",
    "encoder/dense/kernel",
    "encoder/conv/kernel",
    "encoder/dense/bias",
]
WEIGHTS = list(harness.initial_weights().values())

# (tf_lamb.LAMB kwargs, LAMBReference kwargs)
CASES = {
    "defaults": ({}, {}),
    "weight_decay_inside": ({"weight_decay": 0.05}, {"wd": 0.05}),
    "weight_decay_excluding_bias": (
        {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias"]},
        # tfa's rule: the adaptation list falls back to the weight-decay list.
        {"wd": 0.05, "decays": [1, 1, 1, 1, 0], "adapts": [1, 1, 1, 1, 0]},
    ),
    "nvlamb_adapts_every_layer": (
        {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias"],
         "exclude_from_layer_adaptation": []},
        {"wd": 0.05, "decays": [1, 1, 1, 1, 0]},
    ),
    "adaptation_excluded_separately": (
        {"weight_decay": 0.05, "exclude_from_layer_adaptation": ["conv", "scale"]},
        {"wd": 0.05, "adapts": [0, 1, 1, 0, 1]},
    ),
    "decoupled": (
        {"weight_decay": 0.05, "weight_decay_mode": "decoupled"},
        {"wd": 0.05, "mode": "decoupled"},
    ),
    "l2": ({"weight_decay": 0.05, "weight_decay_mode": "l2"}, {"wd": 0.05, "mode": "l2"}),
    "no_bias_correction": ({"bias_correction": False}, {"bias_correction": False}),
    "n_lamb": (
        {"nesterov": "n-lamb", "beta_1": 0.975, "epsilon": 1e-8},
        {"nesterov": "n-lamb", "beta_1": 0.975, "eps": 1e-8},
    ),
    "nn_lamb": (
        {"nesterov": "nn-lamb", "beta_1": 0.975, "epsilon": 1e-8, "weight_decay": 0.01},
        {"nesterov": "nn-lamb", "beta_1": 0.975, "eps": 1e-8, "wd": 0.01},
    ),
    "nn_lamb_without_bias_correction": (
        {"nesterov": "nn-lamb", "bias_correction": False},
        {"nesterov": "nn-lamb", "bias_correction": False},
    ),
    "phi_bounds": ({"weight_norm_bounds": (1.5, 3.0)}, {"bounds": (1.5, 3.0)}),
    "trust_ratio_cap": ({"max_trust_ratio": 0.5}, {"cap": 0.5}),
    "other_betas_and_epsilon": (
        {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3},
        {"beta_1": 0.5, "beta_2": 0.9, "eps": 1e-3},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lamb_matches_float64_reference_every_step(case):
    kwargs, ref_kwargs = CASES[case]
    optimizer = tf_lamb.LAMB(learning_rate=0.01, **kwargs)
    reference = LAMBReference(WEIGHTS, 0.01, **ref_kwargs)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)


def test_lamb_follows_a_learning_rate_schedule_per_step():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.05, 20, end_learning_rate=0.001)
    optimizer = tf_lamb.LAMB(learning_rate=schedule, weight_decay=0.01)

    def lr(t):  # Keras' PolynomialDecay, power 1
        return (0.05 - 0.001) * (1 - min(t, 20) / 20) + 0.001

    reference = LAMBReference(WEIGHTS, lr, wd=0.01)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)


def test_lamb_with_zero_betas_is_sign_sgd_scaled_per_layer():
    # beta_1 = beta_2 = 0: m_hat = g, v_hat = g**2, so u = g / (|g| + eps) ~ sign(g) and each
    # layer moves by lr * ||w|| / ||sign(g)|| * sign(g). epsilon 1e-12 keeps |g| / (|g| + eps)
    # within 1e-9 of 1 for these O(1) gradients; the tolerance is float32 rounding.
    weights = harness.initial_weights(seed=3)
    shapes = {k: v for k, v in harness.SHAPES.items() if k != "zero_bias"}
    variables = [harness.make_variable(f"layer_{k}", weights[k]) for k in shapes]
    optimizer = tf_lamb.LAMB(learning_rate=0.1, beta_1=0.0, beta_2=0.0, epsilon=1e-12)
    for grads in harness.random_gradients(5, seed=4, shapes=shapes):
        before = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], variables))
        for v, w, g in zip(variables, before, grads):
            sign = np.sign(g)
            expected = w - 0.1 * np.linalg.norm(w) / np.linalg.norm(sign) * sign
            np.testing.assert_allclose(keras.ops.convert_to_numpy(v), expected, rtol=1e-5, atol=1e-6)


def test_zero_initialized_bias_trains_with_trust_ratio_one():
    bias = harness.make_variable("dense/bias", np.zeros(4))
    optimizer = tf_lamb.LAMB(learning_rate=0.01)
    grad = keras.ops.convert_to_tensor(np.array([0.5, -1.0, 2.0, -0.25]), "float32")
    optimizer.apply_gradients([(grad, bias)])
    value = keras.ops.convert_to_numpy(bias)
    assert np.all(np.isfinite(value))
    # First Adam step: m_hat = g, v_hat = g**2, so u = g / (|g| + eps); ratio 1 as ||w|| = 0.
    # Tolerance: a few float32 roundings (6e-8 each).
    g = np.array([0.5, -1.0, 2.0, -0.25])
    np.testing.assert_allclose(value, -0.01 * g / (np.abs(g) + 1e-6), rtol=1e-6)


def test_decoupled_mode_reproduces_keras_lamb():
    # keras.optimizers.Lamb decays outside the trust ratio, before the step; with its epsilon
    # the two must agree to float32 rounding after 10 steps.
    weights = harness.initial_weights(seed=5)
    ours = [harness.make_variable(f"a/{k}", w) for k, w in weights.items()]
    theirs = [harness.make_variable(f"b/{k}", w) for k, w in weights.items()]
    opt_ours = tf_lamb.LAMB(0.01, epsilon=1e-7, weight_decay=0.1, weight_decay_mode="decoupled")
    opt_theirs = keras.optimizers.Lamb(0.01, epsilon=1e-7, weight_decay=0.1)
    for grads in harness.random_gradients(10, seed=6):
        grads = [keras.ops.convert_to_tensor(g, "float32") for g in grads]
        opt_ours.apply_gradients(zip(grads, ours))
        opt_theirs.apply_gradients(zip(grads, theirs))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)


def test_inside_mode_differs_from_keras_lamb_when_decaying():
    # The paper puts wd * w inside the trust ratio; Keras' Lamb does not. A hand-made case:
    # w=[1,2,3,4], g=[1,6,7,2], lr 0.1, wd 0.1, one step.
    w = harness.make_variable("w", np.array([1.0, 2.0, 3.0, 4.0]))
    optimizer = tf_lamb.LAMB(0.1, weight_decay=0.1)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor([1.0, 6.0, 7.0, 2.0]), w)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(w), [0.75996, 1.73814, 2.71632, 3.69450], atol=2e-5
    )
