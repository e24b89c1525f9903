"""LANS against the float64 reference, step by step."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LANSReference

# Every test runs on the fused step and on Keras' per-variable loop (conftest.py).
pytestmark = pytest.mark.usefixtures("optimizer_path")

PATHS = ["bert/scale", "bert/ffn/vector", "bert/ffn/kernel", "bert/conv/kernel", "bert/LayerNorm/beta"]
WEIGHTS = list(harness.initial_weights(seed=20).values())

CASES = {
    "defaults": ({}, {"wd": 0.01}),
    "bert_exclusions": (
        {"exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"]},
        {"wd": 0.01, "decays": [1, 1, 1, 1, 0], "adapts": [1, 1, 1, 1, 0]},
    ),
    "without_gradient_normalization": ({"normalize_grad": False}, {"wd": 0.01, "normalize_grad": False}),
    "decoupled": ({"weight_decay_mode": "decoupled", "weight_decay": 0.1}, {"wd": 0.1, "mode": "decoupled"}),
    "l2": ({"weight_decay_mode": "l2", "weight_decay": 0.1}, {"wd": 0.1, "mode": "l2"}),
    "no_bias_correction_bounds_cap": (
        {"bias_correction": False, "weight_norm_bounds": (0.1, 2.0), "max_trust_ratio": 0.9},
        {"wd": 0.01, "bias_correction": False, "bounds": (0.1, 2.0), "cap": 0.9},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lans_matches_float64_reference_every_step(case):
    kwargs, ref_kwargs = CASES[case]
    optimizer = tf_lamb.LANS(learning_rate=0.01, **kwargs)
    reference = LANSReference(WEIGHTS, 0.01, **ref_kwargs)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)


def test_lans_normalizes_the_gradient_scale_away():
    # With normalize_grad, gradients g and 1000 g give the same first steps.
    def run(scale):
        w = harness.make_variable("w", np.array([1.0, -2.0, 0.5]))
        optimizer = tf_lamb.LANS(learning_rate=0.01, weight_decay=0.0, epsilon=1e-12)
        for g in harness.random_gradients(3, seed=2, shapes={"w": (3,)}, scale=scale):
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g[0], "float32"), w)])
        return keras.ops.convert_to_numpy(w)

    np.testing.assert_allclose(run(1.0), run(1000.0), rtol=1e-5)


def _authors_kernel_step(state, grads, lr, t, b1=0.9, b2=0.999, eps=1e-6, wd=0.1, l2=True):
    """One step of the LANS authors' fused kernel (GluonNLP ``multi_tensor_lans``), float64:
    stage 1 per tensor (normalize, decay into the normalized gradient when ``l2``, moments,
    the two updates), then stage 2 (the two trust ratios, one move of ``p``)."""
    c1, c2 = 1 - b1**t, 1 - b2**t
    for i, g in enumerate(grads):
        p, m, v = state["p"][i], state["m"][i], state["v"][i]
        grad_norm = np.sqrt(np.sum(g * g))
        scaled = g / (grad_norm + eps) if grad_norm != 0 else g
        if l2:
            scaled = scaled + wd * p
        m = b1 * m + (1 - b1) * scaled
        v = b2 * v + (1 - b2) * scaled * scaled
        denom = np.sqrt(v / c2) + eps
        update_m, update_g = (m / c1) / denom, scaled / denom
        if not l2:
            update_m, update_g = update_m + wd * p, update_g + wd * p
        p_norm = np.sqrt(np.sum(p * p))

        def rate(u):
            u_norm = np.sqrt(np.sum(u * u))
            return lr * p_norm / u_norm if u_norm != 0 and p_norm != 0 else lr

        p = p - b1 * rate(update_m) * update_m - (1 - b1) * rate(update_g) * update_g
        state["p"][i], state["m"][i], state["v"][i] = p, m, v


@pytest.mark.parametrize("mode", ["l2", "inside"])
def test_lans_matches_the_authors_kernel(mode):
    # Their adam_w_mode=False ("l2") adds wd * w to the normalized gradient, so the decay
    # passes through the moments; adam_w_mode=True adds it to both directions ("inside").
    # Every layer adapted, as the authors do; the zero bias trains with ratio 1.
    optimizer = tf_lamb.LANS(
        learning_rate=0.02, weight_decay=0.1, weight_decay_mode=mode,
        exclude_from_layer_adaptation=[],
    )
    state = {
        "p": [np.array(w, np.float64) for w in WEIGHTS],
        "m": [np.zeros_like(w, dtype=np.float64) for w in WEIGHTS],
        "v": [np.zeros_like(w, dtype=np.float64) for w in WEIGHTS],
    }
    variables = [harness.make_variable(p, w) for p, w in zip(PATHS, WEIGHTS)]
    for t, grads in enumerate(harness.random_gradients(10, seed=5), start=1):
        optimizer.apply_gradients(
            zip([keras.ops.convert_to_tensor(g, "float32") for g in grads], variables)
        )
        grads64 = [np.asarray(g, np.float64) for g in grads]
        _authors_kernel_step(state, grads64, 0.02, t, l2=mode == "l2")
        for v, ref, p in zip(variables, state["p"], PATHS):
            # float32 against float64 over 10 steps (see harness.RTOL); a decay placed before
            # the normalization moves the weights by 3e-3 or more (relative) from step 1.
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(v), ref, rtol=harness.RTOL, atol=harness.ATOL,
                err_msg=f"{p} differs from the authors' kernel at step {t}",
            )
