"""Goyal et al.'s ImageNet schedule: gradual warmup, then x0.1 at fixed epochs."""

import math

import keras

from tf_lamb import _args
from tf_lamb.schedules import _base, _decay


@keras.saving.register_keras_serializable(package="tf_lamb")
class GoyalStepDecay(_base.WarmupSchedule):
    """Linear warmup over a few epochs, then the rate multiplied by `decay_factor` at fixed
    epochs.

    The ResNet-50 / ImageNet schedule of Goyal et al. (90 epochs; 5 warmup epochs; x0.1 at
    epochs 30, 60 and 80), the baseline the LAMB paper compares against. Their warmup starts
    at the small-batch rate `eta` and reaches `k * eta` (linear scaling); pass
    `peak_learning_rate=linear_scaling(eta, 256, batch_size)` and
    `warmup_start_learning_rate=eta` for exactly that form. The default start of 0 is the
    warmup the other schedules here use.

    .. code-block:: python

        def learning_rate(step):
            warmup_steps = round(warmup_epochs * steps_per_epoch)
            if step < warmup_steps:
                return warmup_start_learning_rate + (
                    peak_learning_rate - warmup_start_learning_rate
                ) * step / warmup_steps
            n = sum(step >= round(e * steps_per_epoch) for e in boundaries_epochs)
            return peak_learning_rate * decay_factor ** n

    There is no end: after the last boundary the rate stays where it is.

    Args:
        peak_learning_rate: float > 0, the rate at the end of the warmup (Goyal et al.:
            `0.1 * batch_size / 256`, with `batch_size` the global batch).
        steps_per_epoch: int >= 1, optimizer steps per epoch at the global batch size used.
        warmup_epochs: float >= 0, epochs of warmup (0: none). Defaults to 5 (Goyal et al.
            2017, Sec. 2.2).
        boundaries_epochs: numbers, strictly increasing, each above `warmup_epochs`: the
            epochs (0-based epoch counts, converted to steps by `round(e * steps_per_epoch)`,
            halves up)
            from which the rate is multiplied by one more `decay_factor`. Defaults to
            `(30, 60, 80)` (Goyal et al. 2017, following He et al.'s ResNet schedule).
        decay_factor: float in `(0, 1]`. Defaults to 0.1 (Goyal et al. 2017).
        warmup_start_learning_rate: float in `[0, peak_learning_rate]`, the rate at step 0.
            Defaults to 0.0; Goyal et al. use the small-batch rate `eta`.
        name: str or None, name scope of the ops. Defaults to the class name.

    Raises:
        ValueError: an argument is outside its range, or `boundaries_epochs` is not
            increasing or reaches into the warmup; the message names the argument, the range
            and the value received.

    References:
        - Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
          (arXiv 1706.02677): Sec. 2.1 (linear scaling rule), Sec. 2.2 (gradual warmup from
          `eta` to `k * eta` over 5 epochs), and the 90-epoch schedule with x0.1 at epochs
          30, 60, 80 in their experimental setup.
    """

    def __init__(
        self,
        peak_learning_rate,
        steps_per_epoch,
        warmup_epochs=5,  # Goyal et al. 2017, Sec. 2.2: 5 epochs of gradual warmup
        boundaries_epochs=(30, 60, 80),  # Goyal et al. 2017: x0.1 at epochs 30, 60, 80
        decay_factor=0.1,  # Goyal et al. 2017
        warmup_start_learning_rate=0.0,  # Goyal et al. 2017 start at eta; 0 here by default
        name=None,
    ):
        super().__init__()
        self.peak_learning_rate = _args.check_real(
            "peak_learning_rate", peak_learning_rate, 0.0, math.inf, low_open=True
        )
        self.steps_per_epoch = _args.check_int("steps_per_epoch", steps_per_epoch, 1)
        self.warmup_epochs = _args.check_real("warmup_epochs", warmup_epochs, 0.0)
        self.boundaries_epochs = _args.check_increasing(
            "boundaries_epochs",
            boundaries_epochs,
            self.warmup_epochs,
            math.inf,
            low_label="warmup_epochs",
            cast=float,
        )
        self.decay_factor = _args.check_real(
            "decay_factor", decay_factor, 0.0, 1.0, low_open=True
        )
        self.warmup_start_learning_rate = _args.check_real(
            "warmup_start_learning_rate",
            warmup_start_learning_rate,
            0.0,
            self.peak_learning_rate,
            high_label="peak_learning_rate",
        )
        self.name = _args.check_name(name)
        self.warmup_steps = _args.to_steps(self.warmup_epochs, self.steps_per_epoch)
        self.boundaries = [
            _args.to_steps(e, self.steps_per_epoch) for e in self.boundaries_epochs
        ]
        _args.check_boundary_steps(
            self.boundaries, self.warmup_steps, self.steps_per_epoch,
            f"boundaries_epochs={boundaries_epochs!r}, warmup_epochs={warmup_epochs!r}",
        )

    def _after_warmup(self, step):
        return _decay.step_decay(
            step, self.peak_learning_rate, self.boundaries, self.decay_factor
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "boundaries_epochs": self.boundaries_epochs,
            "decay_factor": self.decay_factor,
            "warmup_start_learning_rate": self.warmup_start_learning_rate,
            "name": self.name,
        }
