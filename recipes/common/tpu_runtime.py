"""Which Keras backend drives this machine's TPU, decided before Keras or TensorFlow is
imported (a notebook's first cell sets ``KERAS_BACKEND`` from it). Imports neither.
"""

import importlib.metadata
import importlib.util
import os

#: Device files of a TPU VM's chips (Cloud TPU VMs and Colab's current TPU runtimes; v5e and
#: later appear as ``/dev/vfio/*``).
TPU_VM_DEVICES = ("/dev/accel0", "/dev/vfio/0")


def _installed(distribution):
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def keras_backend(device_paths=TPU_VM_DEVICES):
    """``"jax"`` on a TPU VM whose TPU TensorFlow cannot drive (``tensorflow-tpu`` is not
    installed) and JAX can (``jax`` and its ``libtpu`` are); ``"tensorflow"`` everywhere else:
    GPUs, CPUs, the older remote Colab TPUs, and TPU VMs with ``tensorflow-tpu``.

    Args:
        device_paths: device files whose presence means a TPU VM.
    """
    if not any(os.path.exists(path) for path in device_paths):
        return "tensorflow"
    if _installed("tensorflow-tpu"):
        return "tensorflow"
    if importlib.util.find_spec("jax") and importlib.util.find_spec("libtpu"):
        return "jax"
    return "tensorflow"
