"""Results of the batch-scaling study: the printed table, the CSV, the JSON files and the plot."""

import csv
import json
import math
import os
import platform

#: The CSV columns, in order. ``delta_vs_base_points`` is test accuracy minus the same optimizer's
#: test accuracy at the base batch, in percentage points (empty when the base batch was not run).
COLUMNS = (
    "optimizer",
    "global_batch_size",
    "batch_ratio",
    "steps_per_epoch",
    "total_steps",
    "steps_run",
    "base_learning_rate",
    "peak_learning_rate",
    "warmup_steps",
    "warmup_epochs",
    "test_accuracy",
    "delta_vs_base_points",
    "test_loss",
    "final_train_loss",
    "diverged",
    "wall_time_s",
)

#: Below this test accuracy a 10-class run is flagged "at chance level" in the printed table
#: (chance is 0.10; a run that collapsed, e.g. all ReLUs dead, sits there without a NaN).
CHANCE_LEVEL = 0.15

#: The plot's y axis stops this many points below the lowest base-batch accuracy (see plot()).
PLOT_FLOOR_POINTS = 12.0

CSV_NAME = "results.csv"
PLOT_NAME = "accuracy_vs_batch.png"
CONFIG_NAME = "config.json"
RESULTS_JSON_NAME = "results.json"


def add_deltas(rows, base_batch_size):
    """Sets ``delta_vs_base_points`` on each row (None where the base batch has no row)."""
    base = {
        r["optimizer"]: r["test_accuracy"]
        for r in rows
        if r["global_batch_size"] == base_batch_size
    }
    for r in rows:
        b = base.get(r["optimizer"])
        delta = None if b is None else round(100.0 * (r["test_accuracy"] - b), 4)
        r["delta_vs_base_points"] = delta
    return rows


