r"""LEGW study: LSTMs at batch sizes up to 64x the base, under each scaling rule.

Two tasks (``--task``), both from the LEGW paper (You et al. 2019, arXiv 1901.08256):

- ``rows`` (default): Fashion-MNIST images read row by row (28 steps of 28 pixels) by an LSTM
  classifier, the paper's MNIST-LSTM; judged by held-out accuracy.
- ``text``: a word-piece LSTM language model over real text (by default the Python
  documentation, see ``recipes/README.md``, "Data"; or ``--input_files`` / ``--input_dir``),
  the paper's PTB-LSTM in miniature;
  judged by held-out perplexity (``recipes/lstm/text.py``, ``recipes/lstm/language_model.py``).

Takes every flag of the batch-scaling study (``python -m recipes.batch_scaling --help``) plus
``--rules``, ``--task`` and the text flags, with LSTM defaults (base batch 128, batches 128 to
8,192, LAMB and momentum SGD; each task's own learning rates and epochs, RESULTS.md, unless
given on the command line). Writes ``results.csv``, ``results.json`` and a plot (one line per
rule and optimizer) to ``--output_dir``:

    python -m recipes.lstm.main --output_dir=/tmp/legw
    python -m recipes.lstm.main --task=text --output_dir=/tmp/legw_text

The base learning rates were tuned once per task at batch 128 on held-out data
(``recipes/lstm/RESULTS.md``); nothing is re-tuned per batch size or rule.
"""

import dataclasses
import functools
import json
import os
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ..common import corpus, fashion_mnist, report, runtime  # noqa: E402
from ..common import study, study_flags  # noqa: E402
from . import language_model, legw, text  # noqa: E402

FLAGS = flags.FLAGS
TASKS = ("rows", "text")
_COMMON = {"base_batch_size": 128, "batch_sizes": ["128", "512", "2048", "8192"],
           "optimizers": ["lamb", "momentum"]}
#: The study's flags whose defaults change, per task, unless given on the command line (LEGW
#: paper: base batch 128, to 64x). Learning rates: tuned once at batch 128 (RESULTS.md).
TASK_DEFAULTS = {
    "rows": dict(_COMMON, model="lstm", output_dir="/tmp/tf_lamb_legw",
                 lamb_learning_rate=0.01, momentum_learning_rate=1.0),
    # 8 epochs of the Python documentation (0.95M tokens) with 1x, 8x and 64x the base batch:
    # what a sweep of 3 rules x 2 optimizers fits in on 2 CPU cores (RESULTS.md). The base
    # warmup is 1/16 epoch (13 steps), so the 64x warmup (4 epochs) leaves half the run to decay.
    "text": dict(_COMMON, model="lstm_lm", output_dir="/tmp/tf_lamb_legw_text",
                 batch_sizes=["128", "1024", "8192"], epochs=8, base_warmup_epochs=0.0625,
                 lamb_learning_rate=0.01, momentum_learning_rate=3.0),
}
CSV_COLUMNS = ("rule",) + report.COLUMNS + ("test_perplexity", "target", "epochs_to_base",
                                            "seconds_to_base")


@dataclasses.dataclass
class Task:
    """What one study runs on: the data, how runs are judged and the model, if not the
    study's own."""

    dataset: object
    metric: str = "accuracy"
    build_model: object = None
    known_models: tuple = None
    title: str = ""
    #: Settings outside ``StudyConfig`` that a saved run must share to be reused.
    settings: dict = dataclasses.field(default_factory=dict)


def title(task, config, seq_length=None):
    """The plot's title for ``task`` (``rows`` or ``text``)."""
    if task == "rows":
        return f"Fashion-MNIST rows into an LSTM, {config.epochs} epochs"
    return f"LSTM language model, {seq_length}-token windows, {config.epochs} epochs"


def rows_task(config, dataset=None):
    """Fashion-MNIST read row by row (``config.model``, normally ``lstm``), judged by accuracy.

    Raises:
        fashion_mnist.DataNotFoundError: no Fashion-MNIST (when ``dataset`` is None).
    """
    if dataset is None:
        dataset = fashion_mnist.load_fashion_mnist(config.data_dir or None)
    return Task(study.select(dataset, config.train_examples, config.validation_examples),
                title=title("rows", config))


def text_task(config, fv=FLAGS, dataset=None):
    """The language model over ``fv``'s corpus (or ``dataset``, a ``text.TextData``), judged by
    held-out perplexity.

    Raises:
        study.FlagError: ``--validation_examples`` is set (text holds out whole documents).
        ValueError, FileNotFoundError: from :func:`recipes.lstm.text.load`.
    """
    if config.validation_examples:
        raise study.FlagError("--validation_examples: the text task holds out whole documents "
                              "(--heldout_fraction); leave it at 0.")
    if dataset is None:
        dataset = text.load(config.output_dir, fv.input_dir, fv.input_pattern, fv.input_files,
                            fv.vocab_size, fv.vocab_file, fv.seq_length, fv.heldout_fraction,
                            evaluate_on=fv.evaluate_on)
    dataset = study.select(dataset, config.train_examples)
    build = functools.partial(language_model.build_model, dataset.num_classes,
                              embedding_dim=fv.embedding_dim, units=fv.units)
    return Task(dataset, "perplexity", build, ("lstm_lm",),
                title("text", config, dataset.x_train.shape[1]),
                {"seq_length": int(dataset.x_train.shape[1]), "vocab": dataset.num_classes,
                 "embedding_dim": fv.embedding_dim, "units": fv.units})


