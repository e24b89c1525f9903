"""sqrt_scaling and linear_scaling: hand-computed values, Python floats out."""

import math

import pytest

from tf_lamb.schedules import linear_scaling, sqrt_scaling


def test_sqrt_scaling_hand_computed():
    # LAMB's untuned ResNet-50 rule (LAMB paper, ImageNet section): 0.04 * sqrt(B / 32768).
    assert sqrt_scaling(0.04, 32768, 8192) == pytest.approx(0.02, rel=1e-15)
    assert sqrt_scaling(0.01, 256, 4096) == pytest.approx(0.04, rel=1e-15)  # k = 16
    assert sqrt_scaling(5e-3, 32768, 65536) == pytest.approx(5e-3 * math.sqrt(2), rel=1e-15)


def test_linear_scaling_hand_computed():
    # Goyal et al.: 0.1 per 256 images -> 3.2 at 8192.
    assert linear_scaling(0.1, 256, 8192) == pytest.approx(3.2, rel=1e-15)
    assert linear_scaling(0.1, 256, 128) == pytest.approx(0.05, rel=1e-15)


def test_rules_return_python_floats_and_leave_the_base_batch_unchanged():
    for rule in (sqrt_scaling, linear_scaling):
        value = rule(0.25, 512, 512)
        assert type(value) is float and value == 0.25
        assert type(rule(1, 2, 8)) is float
