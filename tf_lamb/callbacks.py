"""Trust-ratio telemetry: per-layer ratios and norms to TensorBoard, and warnings.

The optimizers keep the last step's per-layer weight norm, update norm and trust ratio as state
(:meth:`tf_lamb.optimizers.LayerwiseOptimizer.layer_statistics`), computed by the step itself at
no extra pass. :class:`TrustRatioMonitor` reads them every few steps. Ratios that are 0, not
finite, or pinned at ``max_trust_ratio`` are the usual first sign of a diverging large-batch run
(a layer that stopped moving, a NaN spreading, or a cap doing the work of a schedule), so the
monitor warns about them by layer path.
"""

import warnings

import keras
import numpy as np

from ._summaries import EventWriter, missing_writer

#: What :func:`find_suspect_layers` reports, and what each means.
SUSPECT_KINDS = {
    "zero": "trust ratio 0: the layer does not move",
    "not_finite": "a NaN or infinite norm or trust ratio (a NaN norm gets ratio 1 by the "
    "zero-norm rule, so the norms are checked too)",
    "at_cap": "trust ratio at max_trust_ratio: the cap, not the ratio, sets the step",
}


def find_suspect_layers(statistics, max_trust_ratio=None, rtol=1e-6):
    """Layers whose trust ratio is 0, not finite, or at the cap, from ``layer_statistics()``.

    Layers that are not adapted (ratio fixed at 1) are never suspect. A non-finite weight or
    update norm counts as ``"not_finite"`` even though its ratio reads 1.

    Args:
        statistics: the dict :meth:`tf_lamb.optimizers.LayerwiseOptimizer.layer_statistics` returns.
        max_trust_ratio: the optimizer's cap, or None for no cap.
        rtol: relative tolerance of "at the cap".

    Returns:
        A dict from each kind of :data:`SUSPECT_KINDS` to the list of layer paths (a path
        appears once per kind even when several of its directions are suspect).
    """
    ratios = np.asarray(statistics["trust_ratio"], np.float64)
    adapted = np.asarray(statistics["adapts"], bool)[:, None]
    finite = np.isfinite(ratios)
    for key in ("update_norm", "weight_norm"):
        if key in statistics:
            norms = np.asarray(statistics[key], np.float64).reshape(len(ratios), -1)
            finite &= np.isfinite(norms)
    masks = {
        "zero": ratios == 0.0,
        "not_finite": ~finite,
        "at_cap": (
            np.isclose(ratios, max_trust_ratio, rtol=rtol, atol=0.0)
            if max_trust_ratio is not None
            else np.zeros_like(ratios, bool)
        ),
    }
    paths = np.asarray(statistics["path"])
    return {kind: list(paths[(mask & adapted).any(axis=1)]) for kind, mask in masks.items()}


#: How to get a writer for :class:`TrustRatioMonitor` ``log_dir``.
SUMMARY_INSTALL = (
    "`pip install tensorflow tensorboard`, or `pip install tf-lamb[tf-cpu]` (tensorflow-cpu "
    "with tensorboard), or without TensorFlow `pip install tensorboardX`"
)


class SummariesNotAvailableError(ImportError):
    """TensorBoard summaries were asked for, but nothing that writes them is installed.

    An ``ImportError``. Summaries go through ``tf.summary`` (TensorFlow and TensorBoard) on
    the TensorFlow backend, through tensorboardX on the others, and through either one when
    the other is missing. ``tf.summary`` checks for TensorBoard only when it
    writes (TensorFlow raises its ``TBNotInstalledError`` at the first ``tf.summary.scalar``,
    after the event file is open); :func:`check_summaries` checks up front.
    """


def check_summaries(user="TrustRatioMonitor(log_dir=...)", install=SUMMARY_INSTALL,
                    without=None):
    """Checks that TensorBoard summaries (scalars and histograms) can be written; creates no
    file.

    They can through tensorboardX where it is installed, or through ``tf.summary`` when
    TensorFlow and TensorBoard are (``tf.summary.scalar`` and ``tf.summary.histogram`` import
    ``tensorboard.summary.v2`` at each call and raise ``TBNotInstalledError`` when that fails,
    ``tensorflow/python/summary/tb_summary.py``; this makes the same imports now). So a run
    stops before its first step instead of at its first summary.

    Args:
        user: what writes the summaries, named in the message.
        install: how to install what is missing, named in the message.
        without: optional sentence appended to the message (e.g. how to run without them).

    Raises:
        SummariesNotAvailableError: neither TensorFlow with TensorBoard nor tensorboardX is
            installed.
    """
    missing = missing_writer()
    if missing is None:
        return
    what, cause = missing
    message = (
        f"{user} writes TensorBoard summaries through tf.summary, which needs TensorFlow and "
        f"TensorBoard, or through tensorboardX, but {what} is not installed ({cause}) and "
        f"neither is tensorboardX. Install with {install}."
    )
    if without:
        message += " " + without
    raise SummariesNotAvailableError(message) from cause