def format_table(rows):
    """A fixed-width text table of the rows (the columns the study reports)."""
    header = (
        f"{'optimizer':<9} {'batch':>6} {'k':>4} {'steps':>6} {'peak LR':>9} {'warmup':>7} "
        f"{'test acc':>8} {'vs base':>8} {'wall s':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        delta = r.get("delta_vs_base_points")
        delta = "" if delta is None else f"{delta:+.2f}"
        note = "  diverged (loss not finite)" if r["diverged"] else ""
        if not note and r["test_accuracy"] < CHANCE_LEVEL:
            note = "  at chance level"
        lines.append(
            f"{r['optimizer']:<9} {r['global_batch_size']:>6d} {r['batch_ratio']:>4g} "
            f"{r['total_steps']:>6d} {r['peak_learning_rate']:>9.4g} {r['warmup_steps']:>7d} "
            f"{100 * r['test_accuracy']:>7.2f}% {delta:>8} {r['wall_time_s']:>7.1f}{note}"
        )
    return "\n".join(lines)


def write_csv(rows, path, columns=COLUMNS):
    """Writes the rows' ``columns`` (default :data:`COLUMNS`) to ``path``; None as empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(obj, path):
    """Writes ``obj`` as indented JSON (NaN and inf become null, which JSON allows)."""

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return _finite_or_none(x)

    with open(path, "w") as f:
        json.dump(clean(obj), f, indent=2, sort_keys=False)
        f.write("\n")


def read_json_lines(path):
    """The records of a JSON-lines file (``history.jsonl``, a study's run log), in order; a
    line cut short by a kill, or blank, is left out."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def environment():
    """Versions, the Keras backend and its devices, and the machine, recorded next to the
    results. The backend's framework is the one imported (JAX runs need no TensorFlow)."""
    import importlib
    import sys

    import keras

    import tf_lamb

    backend = keras.backend.backend()
    found = {
        "tf_lamb": getattr(tf_lamb, "__version__", "unknown"),
        "keras": keras.__version__,
        "keras_backend": backend,
    }
    for name in ("tensorflow", "jax", "torch"):  # Each backend is named as its package.
        if name == backend or name in sys.modules:
            found[name] = importlib.import_module(name).__version__
    if backend == "jax":
        import jax

        found["devices"] = [str(d) for d in jax.devices()]
    return dict(found, python=platform.python_version(), machine=platform.platform(),
                cpu_count=os.cpu_count())


def batch_axis(ax, batches, base_batch_size, ylabel, title):
    """Global batch sizes on a log2 x axis (each labelled with its ratio to the base), the y
    label, a grid and the title, on the matplotlib axes ``ax``."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([f"{b}\n({b / base_batch_size:g}x)" for b in batches], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(f"global batch size (log2 scale; base batch {base_batch_size})")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)


def mark_off_axis(ax, x, edge, text, colour, slot, last, below):
    """Draws a run whose value lies beyond the y axis as a triangle on the axis' ``edge`` with
    ``text`` beside it; each label takes its own ``slot`` (a row counted from the edge), so that
    labels at neighbouring batches never overlap. Labels point inwards from the last batch."""
    ax.plot([x], [edge], marker="v" if below else "^", ms=9, color=colour, clip_on=False)
    rise = 6 + 11 * slot
    ax.annotate(text, (x, edge), xytext=(-8 if last else 8, rise if below else -rise - 8),
                textcoords="offset points", fontsize=7, color=colour,
                ha="right" if last else "left",
                bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))


def plot(rows, path, base_batch_size, title=""):
    """Test accuracy against global batch size (log2 axis), one line per optimizer.

    Each optimizer's accuracy at the base batch is drawn as a dashed horizontal line in its
    colour, over a band down to 1 point below it: a point inside its band held its base accuracy
    within 1 point (the LAMB paper's criterion). The y axis spans the measured accuracies but
    stops :data:`PLOT_FLOOR_POINTS` below the lowest base accuracy, so that one collapsed run
    does not flatten the rest; a run below that floor is drawn on the floor as a down-pointing
    triangle labelled with its accuracy.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    batches = sorted({r["global_batch_size"] for r in rows})
    accuracies = [100 * r["test_accuracy"] for r in rows]
    bases = [100 * r["test_accuracy"] for r in rows if r["global_batch_size"] == base_batch_size]
    floor = max(min(accuracies), (min(bases) if bases else min(accuracies)) - PLOT_FLOOR_POINTS)
    floor = math.floor(floor) - 0.5
    top = min(100.0, math.ceil(max(accuracies)) + 0.5)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    slot = 0  # one row per below-axis label, so that labels at neighbouring batches never overlap
    for i, name in enumerate(optimizers):
        colour = colours[i % len(colours)]
        points = sorted(
            (r["global_batch_size"], 100 * r["test_accuracy"])
            for r in rows
            if r["optimizer"] == name
        )
        xs = [x for x, _ in points]
        ys = [max(y, floor) for _, y in points]
        ax.plot(
            xs,
            ys,
            color=colour,
            lw=1.8,
            alpha=0.85,
            label=name,
            marker=markers[i % len(markers)],
            markevery=[j for j, (_, y) in enumerate(points) if y >= floor],
        )
        for x, y in points:
            if y < floor:
                mark_off_axis(ax, x, floor, f"{name} {y:.1f}%", colour, slot,
                              last=x == batches[-1], below=True)
                slot += 1
        base = [y for x, y in points if x == base_batch_size]
        if base:
            ax.axhline(base[0], color=colour, ls="--", lw=0.9, alpha=0.8)
            ax.axhspan(base[0] - 1.0, base[0], color=colour, alpha=0.08, lw=0)
    ax.set_ylim(floor, top)
    batch_axis(ax, batches, base_batch_size, "test accuracy (%)", title)
    ax.legend(
        title="dashed: accuracy at the base batch\nband: within 1 point of it\n"
        "\u25bc: below the axis (value shown)",
        fontsize=8, title_fontsize=7, loc="lower left",
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
