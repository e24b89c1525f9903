"""Named configurations of the ResNet recipe, mirroring the references (the papers, MLPerf's
submissions and the peers' code named on each entry). Numbers marked *(check)* could not be
confirmed against their source here.

Every field is also a flag of ``recipes/resnet/train.py``; a flag given overrides the field.
"""

import dataclasses
import math

from ..common import optimizers

#: The references' optimizers first; any other of the recipes' factory is accepted.
OPTIMIZERS = optimizers.names(("momentum", "lars", "lamb"))
SCHEDULES = ("goyal", "polynomial")
SCALING_RULES = optimizers.SCALING_RULES
IMAGENET_TRAIN_EXAMPLES = 1_281_167
IMAGENET_VALIDATION_EXAMPLES = 50_000


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        model: ``resnet50`` or a small ResNet (:data:`recipes.resnet.model.MODELS`).
        image_size, num_classes: the input side in pixels and the classes.
        optimizer: ``momentum`` (Goyal et al.'s, L2 weight decay in the gradient), ``lars``
            or ``lamb``, or any other name of :data:`OPTIMIZERS`.
        global_batch_size: examples per optimizer step, all replicas and passes together.
        epochs: float, passes over ``train_examples``; the run's length unless
            ``train_steps`` is set.
        train_steps: int or 0: optimizer steps (0: ``epochs`` x steps per epoch).
        train_examples, eval_examples: the data's size (ImageNet's by default; the
            converter's metadata.json overrides them).
        learning_rate: the peak rate when ``scaling`` is ``none``.
        scaling: how the peak follows the batch: ``none``; ``linear`` (Goyal et al.:
            ``base_learning_rate * B / base_batch_size``, warmup epochs fixed); ``sqrt`` (the
            LAMB paper's untuned rule with LEGW: ``base_learning_rate * sqrt(B /
            base_batch_size)``, warmup epochs ``base_warmup_epochs * B / base_batch_size``).
        base_batch_size, base_learning_rate, base_warmup_epochs: the rule's base point.
        warmup_epochs: float, linear warmup from 0 (``scaling`` none or linear).
        schedule: ``goyal`` (x``decay_factor`` at ``boundaries_epochs``) or ``polynomial``
            (``(1 - progress) ** decay_power`` down to ``end_learning_rate``).
        boundaries_epochs, decay_factor: the step schedule.
        decay_power, end_learning_rate: the polynomial schedule.
        weight_decay: float; batch-norm and bias variables excluded (and from layer-wise
            adaptation).
        momentum: momentum SGD's and LARS' momentum.
        trust_coefficient: the layer-wise optimizers' eta (LARS, LARC); None: the class'
            default.
        epsilon: the optimizer's epsilon (LARS' denominator in the classic form, LAMB's and
            AdamW's in Adam's step); None: the class' default (the recipes' factory).
        beta_1, beta_2: LAMB's moments.
        label_smoothing: float in [0, 1).
        min_crop_area: the training crop's smallest share of the image (0.08 ImageNet).
        crop_padding: pixels; the evaluation centre crop keeps ``image_size / (image_size +
            crop_padding)`` of the shorter side (32: 87.5% at 224).
        label_offset: subtracted from the stored labels (1 for 1-based records).

    Raises:
        ValueError: a field outside its range (the message names the flag).
    """

    model: str = "resnet50"
    image_size: int = 224
    num_classes: int = 1000
    optimizer: str = "lars"
    global_batch_size: int = 8192
    epochs: float = 90.0
    train_steps: int = 0
    train_examples: int = IMAGENET_TRAIN_EXAMPLES
    eval_examples: int = IMAGENET_VALIDATION_EXAMPLES
    learning_rate: float = 0.1
    scaling: str = "none"
    base_batch_size: int = 256
    base_learning_rate: float = 0.1
    base_warmup_epochs: float = 0.0
    warmup_epochs: float = 5.0
    schedule: str = "polynomial"
    boundaries_epochs: tuple = (30.0, 60.0, 80.0)
    decay_factor: float = 0.1
    decay_power: float = 2.0
    end_learning_rate: float = 0.0
    weight_decay: float = 1e-4
    momentum: float = 0.9
    trust_coefficient: float = None
    epsilon: float = None
    beta_1: float = 0.9
    beta_2: float = 0.999
    label_smoothing: float = 0.1
    min_crop_area: float = 0.08
    crop_padding: int = 32
    label_offset: int = 1

    def __post_init__(self):
        choices = (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("scaling", SCALING_RULES))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(allowed)}. "
                                 f"Received: {getattr(self, name)!r}")
        positive = ("image_size", "num_classes", "global_batch_size", "epochs", "train_examples",
                    "base_batch_size", "base_learning_rate", "learning_rate")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0. Received: {getattr(self, name)}")
        if self.train_steps < 0 or self.warmup_epochs < 0 or self.base_warmup_epochs < 0:
            raise ValueError("--train_steps, --warmup_epochs and --base_warmup_epochs must be "
                             ">= 0.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing must be in [0, 1). Received: "
                             f"{self.label_smoothing}")
        if not 0 < self.min_crop_area <= 1:
            raise ValueError(f"--min_crop_area must be in (0, 1]. Received: {self.min_crop_area}")
        if self.warmup_steps > self.total_steps:
            raise ValueError(f"The warmup ({self.warmup_steps} steps) is longer than the run "
                             f"({self.total_steps} steps); lower --warmup_epochs.")
        late = [e for e in self.boundaries_epochs if self._steps(e) > self.total_steps]
        if self.schedule == "goyal" and late:
            epochs = self.total_steps / self.steps_per_epoch
            raise ValueError(f"--boundaries_epochs: epoch {late[0]:g} is after the run's end "
                             f"({self.total_steps} steps = {epochs:g} epochs); give "
                             "boundaries within the run.")

    def _steps(self, epochs):
        """``epochs`` in optimizer steps, rounded to the nearest (halves up, as
        ``tf_lamb.schedules`` rounds epochs)."""
        return math.floor(epochs * self.steps_per_epoch + 0.5)

    @property
    def steps_per_epoch(self):
        """Optimizer steps per pass over ``train_examples`` (a last partial batch dropped)."""
        return max(1, self.train_examples // self.global_batch_size)

    @property
    def total_steps(self):
        return self.train_steps or max(1, self._steps(self.epochs))

    @property
    def peak_learning_rate(self):
        if self.scaling == "none":
            return self.learning_rate
        return optimizers.scale_learning_rate(
            self.scaling, self.base_learning_rate, self.base_batch_size, self.global_batch_size)

    @property
    def scaled_warmup_epochs(self):
        """The warmup in epochs: ``warmup_epochs``, or LEGW's (``base_warmup_epochs`` x the
        batch ratio) with ``sqrt`` scaling."""
        if self.scaling == "sqrt":
            return self.base_warmup_epochs * self.global_batch_size / self.base_batch_size
        return self.warmup_epochs

    @property
    def warmup_steps(self):
        """The warmup in optimizer steps (rounded as :meth:`_steps`)."""
        return self._steps(self.scaled_warmup_epochs)

    def schedule_fn(self):
        """The ``keras.optimizers.schedules.LearningRateSchedule`` of the run."""
        if self.schedule == "goyal":
            return optimizers.build_schedule(
                "goyal", peak_learning_rate=self.peak_learning_rate,
                steps_per_epoch=self.steps_per_epoch, warmup_epochs=self.scaled_warmup_epochs,
                boundaries_epochs=self.boundaries_epochs, decay_factor=self.decay_factor,
            )
        return optimizers.build_schedule(
            "legw", peak_learning_rate=self.peak_learning_rate, warmup_steps=self.warmup_steps,
            total_steps=self.total_steps, power=self.decay_power,
            end_learning_rate=min(self.end_learning_rate, self.peak_learning_rate),
        )

    def describe(self):
        return (f"{self.optimizer} peak LR {self.peak_learning_rate:.4g} ({self.scaling} "
                f"scaling), {self.total_steps} steps = {self.total_steps / self.steps_per_epoch:.3g}"
                f" epochs of {self.steps_per_epoch}, warmup {self.warmup_steps} steps, "
                f"{self.schedule} decay, {self.model} at {self.image_size}px")


# Epsilon is left to each class: LARS' 0 is MLPerf's, LAMB's 1e-6 the paper's, and another
# --optimizer then gets its own (an epsilon of 0 would stop LAMB and break AdamW).
_MLPERF_LARS = dict(optimizer="lars", schedule="polynomial", decay_power=2.0,
                    end_learning_rate=1e-4, weight_decay=2e-4, momentum=0.9,
                    trust_coefficient=0.001)
_LAMB_UNTUNED = dict(optimizer="lamb", scaling="sqrt", base_batch_size=32768,
                     base_learning_rate=0.04, base_warmup_epochs=20.0, schedule="polynomial",
                     decay_power=1.0, weight_decay=0.01)
_GOYAL = dict(optimizer="momentum", scaling="linear", base_batch_size=256,
              base_learning_rate=0.1, warmup_epochs=5.0, schedule="goyal",
              boundaries_epochs=(30.0, 60.0, 80.0), weight_decay=1e-4, momentum=0.9)

CONFIGS = {
    # Goyal et al. 2017: momentum 0.9, lr 0.1 x B/256, 5 warmup epochs, x0.1 at 30/60/80 of
    # 90 epochs, wd 1e-4. (Label smoothing 0.1 is this recipe's for every optimizer; Goyal et
    # al. used none: pass --label_smoothing=0 for theirs.)
    "goyal_momentum_8k": TrainConfig(global_batch_size=8192, **_GOYAL),
    # MLPerf v0.7 Google TPU submission (run_and_time.sh): batch 8192, LARS base 17, 5 warmup
    # epochs, polynomial power 2 to 1e-4, wd 2e-4, eta 0.001, epsilon 0, 6,875 steps.
    "mlperf_lars_8k": TrainConfig(global_batch_size=8192, learning_rate=17.0, warmup_epochs=5.0,
                                  train_steps=6875, **_MLPERF_LARS),
    # MLPerf TF2 lars_util.py defaults for batch >= 32K: base 31.2, 25 warmup epochs; the
    # epoch budget is Goyal's 90 *(check)*.
    "mlperf_lars_32k": TrainConfig(global_batch_size=32768, learning_rate=31.2,
                                   warmup_epochs=25.0, **_MLPERF_LARS),
    # LAMB paper, ImageNet with the untuned rule: lr 0.04 x sqrt(B/32K), warmup 20 x B/32K
    # epochs (LEGW), linear decay, 90 epochs *(check)*; wd 0.01 *(check)*.
    "lamb_16k": TrainConfig(global_batch_size=16384, **_LAMB_UNTUNED),
    "lamb_32k": TrainConfig(global_batch_size=32768, **_LAMB_UNTUNED),
}


def _fashion(name, base, **changes):
    """The CPU miniature: a ResNet-8 on Fashion-MNIST records at batch 2,048 (3.4% of the
    60,000 training images per step, as 32K is 2.6% of ImageNet's) for 10 epochs. Each
    optimizer gets its reference's rule for the peak rate at that batch and its schedule with
    every epoch count shrunk by the budget's factor (Goyal and LAMB: 90 -> 10 epochs;
    MLPerf LARS: 44 -> 10); nothing is tuned per optimizer or batch size."""
    fields = dict(base, model="resnet8", image_size=28, num_classes=10, global_batch_size=2048,
                  epochs=10.0, train_examples=60000, eval_examples=10000, min_crop_area=0.25,
                  crop_padding=0, **changes)
    CONFIGS[name] = TrainConfig(**fields)


# Goyal: 5 warmup epochs, x0.1 at 30/60/80 of 90 -> 0.56 and 3.33/6.67/8.89 of 10.
_fashion("fashion_momentum_2k", _GOYAL, warmup_epochs=5 / 9,
         boundaries_epochs=(10 / 3, 20 / 3, 80 / 9))
# lars_util.py: below 16K, base 10 with 5 warmup epochs; MLPerf's 44 epochs -> 10.
_fashion("fashion_lars_2k", _MLPERF_LARS, learning_rate=10.0, warmup_epochs=5 * 10 / 44)
# LEGW: 20 x B/32K warmup epochs of 90 -> (20 / 9) x B/32K of 10.
_fashion("fashion_lamb_2k", dict(_LAMB_UNTUNED, base_warmup_epochs=20 / 9))
