"""Learning-rate schedules and batch-size scaling rules of the large-batch papers.

Every schedule takes the 0-based optimizer iteration and returns a float32 rate, is written
in `keras.ops` (TensorFlow, JAX and PyTorch backends, traceable), and round-trips through
`get_config` / `keras.saving`.
"""

from tf_lamb.schedules.goyal import GoyalStepDecay
from tf_lamb.schedules.lans import WarmupConstantDecay
from tf_lamb.schedules.legw import LEGW
from tf_lamb.schedules.polynomial import PolynomialDecayWithWarmup
from tf_lamb.schedules.scaling import SCALING_RULES, linear_scaling, sqrt_scaling

__all__ = [
    "PolynomialDecayWithWarmup",
    "LEGW",
    "WarmupConstantDecay",
    "GoyalStepDecay",
    "sqrt_scaling",
    "linear_scaling",
    "SCALING_RULES",
]
