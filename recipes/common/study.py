"""The batch-scaling study: one model, several global batch sizes, several optimizers.

For each optimizer the base learning rate is tuned ONCE, at ``base_batch_size``
(``recipes/batch_scaling/TUNING.md``), and
every larger batch gets it scaled by one rule (sqrt or linear, the same rule for all optimizers),
with one warmup policy:

- ``legw`` (You et al. 2019, arXiv 1901.08256): batch k times the base -> warmup EPOCHS times k, so
  warmup STEPS stay those of the base batch; peak learning rate scaled by the rule.
  ``tf_lamb.schedules.LEGW.from_base``.
- ``fixed``: the same warmup EPOCHS (``base_warmup_epochs``) at every batch, so fewer warmup steps
  as the batch grows: ``ceil(base_warmup_epochs * steps_per_epoch)`` steps (never rounded down to
  no warmup while ``base_warmup_epochs > 0``).
- ``none``: no warmup.

After the warmup, the learning rate decays polynomially to 0 over the whole run (power
``decay_power``, 1 by default as in the LAMB paper's BERT runs). Nothing else changes with the
batch: same model, same initial weights, same data order, same epochs. Every step uses exactly
the global batch (the last partial batch of an epoch is dropped, see
``fashion_mnist.train_dataset``).
"""

import dataclasses
import functools
import math
import time

import keras
import numpy as np

from . import fashion_mnist, models, optimizers
from .loop import array_feed, make_evaluate, make_runner, train_epochs
from .runtime import seed_everything

#: The study's reference optimizers, run by default; ``--optimizers`` takes any name of
#: :data:`recipes.common.optimizers.OPTIMIZERS`, these first.
REFERENCES = ("lamb", "lars", "adamw", "momentum")
OPTIMIZERS = optimizers.names(REFERENCES)
SCALING_RULES = optimizers.RULES
WARMUPS = ("legw", "fixed", "none")

#: Each reference's base learning rate, tuned once at batch 256
#: (``recipes/batch_scaling/TUNING.md``), and weight decay (not tuned: the reference's own,
#: ``study_flags.RATE_HELP`` says whose). Another optimizer has none: the study asks for both
#: (``--<name>_learning_rate``, ``--<name>_weight_decay``).
TUNED = {"lamb": (0.005, 0.01), "lars": (5.0, 2e-4), "adamw": (0.001, 0.01),
         "momentum": (0.1, 1e-4)}

#: The settings each optimizer takes in this study beyond the factory's (the references'
#: forms): momentum SGD as Keras' ``SGD``, weight decay decoupled.
SETTINGS = {"momentum": {"weight_decay_mode": "decoupled"}}

#: Variables that get neither weight decay nor a trust ratio: biases (the MLP and CNN have no
#: normalization layers). LAMB paper / BERT exclude ``bias`` and LayerNorm; MLPerf LARS skips
#: bias and batch-norm variables.
NO_DECAY_PATTERNS = ("bias",)


class FlagError(ValueError):
    """A study setting is invalid; the message names the flag, the allowed values and the value."""


@dataclasses.dataclass
class _Settings:
    optimizers: tuple = REFERENCES
    batch_sizes: tuple = (256, 1024, 4096, 16384)
    epochs: int = 30
    base_batch_size: int = 256
    scaling: str = "sqrt"
    warmup: str = "legw"
    base_warmup_epochs: float = 0.125
    decay_power: float = 1.0
    exclude_biases_from_adaptation: bool = True
    model: str = "mlp"
    data_dir: str = ""
    output_dir: str = "/tmp/tf_lamb_batch_scaling"
    seed: int = 0
    train_examples: int = 0
    validation_examples: int = 0
    eval_every_epoch: bool = False
    jit_compile: bool = False


def _rates(self, optimizer):
    """The base learning rate of ``optimizer`` (at ``base_batch_size``) and its weight decay
    (not scaled with the batch); None where the study has none."""
    return (getattr(self, f"{optimizer}_learning_rate"),
            getattr(self, f"{optimizer}_weight_decay"))


