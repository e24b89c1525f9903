"""The ``tf.distribute`` strategy from flags (the global-batch arithmetic is in
:mod:`recipes.common.batching`).

Strategies (TensorFlow backend):

- ``tpu``: ``TPUStrategy`` through ``TPUClusterResolver(tpu=...)`` (``"local"`` on a TPU VM or
  Colab; a name or ``grpc://`` address for a Cloud TPU);
- ``multi_worker``: ``MultiWorkerMirroredStrategy``, the cluster from the ``TF_CONFIG``
  environment variable (one process per host);
- ``mirrored``: ``MirroredStrategy`` over the local GPUs (or logical CPUs in tests);
- ``one_device``: the first GPU, else the CPU;
- ``auto``: ``tpu`` when ``--tpu`` is given, ``multi_worker`` when ``TF_CONFIG`` names more
  than one task, ``mirrored`` with more than one GPU, else ``one_device``.
"""

import json
import os

import tensorflow as tf

from .driver import STRATEGIES
from .tpu_runtime import TPU_VM_DEVICES


def _cluster_size():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return sum(len(tasks) for tasks in config.get("cluster", {}).values())


def find_tpu(environ=None, device_paths=TPU_VM_DEVICES):
    """The ``--tpu`` value for the TPU this machine has, or None: for notebooks, which then
    pass it on (the recipes connect, initialize and build the ``TPUStrategy``).

    - a Colab TPU runtime of the older, remote kind: ``grpc://`` + ``COLAB_TPU_ADDR``;
    - a TPU VM (Cloud TPU VMs and Colab's current TPU runtimes), whose chips appear as
      ``/dev/accel*`` or, on v5e and later, ``/dev/vfio/*``: ``"local"``;
    - ``TPU_NAME`` set (Cloud TPU tooling): its value.

    Args:
        environ: the environment (default ``os.environ``).
        device_paths: device files that mean a TPU VM.
    """
    environ = os.environ if environ is None else environ
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if any(os.path.exists(path) for path in device_paths):
        return "local"
    return environ.get("TPU_NAME") or None


def make_strategy(name="auto", tpu=None):
    """A ``tf.distribute.Strategy``.

    Args:
        name: one of :data:`STRATEGIES`.
        tpu: str or None, the TPU for ``TPUClusterResolver`` (``"local"`` on a TPU VM).

    Raises:
        ValueError: an unknown ``name``, or ``tpu`` strategy without ``--tpu``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    if name == "auto":
        if tpu:
            name = "tpu"
        elif _cluster_size() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "tpu":
        if not tpu:
            raise ValueError("--strategy=tpu needs --tpu (e.g. --tpu=local on a TPU VM).")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def host_index(strategy):
    """``(hosts, this host's index)``: one input pipeline per host, the chief (or, without
    one, worker 0) at index 0. ``(1, 0)`` outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1, 0
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    hosts = chiefs + len(spec.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return hosts, index


def strategy_name(strategy):
    """The public name of ``strategy``'s class (``MultiWorkerMirroredStrategy``, whose class is
    ``CollectiveAllReduceStrategy`` internally)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__
