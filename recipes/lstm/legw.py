"""The LEGW comparison: the batch-size study (``recipes.common.study``) run once per
scaling rule, merged into one table with the time each run took to reach its base batch's
accuracy.

Rules (You et al. 2019, "Large-Batch Training for LSTM and Beyond", arXiv 1901.08256):

- ``legw``: linear-epoch gradual warmup (warmup epochs x k, so the warmup steps stay those of
  the base batch) with the peak rate x sqrt(k): the paper's rule.
- ``linear``: Goyal et al.'s rule, the peak rate x k with a fixed warmup in epochs.
- ``none``: no warmup, the peak rate x sqrt(k).

Each optimizer's base rate is tuned once at the base batch and shared by every rule and batch
size; nothing is re-tuned. "Time to the base accuracy" is the training time (evaluations
excluded) until the first epoch whose test accuracy (or, for a language model, perplexity)
reaches the same rule's and optimizer's final value at the base batch; it needs
``eval_every_epoch``.
"""

import dataclasses
import math
import os

from ..common import report as study_report
from ..common import study

#: rule -> (the study's warmup policy, its scaling rule).
RULES = {"legw": ("legw", "sqrt"), "linear": ("fixed", "linear"), "none": ("none", "sqrt")}

#: What a run is judged by: ``accuracy`` (higher is better) for a classifier, ``perplexity``
#: (``exp`` of the mean cross-entropy per token, lower is better) for a language model.
METRICS = ("accuracy", "perplexity")


def metric_value(logs, metric):
    """``metric`` of a results row or of one epoch's logs (which hold ``test_accuracy`` and
    ``test_loss``), as a float; perplexity is inf when the loss overflows ``exp``."""
    if metric == "accuracy":
        return float(logs["test_accuracy"])
    loss = float(logs["test_loss"])
    return math.exp(loss) if loss < 700 else math.inf


def reaches(value, target, metric):
    """Whether ``value`` is at least as good as ``target`` under ``metric``."""
    return value >= target if metric == "accuracy" else value <= target


def epochs_to_target(row, target, metric="accuracy"):
    """``(epoch, training seconds)`` of the first epoch of ``row`` (a study result with
    per-epoch ``epoch_logs``) whose ``metric`` reaches ``target``; ``(None, None)`` if none.
    """
    for epoch, logs in enumerate(row["epoch_logs"], 1):
        if reaches(metric_value(logs, metric), target, metric):
            return epoch, float(logs["train_s"])
    return None, None


def add_time_to_base(rows, base_batch_size, metric="accuracy"):
    """Sets ``target``, ``epochs_to_base`` and ``seconds_to_base`` on each row: the base
    batch's final ``metric`` for the same rule and optimizer, and when the run reached it."""
    # The base run's last per-epoch value (the logs round to 4 decimals; comparing with them
    # alone, the base run reaches its own result at its last epoch at the latest).
    bases = {(r["rule"], r["optimizer"]): metric_value((r.get("epoch_logs") or [r])[-1], metric)
             for r in rows if r["global_batch_size"] == base_batch_size}
    for r in rows:
        target = bases.get((r["rule"], r["optimizer"]))
        r["target"] = target
        r["epochs_to_base"], r["seconds_to_base"] = (
            epochs_to_target(r, target, metric) if target is not None else (None, None))
    return rows


def run_rules(config, dataset, rules=tuple(RULES), progress=True, metric="accuracy",
              build_model=None, known_models=None, finished=(), on_result=None):
    """Runs the study of ``config`` under each of ``rules``; returns the merged rows.

    Args:
        config: a :class:`recipes.common.study.StudyConfig` (its ``warmup`` and
            ``scaling`` are replaced per rule; ``eval_every_epoch`` is turned on).
        dataset: Fashion-MNIST already passed through ``study.select``, or a
            :class:`recipes.lstm.text.TextData`.
        rules: names from :data:`RULES`.
        metric: one of :data:`METRICS`, what "the base batch's result" means.
        build_model: optional ``f(seed) -> keras.Model`` (the language model); default the
            study's ``config.model``.
        known_models: model names ``study.validate`` accepts (default the study's).
        finished: rows (with ``rule``) an interrupted run of the same study already made;
            their rule, optimizer and batch are not run again.
        on_result: optional ``f(row)`` called after each new run, e.g. to save it.

    Returns:
        The study's rows with ``rule``, ``test_perplexity``, ``delta_vs_base_points`` (accuracy,
        within the rule) and the :func:`add_time_to_base` fields.

    Raises:
        ValueError: an unknown rule (the message names ``--rules``) or metric.
    """
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(f"--rules must be among {', '.join(RULES)}. Received: {unknown}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}. Received: {metric!r}")
    rows = []
    for rule in rules:
        warmup, scaling = RULES[rule]
        rule_config = dataclasses.replace(config, warmup=warmup, scaling=scaling,
                                          eval_every_epoch=True)
        study.validate(rule_config, num_train_examples=len(dataset.x_train),
                       known_models=known_models or study.models.MODELS)
        done = {(r["optimizer"], r["global_batch_size"]): r for r in finished
                if r["rule"] == rule}

        def labelled(row, rule=rule):
            return dict(row, rule=rule, test_perplexity=metric_value(row, "perplexity"))

        found = study.run_study(
            rule_config, dataset, progress=progress, build_model=build_model, finished=done,
            on_result=on_result and (lambda so_far, label=labelled: on_result(label(so_far[-1]))))
        found = [labelled(r) for r in found]
        study_report.add_deltas(found, config.base_batch_size)
        rows += found
    return add_time_to_base(rows, config.base_batch_size, metric)


