"""LEGW: linear-epoch gradual warmup, then the task's own decay."""

import math

import keras

from tf_lamb import _args
from tf_lamb.schedules import _base, _decay
from tf_lamb.schedules.scaling import SCALING_RULES

DECAYS = ("polynomial", "cosine", "constant", "step")


@keras.saving.register_keras_serializable(package="tf_lamb")
class LEGW(_base.WarmupSchedule):
    """Linear warmup to a peak, then polynomial, cosine, constant or step decay.

    LEGW (linear-epoch gradual warmup) is a rule for changing the batch size: a batch `k`
    times larger gets a peak rate `sqrt(k)` times larger and `k` times as many warmup
    *epochs*, so the warmup keeps about the same number of *steps*; the decay after it is
    whatever the task used at the small batch. Build it from the small-batch settings with
    `LEGW.from_base(...)`, or give the large-batch numbers directly to the constructor.

    .. code-block:: python

        def learning_rate(step):
            if step < warmup_steps:
                return peak_learning_rate * step / warmup_steps
            if decay == "constant":
                return peak_learning_rate
            if decay == "step":
                n = sum(step >= b for b in boundaries)
                return peak_learning_rate * decay_factor ** n
            if step >= total_steps:
                return end_learning_rate
            progress = (step - warmup_steps) / (total_steps - warmup_steps)
            if decay == "polynomial":
                scale = (1 - progress) ** power
            else:  # "cosine"
                scale = 0.5 * (1 + math.cos(math.pi * progress))
            return end_learning_rate + (peak_learning_rate - end_learning_rate) * scale

    Args:
        peak_learning_rate: float > 0, the rate at the end of the warmup (at the new batch
            size: the base rate times `sqrt(k)`).
        warmup_steps: int in `[0, total_steps]`, steps of linear warmup from 0 (0: none).
        total_steps: int >= 1, optimizer steps of the whole training, at the new batch size.
        decay: one of `"polynomial"` (default), `"cosine"`, `"constant"`, `"step"`. Each
            runs from the end of the warmup to `total_steps`. The LEGW paper pairs the warmup
            with each task's existing decay (polynomial, multi-step, ...).
        power: float >= 0, exponent of the polynomial decay. Defaults to 1.0 (linear, as in
            the LAMB paper BERT recipe). MLPerf LARS: 2.
        end_learning_rate: float in `[0, peak_learning_rate]`, the rate at `total_steps` for
            `"polynomial"` and `"cosine"`; must be 0 for the other decays, which do not use
            it. Defaults to 0.0.
        boundaries: list of ints, strictly increasing, each in `(warmup_steps, total_steps]`:
            the steps at which `"step"` multiplies the rate by `decay_factor` (the step
            `b` itself already has the lower rate). Required with `decay="step"` and not
            allowed with the others. Defaults to None.
        decay_factor: float in `(0, 1]`, the multiplier of `"step"`. Defaults to 0.1
            (Goyal et al. 2017 ImageNet schedule).
        name: str or None, name scope of the ops. Defaults to the class name.

    Raises:
        ValueError: an argument is outside its range, `decay` is unknown, `boundaries` is
            missing, not increasing or outside `(warmup_steps, total_steps]`; the message
            names the argument, the range and the value received.

    References:
        - You et al., "Large-Batch Training for LSTM and Beyond" (arXiv 1901.08256), the
          LEGW method: warmup epochs times `k`, Sqrt Scaling of the peak (section numbers
          not checked here).
        - Goyal et al., "Accurate, Large Minibatch SGD" (arXiv 1706.02677), Sec. 2.2:
          gradual (linear) warmup.
    """

    def __init__(
        self,
        peak_learning_rate,
        warmup_steps,
        total_steps,
        decay="polynomial",
        power=1.0,  # LAMB paper BERT recipe: power 1
        end_learning_rate=0.0,
        boundaries=None,
        decay_factor=0.1,  # Goyal et al. 2017: x0.1 at each boundary
        name=None,
    ):
        super().__init__()
        self.peak_learning_rate, self.total_steps, self.warmup_steps = (
            _args.check_warmup_schedule(peak_learning_rate, total_steps, warmup_steps)
        )
        self.decay = _args.check_choice("decay", decay, DECAYS)
        self.power = _args.check_real("power", power, 0.0)
        self.end_learning_rate = _args.check_real(
            "end_learning_rate",
            end_learning_rate,
            0.0,
            self.peak_learning_rate,
            high_label="peak_learning_rate",
        )
        if decay in ("constant", "step") and self.end_learning_rate != 0.0:
            raise ValueError(
                f"`end_learning_rate` must be 0 with decay={decay!r}, which never reaches "
                "it; use decay='polynomial' or 'cosine' to decay to a floor. "
                f"Received: end_learning_rate={end_learning_rate!r}"
            )
        if decay == "step":
            if boundaries is None:
                raise ValueError(
                    "`boundaries` (a list of step numbers) is required with decay='step'. "
                    "Received: boundaries=None"
                )
            boundaries = _args.check_increasing(
                "boundaries",
                boundaries,
                self.warmup_steps,
                self.total_steps,
                low_label="warmup_steps",
                high_label="total_steps",
            )
        elif boundaries is not None:
            raise ValueError(
                f"`boundaries` is only used with decay='step', not decay={decay!r}. "
                f"Received: boundaries={boundaries!r}"
            )
        self.boundaries = boundaries
        self.decay_factor = _args.check_real(
            "decay_factor", decay_factor, 0.0, 1.0, low_open=True
        )
        self.name = _args.check_name(name)

    @classmethod
    def from_base(
        cls,
        base_batch_size,
        base_learning_rate,
        base_warmup_epochs,
        batch_size,
        steps_per_epoch,
        epochs,
        scaling="sqrt",  # LEGW: Sqrt Scaling of the peak rate
        decay="polynomial",
        power=1.0,  # LAMB paper BERT recipe: power 1
        end_learning_rate=0.0,
        boundaries_epochs=None,
        decay_factor=0.1,  # Goyal et al. 2017
        name=None,
    ):
        """Scales a schedule tuned at `base_batch_size` to `batch_size` by the LEGW rule.

        With `k = batch_size / base_batch_size` (global batch sizes; `round` to the nearest
        step, halves up):

        .. code-block:: python

            peak_learning_rate = base_learning_rate * sqrt(k)  # k for scaling="linear"
            warmup_epochs = base_warmup_epochs * k
            warmup_steps = round(warmup_epochs * steps_per_epoch)
            total_steps = round(epochs * steps_per_epoch)
            boundaries = [round(e * steps_per_epoch) for e in boundaries_epochs]

        The result's `peak_learning_rate`, `warmup_steps` and `total_steps` attributes hold
        the computed numbers (Python floats/ints), and its config holds them too, so a
        saved schedule does not depend on these arguments.

        Args:
            base_batch_size: number > 0, the global batch size the base settings were tuned
                at.
            base_learning_rate: float > 0, the peak rate tuned at `base_batch_size`.
            base_warmup_epochs: float >= 0, warmup length in epochs at `base_batch_size`.
            batch_size: number > 0, the global batch size to train at.
            steps_per_epoch: int >= 1, optimizer steps per epoch at `batch_size` (the new
                batch size, i.e. dataset size / `batch_size`).
            epochs: float > 0, length of the training in epochs.
            scaling: `"sqrt"` (default; LEGW, LAMB) or `"linear"` (Goyal et al. 2017).
            decay, power, end_learning_rate, decay_factor, name: as in the constructor.
            boundaries_epochs: list of numbers, strictly increasing, each in
                `(warmup epochs, epochs]`: the epochs at which `decay="step"` multiplies by
                `decay_factor`. Defaults to None.

        Returns:
            A `LEGW` schedule.

        Raises:
            ValueError: an argument is outside its range, or the scaled warmup
                (`base_warmup_epochs * k`) is longer than `epochs`.
        """
        scaling = _args.check_choice("scaling", scaling, tuple(SCALING_RULES))
        peak = SCALING_RULES[scaling](base_learning_rate, base_batch_size, batch_size)
        ratio = batch_size / base_batch_size
        base_warmup_epochs = _args.check_real(
            "base_warmup_epochs", base_warmup_epochs, 0.0
        )
        steps_per_epoch = _args.check_int("steps_per_epoch", steps_per_epoch, 1)
        epochs = _args.check_real("epochs", epochs, 0.0, math.inf, low_open=True)
        warmup_epochs = base_warmup_epochs * ratio
        if warmup_epochs > epochs:
            raise ValueError(
                "The LEGW warmup is longer than the training: "
                f"base_warmup_epochs={base_warmup_epochs!r} times the batch ratio "
                f"k = batch_size / base_batch_size = {batch_size}/{base_batch_size} = "
                f"{ratio:g} gives {warmup_epochs:g} warmup epochs, more than "
                f"epochs={epochs:g}. Lower `base_warmup_epochs` or `batch_size`, or "
                "train for more epochs."
            )
        boundaries = None
        if boundaries_epochs is not None:
            boundaries_epochs = _args.check_increasing(
                "boundaries_epochs",
                boundaries_epochs,
                warmup_epochs,
                epochs,
                low_label="warmup_epochs",
                high_label="epochs",
                cast=float,
            )
            boundaries = [
                _args.to_steps(e, steps_per_epoch) for e in boundaries_epochs
            ]
            _args.check_boundary_steps(
                boundaries, _args.to_steps(warmup_epochs, steps_per_epoch), steps_per_epoch,
                f"boundaries_epochs={boundaries_epochs!r}, warmup epochs "
                f"{warmup_epochs:g} (base_warmup_epochs x {ratio:g})",
            )
        return cls(
            peak_learning_rate=peak,
            warmup_steps=_args.to_steps(warmup_epochs, steps_per_epoch),
            total_steps=_args.to_steps(epochs, steps_per_epoch),
            decay=decay,
            power=power,
            end_learning_rate=end_learning_rate,
            boundaries=boundaries,
            decay_factor=decay_factor,
            name=name,
        )

    def _after_warmup(self, step):
        peak, end = self.peak_learning_rate, self.end_learning_rate
        warmup, length = self.warmup_steps, self.total_steps - self.warmup_steps
        if self.decay == "polynomial":
            return _decay.polynomial_decay(step, peak, end, warmup, length, self.power)
        if self.decay == "cosine":
            return _decay.cosine_decay(step, peak, end, warmup, length)
        if self.decay == "step":
            return _decay.step_decay(step, peak, self.boundaries, self.decay_factor)
        return _decay.constant(peak)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
            "boundaries": self.boundaries,
            "decay_factor": self.decay_factor,
            "name": self.name,
        }

