"""`WarmupSchedule`: a linear warmup followed by whatever decay a subclass defines."""

import keras

from tf_lamb.schedules import _decay


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `warmup_start_learning_rate` (0 unless a subclass sets it) to
    `peak_learning_rate` over `warmup_steps`, then `self._after_warmup(step)`.

    Subclasses set `peak_learning_rate`, `warmup_steps` and `name`, and define
    `_after_warmup(step)` (float32 step in, float32 learning rate out) and `get_config()`.
    """

    warmup_start_learning_rate = 0.0

    def _after_warmup(self, step):
        raise NotImplementedError

    def __call__(self, step):
        with keras.name_scope(self.name or type(self).__name__):
            step = _decay.float_step(step)
            return _decay.linear_warmup(
                step,
                self.warmup_steps,
                self.peak_learning_rate,
                self._after_warmup(step),
                start=self.warmup_start_learning_rate,
            )
