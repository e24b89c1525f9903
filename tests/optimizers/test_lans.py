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
