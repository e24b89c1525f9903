"""The TensorBoard event writer behind tf_lamb's summaries: ``tf.summary`` when TensorFlow is
the Keras backend, tensorboardX on the others (JAX or PyTorch, with or without TensorFlow
installed: a JAX run never starts TensorFlow's runtime next to its own for its summaries), and
either one when the other is missing. Both write event files that TensorBoard reads."""

import importlib.util
import itertools
import os

import keras
import numpy as np

_WRITERS = itertools.count()


def _installed(name):
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _tf_summary_error():
    """None when ``tf.summary`` can write, else ``(what, error)``: the package it lacks
    ("TensorFlow" or "TensorBoard"; ``tf.summary.scalar`` imports ``tensorboard.summary.v2``
    at each call and raises ``TBNotInstalledError`` without it) and its ``ImportError``."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        return "TensorFlow", error
    try:
        from tensorboard.summary.v2 import histogram, scalar  # noqa: F401
    except ImportError as error:
        return "TensorBoard", error
    return None


def _uses_tf_summary(log_dir=""):
    """Which writer :class:`EventWriter` takes for ``log_dir``: True for ``tf.summary``,
    False for tensorboardX, None for neither (see :func:`missing_writer`). A URL
    (``gs://...``) goes to ``tf.summary`` where it can write (TensorFlow's file systems;
    tensorboardX's cloud writers need more packages and rewrite the whole file at each
    flush)."""
    prefers_tf = keras.backend.backend() == "tensorflow" or "://" in str(log_dir)
    if not prefers_tf and _installed("tensorboardX"):
        return False
    if _tf_summary_error() is None:
        return True
    return False if _installed("tensorboardX") else None


def missing_writer():
    """What stops both writers, or None when one can write.

    Returns:
        None, or ``(what, error)``: the package ``tf.summary`` lacks ("TensorFlow" or
        "TensorBoard") and its ``ImportError``, tensorboardX being absent too.
    """
    if _uses_tf_summary() is None:
        return _tf_summary_error()
    return None


class EventWriter:
    """Scalars and histograms into the TensorBoard event files of one folder.

    Args:
        log_dir: str, the folder (created on the first write by ``tf.summary``, at once by
            tensorboardX).
    """

    def __init__(self, log_dir):
        if _uses_tf_summary(log_dir):
            import tensorflow as tf

            self._tf, self._writer = tf, tf.summary.create_file_writer(log_dir)
        else:
            import tensorboardX

            # Its file is named by the second and host: two writers of one folder opened in
            # the same second would write one file.
            self._tf, self._writer = None, tensorboardX.SummaryWriter(
                log_dir, filename_suffix=f".{os.getpid()}.{next(_WRITERS)}")

    def write(self, step, scalars=None, histograms=None):
        """Writes at ``step`` (int) the ``scalars`` (``{tag: float}``) and ``histograms``
        (``{tag: array}``, any shape; the values are binned). tensorboardX, which refuses
        empty histograms and NaN or infinite values, gets the finite values and none of a
        histogram with none; ``tf.summary`` gets them all."""
        scalars, histograms = scalars or {}, histograms or {}
        if self._tf is None:
            for tag, values in histograms.items():
                values = np.asarray(values, np.float64).ravel()
                values = values[np.isfinite(values)]
                if values.size:
                    self._writer.add_histogram(tag, values, step)
            for tag, value in scalars.items():
                self._writer.add_scalar(tag, float(value), step)
            return
        with self._writer.as_default(step=step):
            for tag, values in histograms.items():
                self._tf.summary.histogram(tag, values)
            for tag, value in scalars.items():
                self._tf.summary.scalar(tag, value)

    def close(self):
        """Writes what is buffered to disk and closes the file (tensorboardX's ``flush``
        returns before its writer thread has written the queued events; ``close`` waits)."""
        self._writer.close()
