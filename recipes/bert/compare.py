"""Compares pre-training runs of :mod:`recipes.bert.pretrain` against a baseline run.

For each run (an ``--output_dir`` of ``pretrain.py``) it reads ``config.json`` and
``history.jsonl`` and reports its global batch, optimizer steps, final and best held-out MLM
accuracy, training time (the logged windows' examples / examples-per-second, evaluations
excluded) and the first evaluated step at which it reached the baseline's final held-out MLM
accuracy, as a share of the baseline's steps: the LAMB paper's claim is that a 16x larger
batch needs at most 1/8 of the steps (You et al. 2020, Sec. 4, BERT at 16K/32K/64K).

Writes ``comparison.csv``, ``comparison.json`` and ``heldout_mlm_accuracy.png`` (held-out MLM
accuracy against optimizer steps and against examples seen) to ``--output_dir``::

    python -m recipes.bert.compare --runs=adamw_64=/tmp/runs/adamw64,lamb_1k=/tmp/runs/lamb1k \\
        --baseline=adamw_64 --output_dir=docs/bert_miniature
"""

import csv
import json
import os

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_list("runs", None, "label=output_dir pairs of pretrain.py runs.", flag_values=fv)
    flags.DEFINE_string("baseline", None, "The label of the baseline run (default: the first).",
                        flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where to write the table and the plot.",
                        flag_values=fv)


def load_run(directory):
    """``(config, train_lines, eval_lines)`` of one run directory.

    Raises:
        FileNotFoundError: ``config.json`` or ``history.jsonl`` missing (names the path).
        ValueError: the run has no held-out evaluation.
    """
    paths = [os.path.join(directory, n) for n in ("config.json", "history.jsonl")]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--runs: {path} does not exist (not a pretrain.py run?)")
    with open(paths[0]) as f:
        config = json.load(f)
    with open(paths[1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    # A resumed run repeats the steps after its checkpoint: keep each step's last line.
    train = {r["step"]: r for r in lines if "loss" in r}
    evals = {r["step"]: r for r in lines if "eval_mlm_accuracy" in r}
    if not evals:
        raise ValueError(f"--runs: {directory} has no held-out evaluation (--eval_files).")
    return config, [train[k] for k in sorted(train)], [evals[k] for k in sorted(evals)]


def train_seconds(config, train):
    """Seconds spent in training steps: each logged window's examples over its throughput."""
    total, previous = 0.0, 0
    for line in train:
        total += (line["step"] - previous) * config["global_batch_size"] / line[
            "examples_per_second"]
        previous = line["step"]
    return total


def summarize(runs, baseline):
    """One row per run: ``runs`` maps a label to ``load_run``'s triple."""
    target = runs[baseline][2][-1]["eval_mlm_accuracy"]
    base_steps = runs[baseline][0]["train_steps"]
    rows = []
    for label, (config, train, evals) in runs.items():
        reached = next((e["step"] for e in evals if e["eval_mlm_accuracy"] >= target), None)
        rows.append({
            "run": label,
            "optimizer": config["optimizer"],
            "global_batch_size": config["global_batch_size"],
            "peak_learning_rate": config["peak_learning_rate"],
            "steps": evals[-1]["step"],
            "final_heldout_mlm_accuracy": evals[-1]["eval_mlm_accuracy"],
            "best_heldout_mlm_accuracy": max(e["eval_mlm_accuracy"] for e in evals),
            "final_heldout_nsp_accuracy": evals[-1]["eval_nsp_accuracy"],
            "train_seconds": train_seconds(config, train),
            "steps_to_baseline_accuracy": reached,
            "share_of_baseline_steps": None if reached is None else reached / base_steps,
        })
    return target, rows


def plot(runs, baseline, target, path):
    """Held-out MLM accuracy against optimizer steps (left) and examples seen (right)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    for label, (config, _, evals) in runs.items():
        steps = [e["step"] for e in evals]
        accuracy = [100 * e["eval_mlm_accuracy"] for e in evals]
        name = f"{label} ({config['optimizer']}, batch {config['global_batch_size']})"
        axes[0].plot(steps, accuracy, marker=".", label=name)
        axes[1].plot([s * config["global_batch_size"] for s in steps], accuracy, marker=".")
    base_steps = runs[baseline][0]["train_steps"]
    for ax in axes:
        ax.axhline(100 * target, color="grey", ls="--", lw=1)
        ax.grid(alpha=0.3)
    axes[0].axvline(base_steps / 8, color="grey", ls=":", lw=1)
    axes[0].annotate(f"1/8 of {baseline}'s steps", (base_steps / 8, 100 * target),
                     textcoords="offset points", xytext=(4, -14), fontsize=8, color="grey")
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("examples seen")
    axes[0].set_ylabel("held-out masked-LM accuracy (%)")
    axes[0].set_title(f"dashed: {baseline}'s final accuracy", fontsize=9)
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
    runs = {label: load_run(directory) for label, directory in pairs}
    baseline = fv.baseline or pairs[0][0]
    if baseline not in runs:
        raise ValueError(f"--baseline={baseline!r} is not one of the --runs labels {list(runs)}")
    target, rows = summarize(runs, baseline)
    os.makedirs(fv.output_dir, exist_ok=True)
    with open(os.path.join(fv.output_dir, "comparison.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(fv.output_dir, "comparison.json"), "w") as f:
        json.dump({"baseline": baseline, "target_heldout_mlm_accuracy": target, "rows": rows},
                  f, indent=2)
    plot(runs, baseline, target, os.path.join(fv.output_dir, "heldout_mlm_accuracy.png"))
    log(f"target: {baseline}'s final held-out MLM accuracy {100 * target:.2f}%")
    log("| run | optimizer | global batch | steps | held-out MLM final (best) | train time | "
        "steps to target |")
    log("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        reached = ("not reached" if r["steps_to_baseline_accuracy"] is None else
                   f"{r['steps_to_baseline_accuracy']} ({r['share_of_baseline_steps']:.3f})")
        log(f"| {r['run']} | {r['optimizer']} | {r['global_batch_size']} | {r['steps']} | "
            f"{100 * r['final_heldout_mlm_accuracy']:.2f}% "
            f"({100 * r['best_heldout_mlm_accuracy']:.2f}%) | {r['train_seconds'] / 60:.1f} min | "
            f"{reached} |")
    return rows


def main(argv):
    del argv
    run()


def cli():
    """Console-script entry point."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    cli()
