"""tf_lamb: LAMB, LARS, LANS and LARC for Keras 3, with the large-batch papers' schedules."""

from tf_lamb import callbacks, schedules
from tf_lamb.optimizers import LAMB, LANS, LARC, LARS

__version__ = "0.2.0"

__all__ = ["LAMB", "LANS", "LARC", "LARS", "callbacks", "schedules", "__version__"]