StudyConfig = dataclasses.make_dataclass(
    "StudyConfig",
    [(f"{name}_{kind}", float, dataclasses.field(default=TUNED.get(name, (None, None))[i]))
     for name in OPTIMIZERS for i, kind in enumerate(("learning_rate", "weight_decay"))],
    bases=(_Settings,),
    namespace={
        "learning_rate": lambda self, optimizer: _rates(self, optimizer)[0],
        "weight_decay": lambda self, optimizer: _rates(self, optimizer)[1],
    },
)
StudyConfig.__doc__ = """Everything a study depends on. Field names are the flag names
(:mod:`recipes.common.study_flags`):
the run's settings, and ``<optimizer>_learning_rate`` (at ``base_batch_size``) and
``<optimizer>_weight_decay`` for every optimizer of :data:`OPTIMIZERS` (:data:`TUNED`'s values,
None for the others). ``learning_rate(name)`` and ``weight_decay(name)`` read them."""


def _fail(flag, value, requirement):
    raise FlagError(f"--{flag}={value}: {requirement}")


def _format_list(values):
    return ",".join(str(v) for v in values)


def validate(config, num_train_examples=None, known_models=models.MODELS):
    """Checks ``config`` before anything runs; raises :class:`FlagError` naming the flag.

    Args:
        config: a :class:`StudyConfig`.
        num_train_examples: int, the training examples one epoch draws from, once the data is
            loaded; before that, ``train_examples`` or, when 0, Fashion-MNIST's 60,000 less
            ``validation_examples``.
        known_models: the allowed ``config.model`` names (another recipe's models, e.g. the
            LSTM language model's, when it passes its own builder to :func:`run_study`).

    Raises:
        FlagError: the first invalid setting found.
    """
    if not config.optimizers:
        _fail("optimizers", "", f"give at least one of {_format_list(OPTIMIZERS)}.")
    for name in config.optimizers:
        if name not in OPTIMIZERS:
            _fail(
                "optimizers",
                _format_list(config.optimizers),
                f"unknown optimizer {name!r}; allowed: {_format_list(OPTIMIZERS)}.",
            )
    if len(set(config.optimizers)) != len(config.optimizers):
        _fail("optimizers", _format_list(config.optimizers), "an optimizer is listed twice.")
    if not config.batch_sizes:
        _fail("batch_sizes", "", "give at least one global batch size.")
    for batch in config.batch_sizes:
        if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
            _fail(
                "batch_sizes",
                _format_list(config.batch_sizes),
                f"batch sizes must be positive integers; got {batch!r}.",
            )
    if len(set(config.batch_sizes)) != len(config.batch_sizes):
        _fail("batch_sizes", _format_list(config.batch_sizes), "a batch size is listed twice.")
    if keras.backend.backend() == "jax":  # Each batch is split across the devices.
        import jax

        devices = jax.device_count()
        for batch in config.batch_sizes:
            if batch % devices:
                _fail("batch_sizes", _format_list(config.batch_sizes),
                      f"{batch} does not divide across the {devices} JAX devices; use "
                      f"multiples of {devices}.")
    for flag in ("epochs", "base_batch_size"):
        value = getattr(config, flag)
        if not isinstance(value, int) or value <= 0:
            _fail(flag, value, "must be a positive integer.")
    if not isinstance(config.validation_examples, int) or not (
        0 <= config.validation_examples < fashion_mnist.NUM_TRAIN
    ):
        _fail(
            "validation_examples",
            config.validation_examples,
            f"must be 0 (evaluate on the test set) or a count below {fashion_mnist.NUM_TRAIN}.",
        )
    remaining = fashion_mnist.NUM_TRAIN - config.validation_examples
    if not isinstance(config.train_examples, int) or not (
        0 <= config.train_examples <= remaining
    ):
        _fail(
            "train_examples",
            config.train_examples,
            f"must be 0 (all) or a count up to {remaining} (60000 less --validation_examples).",
        )
    available = num_train_examples or config.train_examples or remaining
    too_big = [b for b in config.batch_sizes if b > available]
    if too_big:
        _fail(
            "batch_sizes",
            _format_list(config.batch_sizes),
            f"batch size {too_big[0]} is larger than the {available} training examples; every "
            "step uses a full global batch, so the largest allowed is "
            f"{available}.",
        )
    for name in OPTIMIZERS:
        lr, wd = config.learning_rate(name), config.weight_decay(name)
        for flag, value in ((f"{name}_learning_rate", lr), (f"{name}_weight_decay", wd)):
            if value is None and name in config.optimizers:
                _fail(flag, "", f"{name} has no value tuned for this study "
                      "(recipes/batch_scaling/TUNING.md); give one.")
        if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr)
                                   and lr > 0):
            _fail(f"{name}_learning_rate", lr, "must be a finite number > 0.")
        if wd is not None and not (isinstance(wd, (int, float)) and math.isfinite(wd)
                                   and wd >= 0):
            _fail(f"{name}_weight_decay", wd, "must be a finite number >= 0.")
    enums = (("scaling", SCALING_RULES), ("warmup", WARMUPS), ("model", known_models))
    for flag, allowed in enums:
        if getattr(config, flag) not in allowed:
            _fail(flag, getattr(config, flag), f"allowed values: {_format_list(allowed)}.")
    if not (math.isfinite(config.base_warmup_epochs) and config.base_warmup_epochs >= 0):
        _fail("base_warmup_epochs", config.base_warmup_epochs, "must be a finite number >= 0.")
    if not (math.isfinite(config.decay_power) and config.decay_power > 0):
        _fail("decay_power", config.decay_power, "must be a finite number > 0.")
    if not config.output_dir:
        _fail("output_dir", "''", "give a folder to write the results to.")
    if config.warmup == "legw":
        largest = max(config.batch_sizes)
        ratio = largest / config.base_batch_size
        warmup_epochs = config.base_warmup_epochs * ratio
        if warmup_epochs > config.epochs:
            _fail(
                "base_warmup_epochs",
                config.base_warmup_epochs,
                f"with --warmup=legw the warmup grows with the batch: at batch {largest} "
                f"({ratio:g}x --base_batch_size={config.base_batch_size}) it lasts "
                f"{warmup_epochs:g} epochs, more than --epochs={config.epochs}. Use "
                f"--base_warmup_epochs <= {config.epochs / ratio:g}, more --epochs, or smaller "
                "--batch_sizes.",
            )
    for batch in config.batch_sizes:
        build_schedule(config, batch, available)  # Any other schedule error, before training.


