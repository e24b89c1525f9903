"""Compares runs of the recipes (BERT's ``pretrain.py``, ResNet's ``train.py``) against a
baseline run, on one held-out metric.

For each run (an ``--output_dir``) it reads ``config.json`` and ``history.jsonl`` and reports
its optimizer, global batch, optimizer steps, final and best value of ``--metric``, training
time (the logged windows' examples / examples-per-second, evaluations excluded) and seconds
per step, and the first evaluated step at which it reached the baseline's final value, as a
share of the baseline's steps. The LAMB paper's BERT claim is that a 16x larger batch needs at
most 1/8 of the steps (You et al. 2020, Sec. 4); ``--step_share=0.125`` marks that share.

Writes ``comparison.csv``, ``comparison.json`` and ``<metric>.png`` (the metric against
optimizer steps and against examples seen) to ``--output_dir``::

    python -m recipes.common.compare --runs=adamw_64=/tmp/runs/adamw64,lamb_1k=/tmp/runs/lamb1k \\
        --metric=eval_mlm_accuracy --step_share=0.125 --output_dir=docs/bert_miniature
"""

import csv
import json
import os

from absl import flags

from . import driver, report

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_list("runs", None, "label=output_dir pairs of recipe runs.", flag_values=fv)
    flags.DEFINE_string("baseline", None, "The label of the baseline run (default: the first).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where to write the table and the plot.",
                        flag_values=fv)
    flags.DEFINE_string("metric", "eval_mlm_accuracy", "The held-out metric compared, as "
                        "history.jsonl names it (eval_mlm_accuracy: BERT; eval_accuracy: "
                        "ResNet's validation top-1).", flag_values=fv)
    flags.DEFINE_float("step_share", 0.0, "Mark this share of the baseline's steps on the plot "
                       "(0.125: the LAMB paper's 1/8; 0: none).", lower_bound=0.0, flag_values=fv)


def load_run(directory, metric="eval_mlm_accuracy"):
    """``(config, train_lines, eval_lines)`` of one run directory.

    Raises:
        FileNotFoundError: ``config.json`` or ``history.jsonl`` missing (names the path).
        ValueError: the run has no held-out evaluation.
    """
    paths = [os.path.join(directory, n) for n in ("config.json", "history.jsonl")]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--runs: {path} does not exist (not a recipe's run?)")
    with open(paths[0]) as f:
        config = json.load(f)
    lines = report.read_json_lines(paths[1])
    # Histories written before a resumed run dropped the steps it trained again repeat them:
    # keep each step's last line.
    train = {r["step"]: r for r in lines if "loss" in r}
    evals = {r["step"]: r for r in lines if metric in r}
    if not evals:
        raise ValueError(f"--runs: {directory} has no held-out {metric} (--eval_files).")
    return config, [train[k] for k in sorted(train)], [evals[k] for k in sorted(evals)]


def train_seconds(config, train):
    """Seconds spent in training steps: each logged window's examples over its throughput."""
    total, previous = 0.0, 0
    for line in train:
        total += (line["step"] - previous) * config["global_batch_size"] / line[
            "examples_per_second"]
        previous = line["step"]
    return total


def planned_steps(config):
    """The run's planned optimizer steps (``train_steps`` of BERT, ``total_steps`` of ResNet)."""
    return config.get("total_steps") or config["train_steps"]


def summarize(runs, baseline, metric):
    """One row per run: ``runs`` maps a label to ``load_run``'s triple."""
    target = runs[baseline][2][-1][metric]
    base_steps = planned_steps(runs[baseline][0])
    rows = []
    for label, (config, train, evals) in runs.items():
        reached = next((e["step"] for e in evals if e[metric] >= target), None)
        seconds = train_seconds(config, train)
        rows.append({
            "run": label,
            "optimizer": config["optimizer"],
            "global_batch_size": config["global_batch_size"],
            "peak_learning_rate": config["peak_learning_rate"],
            "steps": evals[-1]["step"],
            f"final_{metric}": evals[-1][metric],
            f"best_{metric}": max(e[metric] for e in evals),
            "train_seconds": seconds,
            "seconds_per_step": seconds / train[-1]["step"] if train else None,
            "steps_to_baseline": reached,
            "share_of_baseline_steps": None if reached is None else reached / base_steps,
        })
    return target, rows


def plot(runs, baseline, target, metric, path, step_share=0.0):
    """``metric`` against optimizer steps (left) and examples seen (right)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    # Matplotlib's default cycle repeats after 10 colours; tab20 tells up to 20 runs apart.
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors
    for (label, (config, _, evals)), colour in zip(runs.items(), colours * 2):
        steps = [e["step"] for e in evals]
        values = [100 * e[metric] for e in evals]
        name = f"{label} ({config['optimizer']}, batch {config['global_batch_size']})"
        axes[0].plot(steps, values, marker=".", label=name, color=colour)
        axes[1].plot([s * config["global_batch_size"] for s in steps], values, marker=".",
                     color=colour)
    for ax in axes:
        ax.axhline(100 * target, color="grey", ls="--", lw=1)
        ax.grid(alpha=0.3)
    if step_share:
        share = planned_steps(runs[baseline][0]) * step_share
        axes[0].axvline(share, color="grey", ls=":", lw=1)
        axes[0].annotate(f"{step_share:g} of {baseline}'s steps", (share, 100 * target),
                         textcoords="offset points", xytext=(4, -14), fontsize=8, color="grey")
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("examples seen")
    axes[0].set_ylabel(f"{metric} (%)")
    axes[0].set_title(f"dashed: {baseline}'s final value", fontsize=9)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(fv=FLAGS, log=print):
    """Reads the runs named by ``fv.runs``, writes the table and plot; returns the rows."""
    if not fv.runs or not fv.output_dir:
        raise ValueError("--runs and --output_dir are required.")
    pairs = [item.split("=", 1) for item in fv.runs]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--runs takes label=output_dir pairs. Received: {fv.runs}")
    runs = {label: load_run(directory, fv.metric) for label, directory in pairs}
    baseline = fv.baseline or pairs[0][0]
    if baseline not in runs:
        raise ValueError(f"--baseline={baseline!r} is not one of the --runs labels {list(runs)}")
    target, rows = summarize(runs, baseline, fv.metric)
    os.makedirs(fv.output_dir, exist_ok=True)
    with open(os.path.join(fv.output_dir, "comparison.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(fv.output_dir, "comparison.json"), "w") as f:
        json.dump({"baseline": baseline, "metric": fv.metric, "target": target, "rows": rows},
                  f, indent=2)
    plot(runs, baseline, target, fv.metric, os.path.join(fv.output_dir, f"{fv.metric}.png"),
         fv.step_share)
    log(f"target: {baseline}'s final {fv.metric} {100 * target:.2f}%")
    log(f"| run | optimizer | global batch | peak LR | steps | {fv.metric} final (best) | "
        "train time | s/step | steps to target |")
    log("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        reached = ("not reached" if r["steps_to_baseline"] is None else
                   f"{r['steps_to_baseline']} ({r['share_of_baseline_steps']:.3f})")
        log(f"| {r['run']} | {r['optimizer']} | {r['global_batch_size']} | "
            f"{r['peak_learning_rate']:.3g} | {r['steps']} | "
            f"{100 * r[f'final_{fv.metric}']:.2f}% ({100 * r[f'best_{fv.metric}']:.2f}%) | "
            f"{r['train_seconds'] / 60:.1f} min | {r['seconds_per_step']:.2f} | {reached} |")
    return rows


def cli():
    """Console-script entry point."""
    driver.command_line(define_flags, run)


if __name__ == "__main__":
    cli()