#: One JSON line per finished run, written as each ends: a killed study resumes from it.
RUNS_LOG = "runs.jsonl"


def settings(config, data_source, extra=None):
    """What a saved run must share with this study to be reused: every setting except the
    lists of optimizers, batch sizes and rules, the output folder, and the rates of
    optimizers that have none (an optimizer added to the factory leaves saved runs valid);
    the data; and ``extra`` (the task's own settings, e.g. the language model's size)."""
    values = dict(dataclasses.asdict(config), **(extra or {}))
    for key in ("optimizers", "batch_sizes", "output_dir", "warmup", "scaling",
                "eval_every_epoch"):
        values.pop(key)
    for name in study.OPTIMIZERS:
        keys = (f"{name}_learning_rate", f"{name}_weight_decay")
        if all(values[key] is None for key in keys):
            for key in keys:
                values.pop(key)
    values["data_source"] = data_source
    return json.loads(json.dumps(values))  # tuples as lists, as read back


def finished_runs(output_dir, wanted):
    """The rows :data:`RUNS_LOG` in ``output_dir`` holds for the settings ``wanted``; a line
    cut short by a kill, and runs with other settings, are left out."""
    path = os.path.join(output_dir, RUNS_LOG)
    if not os.path.exists(path):
        return []
    return [e["row"] for e in report.read_json_lines(path) if e.get("settings") == wanted]


