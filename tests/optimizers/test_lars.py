"""LARS (classic and paper forms) against the float64 reference, step by step."""

import keras
import numpy as np
import pytest

import tf_lamb
from tests.optimizers import harness
from tests.optimizers.reference import LARSReference

# Every test runs on the fused step and on Keras' per-variable loop (conftest.py).
pytestmark = pytest.mark.usefixtures("optimizer_path")

PATHS = ["resnet/scale", "resnet/fc/vector", "resnet/fc/kernel", "resnet/conv/kernel", "resnet/batch_norm/beta"]
WEIGHTS = list(harness.initial_weights(seed=10).values())

# (tf_lamb.LARS kwargs, LARSReference kwargs); learning rates are set per form below.
CASES = {
    "classic": ({}, {}),
    "classic_nesterov": ({"nesterov": True}, {"nesterov": True}),
    "classic_weight_decay_and_epsilon": (
        {"weight_decay": 2e-2, "epsilon": 1e-3}, {"wd": 2e-2, "eps": 1e-3}
    ),
    "classic_mlperf_skip_list": (
        # MLPerf: batch norm and bias skip both weight decay and adaptation.
        {"weight_decay": 2e-2, "exclude_from_weight_decay": ["batch_norm", "bias"]},
        {"wd": 2e-2, "decays": [1, 1, 1, 1, 0], "adapts": [1, 1, 1, 1, 0]},
    ),
    "classic_trust_coefficient_and_cap": (
        {"trust_coefficient": 0.02, "max_trust_ratio": 0.01},
        {"eta": 0.02, "cap": 0.01},
    ),
    "paper": ({"form": "paper"}, {"form": "paper"}),
    "paper_nesterov_weight_decay": (
        {"form": "paper", "nesterov": True, "weight_decay": 0.05},
        {"form": "paper", "nesterov": True, "wd": 0.05},
    ),
    "paper_bounds_and_exclusions": (
        {"form": "paper", "weight_norm_bounds": (0.5, 2.0), "weight_decay": 0.05,
         "exclude_from_weight_decay": ["scale"], "exclude_from_layer_adaptation": ["conv"]},
        {"form": "paper", "bounds": (0.5, 2.0), "wd": 0.05,
         "decays": [0, 1, 1, 1, 1], "adapts": [1, 1, 1, 0, 1]},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lars_matches_float64_reference_every_step(case):
    kwargs, ref_kwargs = CASES[case]
    lr = 0.05 if kwargs.get("form") == "paper" else 2.0
    optimizer = tf_lamb.LARS(learning_rate=lr, momentum=0.9, **kwargs)
    reference = LARSReference(WEIGHTS, lr, momentum=0.9, **ref_kwargs)
    harness.run_and_compare(optimizer, reference, WEIGHTS, PATHS)


def test_classic_lars_first_step_by_hand():
    # w = [3, 4] (||w|| = 5), g = [0.6, 0.8] (||g|| = 1), wd 0.1, eta 0.001, lr 2:
    # trust = 0.001 * 5 / (1 + 0.1 * 5) = 1/300; local_lr = 2/300;
    # v = local_lr * (g + 0.1 w) = (1/150) * [0.9, 1.2]; w = w - v.
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    optimizer = tf_lamb.LARS(learning_rate=2.0, weight_decay=0.1)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor([0.6, 0.8]), w)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(w), [3.0 - 0.9 / 150, 4.0 - 1.2 / 150], rtol=1e-6
    )


def test_lars_zero_gradient_gives_trust_ratio_one_not_eta_over_wd():
    # The zero-norm rule: trust = 1 where ||g|| == 0, even though ||g|| + wd ||w|| > 0.
    w = harness.make_variable("w", np.array([3.0, 4.0]))
    optimizer = tf_lamb.LARS(learning_rate=0.5, weight_decay=0.1, momentum=0.0)
    optimizer.apply_gradients([(keras.ops.zeros((2,)), w)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), [3.0 * 0.95, 4.0 * 0.95], rtol=1e-6)
