r"""LEGW study: an LSTM over Fashion-MNIST rows at batch sizes up to 64x, under each scaling rule.

Takes every flag of the batch-scaling study (``python -m recipes.batch_scaling --help``), with
LSTM defaults (``--model=lstm``, base batch 128, batches 128 to 8,192, LAMB and momentum SGD),
plus ``--rules``; writes ``results.csv``, ``results.json`` and ``accuracy_vs_batch.png`` (one
line per rule and optimizer) to ``--output_dir``:

    python -m recipes.lstm.main --output_dir=/tmp/legw --epochs=10

The base learning rates are the flags' (the study's defaults were tuned for its MLP at batch
256, TUNING.md); tune them once at batch 128 for the LSTM before reading anything into the
comparison.
"""

import os
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ..batch_scaling import data as data_lib  # noqa: E402
from ..batch_scaling import main as study_main  # noqa: E402  (defines the study's flags)
from ..batch_scaling import report, study  # noqa: E402
from . import legw  # noqa: E402

FLAGS = flags.FLAGS
#: The study's flags whose defaults change for the LSTM (LEGW paper: base batch 128, to 64x).
LSTM_DEFAULTS = {"model": "lstm", "base_batch_size": 128,
                 "batch_sizes": ["128", "512", "2048", "8192"],
                 "optimizers": ["lamb", "momentum"], "output_dir": "/tmp/tf_lamb_legw"}
CSV_COLUMNS = ("rule",) + report.COLUMNS + ("target_accuracy", "epochs_to_base",
                                            "seconds_to_base")


def execute(config, rules, dataset, progress=True, out=sys.stdout):
    """Runs :func:`recipes.lstm.legw.run_rules` and writes the results; returns the rows.

    Args:
        config: a ``StudyConfig``; ``dataset``: Fashion-MNIST (as loaded); ``rules``: names.
    """
    dataset = study.select(dataset, config.train_examples, config.validation_examples)
    os.makedirs(config.output_dir, exist_ok=True)
    start = time.perf_counter()
    rows = legw.run_rules(config, dataset, rules, progress=progress)
    path = os.path.join(config.output_dir, report.CSV_NAME)
    with open(path, "w") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for r in rows:
            f.write(",".join("" if r.get(k) is None else str(r.get(k)) for k in CSV_COLUMNS)
                    + "\n")
    report.write_json({"total_wall_time_s": time.perf_counter() - start, "rows": rows,
                       "environment": report.environment()},
                      os.path.join(config.output_dir, report.RESULTS_JSON_NAME))
    lines = [dict(r, optimizer=f"{r['optimizer']} ({r['rule']})") for r in rows]
    report.plot(lines, os.path.join(config.output_dir, report.PLOT_NAME), config.base_batch_size,
                title=f"Fashion-MNIST rows into an LSTM, {config.epochs} epochs; rates tuned "
                      f"once at batch {config.base_batch_size}")
    print(legw.format_table(rows), file=out)
    print(f"results in {config.output_dir}", file=out)
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = study_main.config_from_flags()
        study.validate(config)
        execute(config, FLAGS.rules, data_lib.load_fashion_mnist(config.data_dir or None))
    except (study.FlagError, ValueError) as error:
        raise app.UsageError(str(error)) from None
    except data_lib.DataNotFoundError as error:
        sys.exit(f"ERROR: {error}")


def define_flags():
    """Adds ``--rules`` and the LSTM defaults to the study's flags."""
    if "rules" not in FLAGS:
        flags.DEFINE_list("rules", list(legw.RULES), "Scaling rules to compare, any of "
                          f"{','.join(legw.RULES)} (see recipes/lstm/legw.py).")
    for name, value in LSTM_DEFAULTS.items():
        FLAGS.set_default(name, value)


def run():
    """Console-script entry point (``tf-lamb-legw``)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
