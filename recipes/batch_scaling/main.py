r"""Batch-scaling study on Fashion-MNIST: test accuracy against global batch size per optimizer.

Trains the same model from the same initial weights with LAMB, LARS, AdamW and momentum SGD at
several global batch sizes. Each optimizer's learning rate was tuned once, at the base batch
(TUNING.md); larger batches get it scaled by one rule with no further tuning. Writes to
``--output_dir``: ``results.csv`` (the table), ``accuracy_vs_batch.png``, ``config.json`` (the
settings, versions and data source) and ``results.json`` (the rows plus per-epoch losses).

    python -m recipes.batch_scaling --output_dir=/tmp/study
    tf-lamb-batch-scaling --optimizers=lamb,adamw --batch_sizes=256,4096 --warmup=fixed

What the papers claim (You et al. 2020, arXiv 1904.00962; You et al. 2019, arXiv 1901.08256),
reported here as measured, not forced: with LEGW and sqrt scaling tuned once at the base batch,
LAMB at 16x the base batch stays within 1 point of its base accuracy in the same epochs, and
holds better than AdamW and momentum at 16x and 64x.
"""

import dataclasses
import os
import sys
import time

from absl import app, flags

# TensorFlow's C++ start-up notices (oneDNN, CPU features) would bury the progress bars; a user's
# own setting wins. Set before ``study`` imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ..common import runtime  # noqa: E402
from . import data as data_lib  # noqa: E402
from . import models, report, study  # noqa: E402

