"""The LANS schedule: linear warmup, a constant stretch, then linear decay."""

import keras

from tf_lamb import _args
from tf_lamb.schedules import _base, _decay


@keras.saving.register_keras_serializable(package="tf_lamb")
class WarmupConstantDecay(_base.WarmupSchedule):
    """Linear warmup from 0 to a peak, the peak held for a while, then linear decay.

    The schedule Zheng et al. train BERT with LANS at batch 96K/33K: the constant stretch
    after the warmup keeps the rate at its peak longer than a straight warmup-then-decay,
    and the final linear decay is polynomial decay with power 1 (ending at
    `end_learning_rate` at `total_steps`).

    .. code-block:: python

        def learning_rate(step):
            if step < warmup_steps:
                return peak_learning_rate * step / warmup_steps
            decay_start = warmup_steps + constant_steps
            if step < decay_start:
                return peak_learning_rate
            if step >= total_steps:
                return end_learning_rate
            progress = (step - decay_start) / (total_steps - decay_start)
            return end_learning_rate + (
                peak_learning_rate - end_learning_rate
            ) * (1 - progress)

    Use `WarmupConstantDecay.from_fractions(...)` to give the two stretches as fractions of
    `total_steps`, the way the paper does.

    Args:
        peak_learning_rate: float > 0, the rate reached after the warmup and held.
        total_steps: int >= 1, optimizer steps to the end of the decay; from then on the
            rate is `end_learning_rate`.
        warmup_steps: int in `[0, total_steps]`, steps of linear warmup from 0 (0: none).
        constant_steps: int in `[0, total_steps - warmup_steps]`, steps at the peak after
            the warmup.
        end_learning_rate: float in `[0, peak_learning_rate]`, the final rate. Defaults to
            0.0 (LANS paper: decay to 0).
        name: str or None, name scope of the ops. Defaults to the class name.

    Raises:
        ValueError: an argument is outside its range (e.g. `warmup_steps + constant_steps >
            total_steps`); the message names the argument, the range and the value received.

    References:
        - Zheng et al., "Accelerated Large Batch Optimization of BERT Pretraining in 54
          minutes" (arXiv 2006.13484): the learning-rate schedule with a constant stage
          (section number and the exact fractions not checked here; the fractions used in
          the recipes are warmup 5%, constant 25%).
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps,
        constant_steps,
        end_learning_rate=0.0,  # LANS paper: linear decay to 0
        name=None,
    ):
        super().__init__()
        self.peak_learning_rate, self.total_steps, self.warmup_steps = (
            _args.check_warmup_schedule(peak_learning_rate, total_steps, warmup_steps)
        )
        self.constant_steps = _args.check_int(
            "constant_steps",
            constant_steps,
            0,
            self.total_steps - self.warmup_steps,
            high_label="total_steps - warmup_steps",
        )
        self.end_learning_rate = _args.check_real(
            "end_learning_rate",
            end_learning_rate,
            0.0,
            self.peak_learning_rate,
            high_label="peak_learning_rate",
        )
        self.name = _args.check_name(name)

    @classmethod
    def from_fractions(
        cls,
        peak_learning_rate,
        total_steps,
        warmup_fraction=0.05,  # LANS paper, e.g. warmup 5%
        constant_fraction=0.25,  # LANS paper, e.g. constant 25%
        end_learning_rate=0.0,
        name=None,
    ):
        """Builds the schedule with the warmup and constant stretches as fractions of
        `total_steps` (each rounded to the nearest step).

        Args:
            peak_learning_rate, total_steps, end_learning_rate, name: as in the constructor.
            warmup_fraction: float in `[0, 1]`, the warmup's share of `total_steps`.
                Defaults to 0.05 (LANS paper, e.g. warmup 5%).
            constant_fraction: float in `[0, 1]`, the constant stretch's share; with
                `warmup_fraction` at most 1 in all. Defaults to 0.25 (LANS paper, e.g.
                constant 25%).

        Returns:
            A `WarmupConstantDecay` whose config holds the computed step counts.

        Raises:
            ValueError: an argument is outside its range, or the fractions sum above 1.
        """
        total_steps = _args.check_int("total_steps", total_steps, 1)
        warmup_fraction = _args.check_real("warmup_fraction", warmup_fraction, 0.0, 1.0)
        constant_fraction = _args.check_real("constant_fraction", constant_fraction, 0.0, 1.0)
        if warmup_fraction + constant_fraction > 1.0 + 1e-12:  # 0.7 + 0.3 may round up
            raise ValueError(
                "`warmup_fraction` + `constant_fraction` must be at most 1 (they are shares "
                f"of total_steps). Received: warmup_fraction={warmup_fraction!r}, "
                f"constant_fraction={constant_fraction!r}"
            )
        warmup_steps = _args.to_steps(warmup_fraction, total_steps)
        constant_steps = _args.to_steps(constant_fraction, total_steps)
        return cls(
            peak_learning_rate=peak_learning_rate,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            constant_steps=min(constant_steps, total_steps - warmup_steps),
            end_learning_rate=end_learning_rate,
            name=name,
        )

    def _after_warmup(self, step):
        decay_start = self.warmup_steps + self.constant_steps
        return _decay.polynomial_decay(
            step,
            self.peak_learning_rate,
            self.end_learning_rate,
            decay_start,
            self.total_steps - decay_start,
            1.0,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "constant_steps": self.constant_steps,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }
