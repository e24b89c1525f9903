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

from absl import app

# TensorFlow's C++ start-up notices (oneDNN, CPU features) would bury the progress bars; a user's
# own setting wins. Set before ``study`` imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ..common import fashion_mnist, report, runtime, study, study_flags  # noqa: E402


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
        dataset: optional ``fashion_mnist.FashionMNIST``; loaded from ``config.data_dir`` etc. when None.
        progress: bool, progress bars.
        out: where the table and the paths are printed.

    Raises:
        study.FlagError: invalid settings.
        fashion_mnist.DataNotFoundError: no Fashion-MNIST found.
        runtime.WriterNotInstalledError: matplotlib, which draws the plot, is not installed
            (checked before anything is read, trained or written).
    """
    study.validate(config)
    runtime.check_writers(plots=True)
    if dataset is None:
        dataset = fashion_mnist.load_fashion_mnist(config.data_dir or None)
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
        config = study_flags.config_from_flags()
        study.validate(config)
    except study.FlagError as e:
        raise app.UsageError(str(e)) from None
    try:
        execute(config)
    except (fashion_mnist.DataNotFoundError, *runtime.WRITER_ERRORS) as e:
        sys.exit(f"ERROR: {e}")
    except study.FlagError as e:  # A check that needed the data (e.g. a batch > its size).
        raise app.UsageError(str(e)) from None


def run():
    """Console-script entry point (``tf-lamb-batch-scaling``)."""
    entry = sys.modules.get("__main__")
    if entry is not None and not entry.__doc__:  # absl prints it as the usage text.
        entry.__doc__ = __doc__
    runtime.list_flags_in_help()
    app.run(main)


study_flags.define_flags()

if __name__ == "__main__":
    run()