def execute(config, rules, task, progress=True, out=sys.stdout):
    """Runs :func:`recipes.lstm.legw.run_rules` on ``task`` and writes the results; returns
    the rows. Each finished run is saved as it ends (:data:`RUNS_LOG`); run again after a
    kill, the study reuses them and runs only the rest.

    Args:
        config: a ``StudyConfig``; ``rules``: names from ``legw.RULES``; ``task``: a
            :class:`Task` (:func:`rows_task` or :func:`text_task`).

    Raises:
        runtime.WriterNotInstalledError: matplotlib, which draws the plot, is not installed
            (checked before anything is trained or written).
    """
    runtime.check_writers(plots=True)
    os.makedirs(config.output_dir, exist_ok=True)
    wanted = settings(config, task.dataset.source, task.settings)
    finished = finished_runs(config.output_dir, wanted)
    if finished:
        print(f"reusing {len(finished)} finished runs from "
              f"{os.path.join(config.output_dir, RUNS_LOG)}", file=out, flush=True)

    def save(row):
        with open(os.path.join(config.output_dir, RUNS_LOG), "a") as f:
            f.write(json.dumps({"settings": wanted, "row": row}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    start = time.perf_counter()
    rows = legw.run_rules(config, task.dataset, rules, progress=progress, metric=task.metric,
                          build_model=task.build_model, known_models=task.known_models,
                          finished=finished, on_result=save)
    write_results(config, rows, task.metric, task.title,
                  {"total_wall_time_s": time.perf_counter() - start,
                   "data_source": task.dataset.source}, out)
    return rows


def write_results(config, rows, metric, plot_title, record, out=sys.stdout):
    """Writes ``results.csv``, ``results.json`` (``record`` with the rows) and the plot to
    ``config.output_dir``, and prints the table."""
    os.makedirs(config.output_dir, exist_ok=True)
    report.write_csv(rows, os.path.join(config.output_dir, report.CSV_NAME), CSV_COLUMNS)
    report.write_json(dict(record, rows=rows, environment=report.environment()),
                      os.path.join(config.output_dir, report.RESULTS_JSON_NAME))
    plot = legw.plot(rows, config.output_dir, config.base_batch_size, metric,
                     title=f"{plot_title}; rates tuned once at batch {config.base_batch_size}")
    print(legw.format_table(rows, metric), file=out)
    print(f"results in {config.output_dir} ({os.path.basename(plot)}, {report.CSV_NAME}, "
          f"{report.RESULTS_JSON_NAME})", file=out)


def merge(config, task, directories, seq_length=None, out=sys.stdout):
    """Merges the results of several runs of this program (e.g. one per optimizer, run in
    parallel) into ``config.output_dir``: rows ordered by rule, optimizer and batch.

    Args:
        config: the runs' ``StudyConfig`` (its base batch and epochs label the results).
        task: ``rows`` or ``text``; ``seq_length``: the text task's window.
        directories: the runs' ``--output_dir``.

    Raises:
        FileNotFoundError: a directory holds no ``results.json`` (the message names it).
        ValueError: two runs hold the same rule, optimizer and batch.
    """
    rows, seconds = [], 0.0
    for directory in directories:
        path = os.path.join(directory, report.RESULTS_JSON_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--merge_from: no {report.RESULTS_JSON_NAME} in {directory}")
        with open(path) as f:
            found = json.load(f)
        rows += found["rows"]
        seconds += found.get("total_wall_time_s", 0.0)
    keys = [(r["rule"], r["optimizer"], r["global_batch_size"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--merge_from: a rule, optimizer and batch appear twice in "
                         f"{', '.join(directories)}")
    order = {rule: i for i, rule in enumerate(legw.RULES)}
    rows.sort(key=lambda r: (order[r["rule"]], r["optimizer"], r["global_batch_size"]))
    write_results(config, rows, "perplexity" if task == "text" else "accuracy",
                  title(task, config, seq_length),
                  {"merged_from": list(directories), "total_wall_time_s": seconds}, out)
    return rows


def apply_task_defaults(fv=FLAGS):
    """Gives the study's flags ``fv.task``'s defaults where the command line did not set them."""
    for name, value in TASK_DEFAULTS[fv.task].items():
        if not fv[name].present:
            fv[name].value = value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    apply_task_defaults()
    try:
        config = study_flags.config_from_flags()
        if FLAGS.merge_from:
            merge(config, FLAGS.task, FLAGS.merge_from, FLAGS.seq_length)
            return
        task = rows_task(config) if FLAGS.task == "rows" else text_task(config)
        execute(config, FLAGS.rules, task)
    except (study.FlagError, ValueError) as error:
        raise app.UsageError(str(error)) from None
    except (fashion_mnist.DataNotFoundError, FileNotFoundError,
            *runtime.WRITER_ERRORS) as error:
        sys.exit(f"ERROR: {error}")


def define_flags(fv=FLAGS):
    """Adds ``--rules``, ``--task`` and the text task's flags to the study's, with the LSTM
    defaults."""
    study_flags.define_flags(fv)
    if "rules" in fv:
        return
    flags.DEFINE_list("rules", list(legw.RULES), "Scaling rules to compare, any of "
                      f"{','.join(legw.RULES)} (see recipes/lstm/legw.py).", flag_values=fv)
    text_defaults = " ".join(
        f"--{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in TASK_DEFAULTS["text"].items() if v != TASK_DEFAULTS["rows"].get(k))
    flags.DEFINE_list("merge_from", [], "Train nothing: merge the results of these runs' "
                      "--output_dir (e.g. one per optimizer, run in parallel) into --output_dir.",
                      flag_values=fv)
    flags.DEFINE_enum("task", "rows", TASKS, "rows: an LSTM classifier over Fashion-MNIST rows "
                      "(accuracy); text: an LSTM language model over --input_dir or "
                      f"--input_files (perplexity), whose defaults differ: {text_defaults}.",
                      flag_values=fv)
    flags.DEFINE_string("input_dir", corpus.DEFAULT_CORPUS, "--task=text: a directory of "
                        "documents, one per file matching --input_pattern (reStructuredText "
                        "cleaned). Default: Debian's python3.11-doc (recipes/README.md, Data).",
                        flag_values=fv)
    flags.DEFINE_string("input_pattern", "**/*.rst.txt", "--task=text: glob below --input_dir.",
                        flag_values=fv)
    flags.DEFINE_list("input_files", [], "--task=text: files of one sentence per line, a blank "
                      "line between documents (BERT's format); replaces --input_dir.",
                      flag_values=fv)
    flags.DEFINE_integer("vocab_size", 2048, "--task=text: word pieces in the vocabulary built "
                         "on the training documents.", flag_values=fv)
    flags.DEFINE_string("vocab_file", "", "--task=text: a vocab.txt to use instead of building "
                        "one.", flag_values=fv)
    flags.DEFINE_integer("seq_length", 35, "--task=text: tokens per training window (35: "
                         "Zaremba et al. 2014's PTB set-up).", flag_values=fv)
    flags.DEFINE_float("heldout_fraction", 0.05, "--task=text: share of documents held out for "
                       "perplexity.", flag_values=fv)
    flags.DEFINE_enum("evaluate_on", "test", ("test", "validation"), "--task=text: report "
                      "perplexity on the held-out documents (test), or, for tuning, set them aside "
                      "and hold out as many training documents (validation).", flag_values=fv)
    flags.DEFINE_integer("embedding_dim", language_model.EMBEDDING_DIM, "--task=text: token "
                         "embedding width.", flag_values=fv)
    flags.DEFINE_integer("units", language_model.UNITS, "--task=text: LSTM units.",
                         flag_values=fv)
    for name, value in TASK_DEFAULTS["rows"].items():
        fv.set_default(name, value)


def run():
    """Console-script entry point (``tf-lamb-legw``)."""
    define_flags()
    runtime.list_flags_in_help()
    app.run(main)


if __name__ == "__main__":
    run()