def format_table(rows, metric="accuracy"):
    """A text table: rule, optimizer, batch, peak LR, warmup steps, accuracy, its change from
    the base batch (points), perplexity when ``metric`` is ``perplexity``, and the training
    time to the base batch's value of ``metric``."""
    ppl = metric == "perplexity"
    header = (f"{'rule':<7} {'optimizer':<9} {'batch':>6} {'peak LR':>9} {'warmup':>7} "
              f"{'test acc':>8} {'vs base':>8} " + (f"{'perplexity':>10} " if ppl else "")
              + f"{'to base':>14}")
    lines = [header, "-" * len(header)]
    for r in rows:
        delta = r["delta_vs_base_points"]
        reached = ("-" if r.get("target") is None  # the base batch was not run
                   else "not reached" if r["epochs_to_base"] is None
                   else f"{r['seconds_to_base']:.0f} s (ep {r['epochs_to_base']})")
        lines.append(
            f"{r['rule']:<7} {r['optimizer']:<9} {r['global_batch_size']:>6d} "
            f"{r['peak_learning_rate']:>9.4g} {r['warmup_steps']:>7d} "
            f"{100 * r['test_accuracy']:>7.2f}% {'' if delta is None else f'{delta:+.2f}':>8} "
            + (f"{r['test_perplexity']:>10.4g} " if ppl else "") + f"{reached:>14}")
    return "\n".join(lines)


def plot(rows, output_dir, base_batch_size, metric="accuracy", title=""):
    """Writes the plot of ``metric`` against the global batch, one line per optimizer and rule;
    returns its path (``accuracy_vs_batch.png``, the study's plot, or
    ``perplexity_vs_batch.png``: log-scaled perplexity, the base batch's values dashed)."""
    lines = [dict(r, optimizer=f"{r['optimizer']} ({r['rule']})") for r in rows]
    if metric == "accuracy":
        path = os.path.join(output_dir, study_report.PLOT_NAME)
        study_report.plot(lines, path, base_batch_size, title=title)
        return path
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = os.path.join(output_dir, "perplexity_vs_batch.png")
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    names = list(dict.fromkeys(r["optimizer"] for r in lines))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    batches = sorted({r["global_batch_size"] for r in lines})
    # A diverged run's perplexity (up to inf) would flatten the rest: the axis stops at 10x
    # the worst base-batch value and such a run is drawn there as a triangle with its value.
    bases = [r["test_perplexity"] for r in lines if r["global_batch_size"] == base_batch_size]
    finite = [p for p in (bases or [r["test_perplexity"] for r in lines]) if math.isfinite(p)]
    ceiling = 10 * max(finite) if finite else 1e4
    slot = 0
    for i, name in enumerate(names):
        points = sorted((r["global_batch_size"], r["test_perplexity"]) for r in lines
                        if r["optimizer"] == name)
        colour = colours[i % len(colours)]
        ax.plot([b for b, _ in points], [min(p, ceiling) for _, p in points],
                marker="osD^vP*X"[i % 8], color=colour, label=name)
        for b, p in points:
            if not p <= ceiling:
                study_report.mark_off_axis(ax, b, ceiling, f"{name} {p:.3g}", colour, slot,
                                           last=b == batches[-1], below=False)
                slot += 1
        base = [p for b, p in points if b == base_batch_size]
        if base:
            ax.axhline(base[0], color=colour, ls="--", lw=0.8, alpha=0.7)
    ax.set_yscale("log")
    study_report.batch_axis(ax, batches, base_batch_size,
                            "held-out perplexity (log scale; lower is better)", title)
    ax.set_ylim(top=ceiling * 1.5)
    ax.legend(title="dashed: perplexity at the base batch\n\u25b2: above the axis (value shown)",
              fontsize=8, title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