@dataclasses.dataclass
class Schedule:
    """A learning-rate schedule and the numbers a results row reports about it."""

    schedule: keras.optimizers.schedules.LearningRateSchedule
    peak_learning_rate: float
    warmup_steps: int
    steps_per_epoch: int
    total_steps: int


def build_schedule(config, batch_size, num_train_examples, base_learning_rate=1.0):
    """The learning-rate schedule of one run (see the module docstring for the warmups).

    Args:
        config: a :class:`StudyConfig`.
        batch_size: int, the global batch of the run.
        num_train_examples: int, training examples per epoch before the remainder is dropped.
        base_learning_rate: float, the optimizer's learning rate at ``config.base_batch_size``.

    Returns:
        A :class:`Schedule`.

    Raises:
        FlagError: the schedule cannot be built (e.g. LEGW warmup longer than the run).
    """
    steps_per_epoch = fashion_mnist.steps_per_epoch(num_train_examples, batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.warmup == "legw":
        try:
            schedule = optimizers.build_schedule(
                "legw",
                base_batch_size=config.base_batch_size,
                base_learning_rate=base_learning_rate,
                base_warmup_epochs=config.base_warmup_epochs,
                batch_size=batch_size,
                steps_per_epoch=steps_per_epoch,
                epochs=config.epochs,
                scaling=config.scaling,
                decay="polynomial",
                power=config.decay_power,
                end_learning_rate=0.0,
            )
        except ValueError as e:
            raise FlagError(f"--warmup=legw at batch {batch_size}: {e}") from e
        return Schedule(
            schedule,
            float(schedule.peak_learning_rate),
            int(schedule.warmup_steps),
            steps_per_epoch,
            int(schedule.total_steps),
        )
    peak = optimizers.scale_learning_rate(
        config.scaling, base_learning_rate, config.base_batch_size, batch_size)
    warmup_steps = 0
    if config.warmup == "fixed":
        warmup_steps = min(math.ceil(config.base_warmup_epochs * steps_per_epoch), total_steps)
    schedule = optimizers.build_schedule(
        "polynomial",
        peak_learning_rate=peak,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        power=config.decay_power,
        end_learning_rate=0.0,
    )
    return Schedule(schedule, peak, warmup_steps, steps_per_epoch, total_steps)


def build_optimizer(name, learning_rate, weight_decay, exclude_biases_from_adaptation=True,
                    variables=None):
    """An optimizer of :data:`OPTIMIZERS` from the recipes' factory, biases excluded from
    weight decay; each reference as its paper or library uses it:

    - ``lamb``: ``tf_lamb.LAMB`` with the paper's betas 0.9/0.999 and epsilon 1e-6, weight decay
      inside the trust ratio; biases get neither decay nor a trust ratio (BERT's exclusions).
    - ``lars``: ``tf_lamb.LARS``, classic/MLPerf form: momentum 0.9, trust coefficient 0.001,
      epsilon 0; biases skip decay and adaptation (MLPerf's skip list).
    - ``adamw``: Keras' ``AdamW`` with LAMB's betas and epsilon (1e-6, Keras' default is 1e-7),
      so it differs from LAMB only by the trust ratio and where decay enters.
    - ``momentum``: Keras' ``SGD(momentum=0.9)`` (Goyal et al. 2017), decoupled decay
      (:data:`SETTINGS`).

    Args:
        name: one of :data:`OPTIMIZERS`.
        learning_rate: float or ``LearningRateSchedule``.
        weight_decay: float >= 0.
        exclude_biases_from_adaptation: bool; for the layer-wise optimizers, whether biases
            also skip the trust ratio (then they take the plain Adam / momentum step at the
            full learning rate) or get one like every other layer (the papers' Algorithms 1
            and 2; NVLAMB).
        variables: the model's trainable variables (Keras' baselines exclude them by
            identity).
    """
    excluded = list(NO_DECAY_PATTERNS)
    return optimizers.build_optimizer(
        name, learning_rate, weight_decay=weight_decay, exclude_from_weight_decay=excluded,
        exclude_from_layer_adaptation=excluded if exclude_biases_from_adaptation else [],
        variables=variables, flag="--optimizers", **SETTINGS.get(name, {}))


def select(dataset, train_examples=0, validation_examples=0):
    """The examples a study trains and evaluates on.

    Args:
        dataset: a ``fashion_mnist.FashionMNIST``.
        train_examples: int, keep only the first N training examples (0: all).
        validation_examples: int; when > 0, the LAST N training examples replace the test set
            and are not trained on (how the base learning rates were tuned,
            ``recipes/batch_scaling/TUNING.md``).

    Returns:
        A ``fashion_mnist.FashionMNIST`` whose ``source`` says what the "test" arrays are.
    """
    if validation_examples:
        cut = len(dataset.x_train) - validation_examples
        dataset = dataset._replace(
            x_train=dataset.x_train[:cut],
            y_train=dataset.y_train[:cut],
            x_test=dataset.x_train[cut:],
            y_test=dataset.y_train[cut:],
            source=f"{dataset.source} (evaluated on the last {validation_examples} training "
            "examples, held out; not the test set)",
        )
    if train_examples and train_examples < len(dataset.x_train):
        dataset = dataset._replace(
            x_train=dataset.x_train[:train_examples], y_train=dataset.y_train[:train_examples]
        )
    return dataset


def run_one(config, dataset, optimizer_name, batch_size, progress=True, build_model=None):
    """Trains one model with one optimizer at one global batch size and tests it.

    Args:
        config: a validated :class:`StudyConfig`; ``dataset``: as :func:`select` returns it
            (any arrays with its fields: ``y`` may hold one label per time step).
        optimizer_name: one of :data:`OPTIMIZERS`; ``batch_size``: the global batch.
        progress: bool, show a progress bar.
        build_model: optional ``f(seed) -> keras.Model`` returning logits; default
            ``models.build_model(config.model, seed)``.

    Returns:
        A dict, one row of the results (see ``report.COLUMNS``) plus ``train_loss`` and
        ``epoch_logs`` (per epoch).
    """
    keras.backend.clear_session()
    if keras.backend.backend() == "jax":  # Data parallel over every device, if several.
        from . import jax_training

        jax_training.use_all_devices(batch_size)
    seed_everything(config.seed)
    start = time.perf_counter()
    num_train = len(dataset.x_train)
    sched = build_schedule(
        config, batch_size, num_train, base_learning_rate=config.learning_rate(optimizer_name)
    )
    model = (build_model or functools.partial(models.build_model, config.model))(seed=config.seed)
    optimizer = build_optimizer(
        optimizer_name,
        sched.schedule,
        config.weight_decay(optimizer_name),
        exclude_biases_from_adaptation=config.exclude_biases_from_adaptation,
        variables=model.trainable_variables,
    )
    runner = make_runner(model, optimizer, batch_size,
                         labels_per_example=int(np.prod(dataset.y_train.shape[1:])),
                         jit_compile=config.jit_compile)
    feed = array_feed(dataset.x_train, dataset.y_train, batch_size, sched.steps_per_epoch,
                      seed=config.seed)

    evaluate = make_evaluate(model)
    evaluation_seconds = 0.0

    def test_accuracy(epoch):
        # Also the training time so far (the run's set-up included, evaluations excluded).
        nonlocal evaluation_seconds
        begin = time.perf_counter()
        accuracy, loss = evaluate(dataset.x_test, dataset.y_test)
        logs = {"test_accuracy": f"{accuracy:.4f}", "test_loss": f"{loss:.4f}",
                "train_s": f"{begin - start - evaluation_seconds:.2f}"}
        evaluation_seconds += time.perf_counter() - begin
        return logs

    history = train_epochs(
        runner,
        feed,
        epochs=config.epochs,
        steps_per_epoch=sched.steps_per_epoch,
        description=f"{optimizer_name:>8s} batch {batch_size:>5d}",
        on_epoch_end=test_accuracy if config.eval_every_epoch else None,
        progress=progress,
    )
    accuracy, test_loss = evaluate(dataset.x_test, dataset.y_test)
    return {
        "optimizer": optimizer_name,
        "global_batch_size": batch_size,
        "batch_ratio": batch_size / config.base_batch_size,
        "steps_per_epoch": sched.steps_per_epoch,
        "total_steps": sched.total_steps,
        "steps_run": history["steps"],
        "base_learning_rate": config.learning_rate(optimizer_name),
        "peak_learning_rate": sched.peak_learning_rate,
        "warmup_steps": sched.warmup_steps,
        "warmup_epochs": sched.warmup_steps / sched.steps_per_epoch,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "final_train_loss": history["train_loss"][-1],
        "diverged": history["diverged"],
        "wall_time_s": time.perf_counter() - start,
        "train_loss": history["train_loss"],
        "epoch_logs": history["epoch_logs"],
    }


def run_study(config, dataset, progress=True, on_result=None, build_model=None, finished=None):
    """Runs every (optimizer, batch size) pair of ``config``, optimizers in the outer loop.

    Args:
        config: a validated :class:`StudyConfig`.
        dataset: a ``fashion_mnist.FashionMNIST`` already passed through :func:`select`.
        progress: bool, show a progress bar per run.
        on_result: optional ``f(rows so far)`` called after each run (to save partial results).
        build_model: optional ``f(seed) -> keras.Model``, as in :func:`run_one`.
        finished: optional ``{(optimizer, batch size): row}`` of runs an interrupted study
            already made with these settings; they are reused, not run again.

    Returns:
        The list of result rows, in run order.
    """
    rows = []
    for name in config.optimizers:
        for batch in sorted(config.batch_sizes):
            if finished and (name, batch) in finished:
                rows.append(finished[name, batch])
                continue
            rows.append(run_one(config, dataset, name, batch, progress=progress,
                                build_model=build_model))
            if on_result:
                on_result(rows)
    return rows
