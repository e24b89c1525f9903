"""tf_lamb: LAMB, LARS and LANS for Keras 3, with the large-batch papers' schedules."""

from tf_lamb import callbacks, schedules
from tf_lamb.optimizers import LAMB, LANS, LARS

__version__ = "0.1.0"

__all__ = ["LAMB", "LANS", "LARS", "callbacks", "schedules", "__version__"]