_DEFAULTS = study.StudyConfig()
_TUNED = "Tuned once at batch 256 (TUNING.md)."
UNTUNED = "Not tuned for this study: give it when --optimizers lists this optimizer."
#: The help of each reference's learning-rate and weight-decay flags: where the value comes from.
RATE_HELP = {
    "lamb": (_TUNED, "Inside the trust ratio. 0.01: LAMB paper / NVIDIA BERT. Not tuned."),
    "lars": ("Classic LARS, trust coefficient 0.001. " + _TUNED,
             "2e-4: MLPerf v0.7 ResNet-50. Not tuned."),
    "adamw": (_TUNED, "Decoupled. 0.01: the same rate as LAMB, so the two differ by the trust "
              "ratio and where decay enters. Not tuned."),
    "momentum": ("Momentum 0.9. " + _TUNED, "Decoupled. 1e-4: Goyal et al. 2017. Not tuned."),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the study's flags on ``flag_values`` (tests pass a fresh ``flags.FlagValues()``)."""
    d = _DEFAULTS
    fv = flag_values
    flags.DEFINE_list(
        "optimizers", list(d.optimizers),
        f"Optimizers to compare, any of {','.join(study.OPTIMIZERS)}.", flag_values=fv)
    flags.DEFINE_list(
        "batch_sizes", [str(b) for b in d.batch_sizes],
        "Global batch sizes (examples per optimizer step). Default: 1x, 4x, 16x and 64x the base "
        "batch, the ratios of the LAMB paper's claims (16x) and LEGW's (64x).", flag_values=fv)
    flags.DEFINE_integer(
        "epochs", d.epochs,
        "Epochs for every batch size (the same budget in examples, as in the LAMB paper). 30 "
        "runs the default sweep in 6-8 minutes on 2 CPU cores (measured, TUNING.md), "
        "leaving room under a 15-minute budget on a busy machine, and holds LEGW's 64x warmup "
        "(8 epochs) with 22 epochs to decay.", flag_values=fv)
    flags.DEFINE_integer(
        "base_batch_size", d.base_batch_size,
        "The batch at which the learning rates were tuned; others are scaled from it. 256: the "
        "Goyal et al. 2017 reference batch and a common MNIST-scale batch.", flag_values=fv)
    for name in study.OPTIMIZERS:
        rate, decay = RATE_HELP.get(name, (UNTUNED, UNTUNED))
        flags.DEFINE_float(f"{name}_learning_rate", d.learning_rate(name),
                           f"{name} learning rate at --base_batch_size. {rate}", flag_values=fv)
        flags.DEFINE_float(f"{name}_weight_decay", d.weight_decay(name),
                           f"{name} weight decay; biases excluded. {decay}", flag_values=fv)
    flags.DEFINE_enum(
        "scaling", d.scaling, study.SCALING_RULES,
        "How the peak learning rate grows with batch ratio k, for every optimizer: sqrt (x "
        "sqrt(k), LAMB paper and LEGW) or linear (x k, Goyal et al. 2017).", flag_values=fv)
    flags.DEFINE_enum(
        "warmup", d.warmup, study.WARMUPS,
        "legw: warmup epochs x k, i.e. the base batch's warmup steps at every batch (LEGW, You "
        "et al. 2019); fixed: --base_warmup_epochs epochs at every batch (fewer steps as the "
        "batch grows); none: no warmup.", flag_values=fv)
    flags.DEFINE_float(
        "base_warmup_epochs", d.base_warmup_epochs,
        "Warmup epochs at --base_batch_size. 0.125 (29 steps at batch 256): LEGW multiplies it "
        "by the batch ratio, so at 64x it is 8 epochs, about a quarter of the default 30. "
        "Chosen so the 64x warmup fits with room to decay, not tuned.", flag_values=fv)
    flags.DEFINE_float(
        "decay_power", d.decay_power,
        "Power of the polynomial decay to 0 after warmup. 1: LAMB paper BERT.", flag_values=fv)
    flags.DEFINE_bool(
        "exclude_biases_from_adaptation", d.exclude_biases_from_adaptation,
        "LAMB and LARS: biases skip the trust ratio as well as weight decay (the authors' BERT "
        "code, MLPerf LARS), taking the plain Adam / momentum step at the full learning rate. "
        "--noexclude_biases_from_adaptation gives them a trust ratio like every other layer "
        "(the papers' Algorithms 1-2, NVLAMB). Default: the reference codes' convention; "
        "TUNING.md compares both.",
        flag_values=fv)
    flags.DEFINE_enum(
        "model", d.model, models.MODELS,
        "mlp: 784-512-256-10 (the default, fast on CPU); cnn: a small LeNet-like net (LAMB paper "
        "Table 7 uses LeNet on MNIST), 5-10x slower on CPU; lstm: rows as 28 time steps into an "
        "LSTM of 128 units (the LEGW paper's MNIST-LSTM). The default learning rates were "
        "tuned for the mlp.", flag_values=fv)
    flags.DEFINE_string(
        "data_dir", d.data_dir,
        "Folder with the four Fashion-MNIST IDX files (.gz or not). Empty: "
        f"{data_lib.DEBIAN_DIR} (apt-get install dataset-fashion-mnist), else "
        "keras.datasets.fashion_mnist (downloads).", flag_values=fv)
    flags.DEFINE_string(
        "output_dir", d.output_dir, "Where the CSV, PNG and JSON files go.", flag_values=fv)
    flags.DEFINE_integer(
        "seed", d.seed, "Seed of the initial weights and the data order (the same for every run).",
        flag_values=fv)
    flags.DEFINE_integer(
        "train_examples", d.train_examples,
        "Use only the first N training examples (0: all 60000). For quick checks.",
        flag_values=fv)
    flags.DEFINE_integer(
        "validation_examples", d.validation_examples,
        "Hold out the LAST N training examples and report accuracy on them instead of the test "
        "set (0: the 10k test set). The base learning rates were tuned with 10000 (TUNING.md).",
        flag_values=fv)
    flags.DEFINE_bool(
        "eval_every_epoch", d.eval_every_epoch,
        "Also measure test accuracy after every epoch (shown on the progress bar, saved in "
        "results.json).", flag_values=fv)
    flags.DEFINE_bool(
        "jit_compile", d.jit_compile,
        "XLA-compile the train step. Off: on 2 CPU cores it was no faster for the MLP at large "
        "batches and slower to compile (measured, TUNING.md).", flag_values=fv)


def config_from_flags(flag_values=flags.FLAGS):
    """A :class:`study.StudyConfig` from parsed flags.

    Raises:
        study.FlagError: a batch size is not an integer.
    """
    batch_sizes = []
    for text in flag_values.batch_sizes:
        try:
            batch_sizes.append(int(text))
        except ValueError:
            raise study.FlagError(
                f"--batch_sizes={','.join(flag_values.batch_sizes)}: {text!r} is not an integer."
            ) from None
    values = {
        field.name: getattr(flag_values, field.name)
        for field in dataclasses.fields(study.StudyConfig)
    }
    values["optimizers"] = tuple(o.strip().lower() for o in flag_values.optimizers)
    values["batch_sizes"] = tuple(batch_sizes)
    return study.StudyConfig(**values)


def plot_title(config):
    held_out = (
        f"; accuracy on {config.validation_examples} held-out training examples"
        if config.validation_examples
        else ""
    )
    return (
        f"Fashion-MNIST {config.model}, {config.epochs} epochs, {config.warmup} warmup + "
        f"{config.scaling} LR scaling{held_out};\nlearning rates tuned once at batch "
        f"{config.base_batch_size}, not re-tuned per batch"
    )


def execute(config, dataset=None, progress=True, out=sys.stdout):
    """Runs a study and writes its results; returns ``(rows, paths)``.

    Args:
        config: a :class:`study.StudyConfig` (validated here).
        dataset: optional ``data.FashionMNIST``; loaded from ``config.data_dir`` etc. when None.
        progress: bool, progress bars.
        out: where the table and the paths are printed.

    Raises:
        study.FlagError: invalid settings.
        data.DataNotFoundError: no Fashion-MNIST found.
        runtime.WriterNotInstalledError: matplotlib, which draws the plot, is not installed
            (checked before anything is read, trained or written).
    """
    study.validate(config)
    runtime.check_writers(plots=True)
    if dataset is None:
        dataset = data_lib.load_fashion_mnist(config.data_dir or None)
    source = dataset.source
    dataset = study.select(dataset, config.train_examples, config.validation_examples)
    num_train = len(dataset.x_train)
    study.validate(config, num_train_examples=num_train)
    os.makedirs(config.output_dir, exist_ok=True)
    paths = {
        "csv": os.path.join(config.output_dir, report.CSV_NAME),
        "plot": os.path.join(config.output_dir, report.PLOT_NAME),
        "config": os.path.join(config.output_dir, report.CONFIG_NAME),
        "results": os.path.join(config.output_dir, report.RESULTS_JSON_NAME),
    }
    record = {
        "flags": dataclasses.asdict(config),
        "data_source": source,
        "train_examples_used": num_train,
        "evaluated_on": "test set" if not config.validation_examples else (
            f"last {config.validation_examples} training examples (held out)"
        ),
        "evaluation_examples": len(dataset.x_test),
        "last_partial_batch": "dropped",
        "environment": report.environment(),
    }
    report.write_json(record, paths["config"])
    print(
        f"Fashion-MNIST from {dataset.source}: {num_train} training / {len(dataset.x_test)} "
        f"evaluation examples. {len(config.optimizers)} optimizers x "
        f"{len(config.batch_sizes)} batch sizes.",
        file=out,
        flush=True,
    )
    start = time.perf_counter()

    def save_partial(rows):  # A study cut short still leaves the runs it finished.
        report.write_csv(report.add_deltas(rows, config.base_batch_size), paths["csv"])

    rows = study.run_study(config, dataset, progress=progress, on_result=save_partial)
    total = time.perf_counter() - start
    report.add_deltas(rows, config.base_batch_size)
    report.write_csv(rows, paths["csv"])
    report.write_json({"total_wall_time_s": total, "rows": rows}, paths["results"])
    record["total_wall_time_s"] = total
    report.write_json(record, paths["config"])
    report.plot(rows, paths["plot"], config.base_batch_size, title=plot_title(config))
    print("\n" + report.format_table(rows), file=out)
    if config.validation_examples:
        print(
            f"(accuracy on the last {config.validation_examples} training examples, held out; "
            "not the test set)",
            file=out,
        )
    print(f"\nTotal wall time: {total:.1f} s", file=out)
    for key in ("csv", "plot", "config", "results"):
        print(f"{key:>8}: {paths[key]}", file=out)
    return rows, paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_from_flags()
        study.validate(config)
    except study.FlagError as e:
        raise app.UsageError(str(e)) from None
    try:
        execute(config)
    except (data_lib.DataNotFoundError, *runtime.WRITER_ERRORS) as e:
        sys.exit(f"ERROR: {e}")
    except study.FlagError as e:  # A check that needed the data (e.g. a batch > its size).
        raise app.UsageError(str(e)) from None


def run():
    """Console-script entry point (``tf-lamb-batch-scaling``)."""
    entry = sys.modules.get("__main__")
    if entry is not None and not entry.__doc__:  # absl prints it as the usage text.
        entry.__doc__ = __doc__
    app.run(main)


if "batch_sizes" not in flags.FLAGS:  # Imported once as recipes.*, once as tf_lamb_recipes.*.
    define_flags()

if __name__ == "__main__":
    run()
