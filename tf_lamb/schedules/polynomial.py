"""Polynomial decay after a linear warmup: the BERT (LAMB, NVIDIA) and MLPerf LARS schedule."""

import keras

from tf_lamb import _args
from tf_lamb.schedules import _base, _decay


@keras.saving.register_keras_serializable(package="tf_lamb")
class PolynomialDecayWithWarmup(_base.WarmupSchedule):
    """Linear warmup from 0 to a peak, then polynomial decay to `end_learning_rate`.

    The schedule of BERT pre-training with LAMB (power 1, i.e. linear), of NVIDIA's BERT
    (power 0.5) and of MLPerf ResNet-50 with LARS (power 2). By default the decay is measured
    from step 0, as Google's and NVIDIA's BERT code do, so the rate drops slightly when the
    warmup ends; `decay_from_warmup_end=True` starts the decay at the peak instead, as the
    MLPerf LARS code does.

    .. code-block:: python

        def learning_rate(step):
            if step < warmup_steps:
                return peak_learning_rate * step / warmup_steps
            if step >= total_steps:
                return end_learning_rate
            if decay_from_warmup_end:
                progress = (step - warmup_steps) / (total_steps - warmup_steps)
            else:
                progress = step / total_steps
            return end_learning_rate + (
                peak_learning_rate - end_learning_rate
            ) * (1 - progress) ** power

    `step` is the 0-based optimizer iteration (`optimizer.iterations`), so the first update
    uses `learning_rate(0)`, which is 0 when there is a warmup.

    Args:
        peak_learning_rate: float > 0, the rate reached at the end of the warmup.
        total_steps: int >= 1, optimizer steps to the end of the decay; from then on the
            rate is `end_learning_rate`.
        warmup_steps: int in `[0, total_steps]`, steps of linear warmup from 0. Defaults to
            0 (no warmup). BERT: 10% of `total_steps`.
        power: float >= 0, exponent of the decay. Defaults to 1.0 (LAMB paper BERT recipe
            and Google BERT: power 1). NVIDIA BERT: power 0.5. MLPerf v0.7 ResNet-50 LARS:
            power 2 with `decay_from_warmup_end=True`.
        end_learning_rate: float in `[0, peak_learning_rate]`, the final rate. Defaults to
            0.0 (Google BERT).
        decay_from_warmup_end: bool. If False (default; Google BERT, NVIDIA BERT, and the
            form `peak * (1 - t / T) ** p` the LAMB paper quotes) the decay runs over
            `[0, total_steps]`; if True (MLPerf LARS) over `[warmup_steps, total_steps]`.
        name: str or None, name scope of the ops. Defaults to the class name.

    Raises:
        ValueError: an argument is outside its range (e.g. `warmup_steps > total_steps`,
            a negative `power`, `end_learning_rate > peak_learning_rate`); the message names
            the argument, the range and the value received.

    References:
        - You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
          minutes" (arXiv 1904.00962): BERT with LAMB, linear warmup then polynomial decay
          with power 1 (section not checked here).
        - Devlin et al., BERT, `optimization.py` in google-research/bert: warmup
          `init_lr * step / warmup_steps`, then `polynomial_decay(power=1.0)` from step 0.
        - NVIDIA DeepLearningExamples BERT: the same with power 0.5.
        - MLPerf training v0.7 ResNet-50 with LARS: power 2, decay counted from the end of
          warmup (the reference code's own one-step offsets are not reproduced).
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,  # Google BERT uses 10% of total_steps; 0 means no warmup
        power=1.0,  # LAMB paper BERT recipe: power 1; NVIDIA BERT: 0.5; MLPerf LARS: 2
        end_learning_rate=0.0,  # Google BERT: 0
        decay_from_warmup_end=False,  # Google / NVIDIA BERT; MLPerf LARS: True
        name=None,
    ):
        super().__init__()
        self.peak_learning_rate, self.total_steps, self.warmup_steps = (
            _args.check_warmup_schedule(peak_learning_rate, total_steps, warmup_steps)
        )
        self.power = _args.check_real("power", power, 0.0)
        self.end_learning_rate = _args.check_real(
            "end_learning_rate",
            end_learning_rate,
            0.0,
            self.peak_learning_rate,
            high_label="peak_learning_rate",
        )
        self.decay_from_warmup_end = _args.check_bool(
            "decay_from_warmup_end", decay_from_warmup_end
        )
        self.name = _args.check_name(name)

    def _after_warmup(self, step):
        start = self.warmup_steps if self.decay_from_warmup_end else 0
        return _decay.polynomial_decay(
            step,
            self.peak_learning_rate,
            self.end_learning_rate,
            start,
            self.total_steps - start,
            self.power,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
            "decay_from_warmup_end": self.decay_from_warmup_end,
            "name": self.name,
        }
