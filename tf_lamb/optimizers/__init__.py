"""Layer-wise adaptive optimizers: LAMB, LARS, LANS and LARC, sharing one trust-ratio mechanism."""

from tf_lamb.optimizers.clipping import ClipAfterSum
from tf_lamb.optimizers.lamb import LAMB
from tf_lamb.optimizers.lans import LANS
from tf_lamb.optimizers.larc import LARC
from tf_lamb.optimizers.lars import LARS
from tf_lamb.optimizers.layerwise import LayerwiseOptimizer, trust_ratio

__all__ = ["ClipAfterSum", "LAMB", "LANS", "LARC", "LARS", "LayerwiseOptimizer", "trust_ratio"]