def layerwise_optimizer(optimizer):
    """The :class:`~tf_lamb.optimizers.LayerwiseOptimizer` in ``optimizer``, unwrapping a
    ``LossScaleOptimizer``.

    Args:
        optimizer: a ``keras.optimizers.Optimizer``, e.g. ``model.optimizer``.

    Returns:
        The tf_lamb optimizer: ``optimizer`` itself, or the one a ``LossScaleOptimizer``
        wraps.

    Raises:
        ValueError: there is none.
    """
    from tf_lamb.optimizers.layerwise import LayerwiseOptimizer

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not isinstance(inner, LayerwiseOptimizer):
        raise ValueError(
            "TrustRatioMonitor needs a tf_lamb optimizer (LAMB, LARS or LANS), possibly inside "
            f"a LossScaleOptimizer. Received: {type(optimizer).__name__}"
        )
    return inner


class TrustRatioMonitor(keras.callbacks.Callback):
    """Writes per-layer trust ratios and norms to TensorBoard and warns about odd ratios.

    Every ``every_n_steps`` optimizer steps it reads the optimizer's ``layer_statistics()``
    (no extra computation in the step) and:

    - with ``log_dir``, writes histograms ``trust_ratio``, ``weight_norm`` and ``update_norm``
      over the adapted layers, scalars ``trust_ratio/min``, ``/median`` and ``/max``, and
      ``suspect_layers/<kind>`` counts, at the optimizer's step (TensorBoard's x axis);
    - warns (``RuntimeWarning``, once per layer and kind) about layers whose ratio is 0, NaN
      or infinite, or at ``max_trust_ratio`` (:data:`SUSPECT_KINDS`).

    Use it in ``model.fit(callbacks=[...])``, or call :meth:`record` from a custom training
    loop. Summaries go through ``tf.summary`` on the TensorFlow backend (TensorFlow and
    TensorBoard installed; ``tensorflow-cpu`` does not bring TensorBoard) and through
    tensorboardX on JAX and PyTorch, either one standing in when the other is missing, checked
    here (:func:`check_summaries`) before any file is written; warnings need neither.

    Args:
        log_dir: str or None, the TensorBoard folder (e.g. Keras' TensorBoard ``log_dir`` +
            ``"/trust_ratios"``). None: warnings only.
        every_n_steps: int >= 1, optimizer steps between reads. Default 100.
        warn: bool, emit the warnings. Default True.

    Raises:
        ValueError: ``every_n_steps`` < 1.
        SummariesNotAvailableError: (an ``ImportError``) ``log_dir`` is given and neither
            TensorFlow with TensorBoard nor tensorboardX is installed; the message says what
            to install.
    """

    def __init__(self, log_dir=None, every_n_steps=100, warn=True):
        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(
                "Argument `every_n_steps` must be an integer >= 1. "
                f"Received: every_n_steps={every_n_steps!r}"
            )
        self.log_dir = log_dir
        self.every_n_steps = every_n_steps
        self.warn = bool(warn)
        self._warned = set()
        self._writer = None
        if log_dir is not None:  # Fails here, not at the first write.
            check_summaries(
                without="TrustRatioMonitor(log_dir=None) only warns, and needs neither."
            )

    def on_train_batch_end(self, batch, logs=None):
        optimizer = layerwise_optimizer(self.model.optimizer)
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        if step > 0 and step % self.every_n_steps == 0:
            self.record(optimizer, step)

    def on_train_end(self, logs=None):
        if self._writer is not None:  # a later fit writes a new event file beside this one
            self._writer.close()
            self._writer = None

    def record(self, optimizer, step):
        """Reads ``optimizer``'s statistics, writes them and warns; returns the suspect layers.

        Args:
            optimizer: a tf_lamb optimizer (or a LossScaleOptimizer around one), built.
            step: int, the step to log at.

        Returns:
            The dict of :func:`find_suspect_layers`.
        """
        optimizer = layerwise_optimizer(optimizer)
        statistics = optimizer.layer_statistics()
        suspects = find_suspect_layers(statistics, optimizer.max_trust_ratio)
        if self.warn:  # first: a failed write must not hide a diverging layer
            self._warn(suspects, step)
        if self.log_dir is not None:
            self._write(statistics, suspects, step)
        return suspects

    def _write(self, statistics, suspects, step):
        if self._writer is None:
            self._writer = EventWriter(self.log_dir)
        adapted = np.asarray(statistics["adapts"], bool)
        ratios = statistics["trust_ratio"][adapted].ravel()
        scalars = {}
        finite = ratios[np.isfinite(ratios)]
        if finite.size:
            scalars.update({"trust_ratio/min": float(finite.min()),
                            "trust_ratio/median": float(np.median(finite)),
                            "trust_ratio/max": float(finite.max())})
        scalars.update({f"suspect_layers/{kind}": len(paths) for kind, paths in suspects.items()})
        self._writer.write(step, scalars, histograms={
            "trust_ratio": ratios,
            "weight_norm": statistics["weight_norm"][adapted],
            "update_norm": statistics["update_norm"][adapted].ravel(),
        })

    def _warn(self, suspects, step):
        for kind, paths in suspects.items():
            new = [p for p in paths if (kind, p) not in self._warned]
            if not new:
                continue
            self._warned.update((kind, p) for p in new)
            shown = ", ".join(new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
            warnings.warn(
                f"Step {step}: {len(new)} layer(s) with {SUSPECT_KINDS[kind]}: {shown}.",
                RuntimeWarning,
                stacklevel=2,
            )


__all__ = [
    "SUMMARY_INSTALL",
    "SUSPECT_KINDS",
    "SummariesNotAvailableError",
    "TrustRatioMonitor",
    "check_summaries",
    "find_suspect_layers",
    "layerwise_optimizer",
]
