"""The LEGW comparison: the batch-scaling study (``recipes.batch_scaling``) run once per
scaling rule, merged into one table with the time each run took to reach its base batch's
accuracy.

Rules (You et al. 2019, "Large-Batch Training for LSTM and Beyond", arXiv 1901.08256):

- ``legw``: linear-epoch gradual warmup (warmup epochs x k, so the warmup steps stay those of
  the base batch) with the peak rate x sqrt(k): the paper's rule.
- ``linear``: Goyal et al.'s rule, the peak rate x k with a fixed warmup in epochs.
- ``none``: no warmup, the peak rate x sqrt(k).

Each optimizer's base rate is tuned once at the base batch and shared by every rule and batch
size; nothing is re-tuned. "Time to the base accuracy" is the training time (evaluations
excluded) until the first epoch whose test accuracy reaches the same rule's and optimizer's
final accuracy at the base batch; it needs ``eval_every_epoch``.
"""

import dataclasses

from ..batch_scaling import report as study_report
from ..batch_scaling import study

#: rule -> (the study's warmup policy, its scaling rule).
RULES = {"legw": ("legw", "sqrt"), "linear": ("fixed", "linear"), "none": ("none", "sqrt")}


def epochs_to_target(row, target):
    """``(epoch, training seconds)`` of the first epoch of ``row`` (a study result with
    per-epoch ``epoch_logs``) whose test accuracy reaches ``target``; ``(None, None)`` if none.
    """
    for epoch, logs in enumerate(row["epoch_logs"], 1):
        if float(logs["test_accuracy"]) >= target:
            return epoch, float(logs["train_s"])
    return None, None


def add_time_to_base(rows, base_batch_size):
    """Sets ``target_accuracy``, ``epochs_to_base`` and ``seconds_to_base`` on each row: the
    base batch's final accuracy for the same rule and optimizer, and when the run reached it."""
    bases = {(r["rule"], r["optimizer"]): r["test_accuracy"] for r in rows
             if r["global_batch_size"] == base_batch_size}
    for r in rows:
        target = bases.get((r["rule"], r["optimizer"]))
        r["target_accuracy"] = target
        r["epochs_to_base"], r["seconds_to_base"] = (
            epochs_to_target(r, target) if target is not None else (None, None))
    return rows


def run_rules(config, dataset, rules=tuple(RULES), progress=True):
    """Runs the study of ``config`` under each of ``rules``; returns the merged rows.

    Args:
        config: a :class:`recipes.batch_scaling.study.StudyConfig` (its ``warmup`` and
            ``scaling`` are replaced per rule; ``eval_every_epoch`` is turned on).
        dataset: a Fashion-MNIST already passed through ``study.select``.
        rules: names from :data:`RULES`.

    Returns:
        The study's rows with ``rule``, ``delta_vs_base_points`` (within the rule) and the
        :func:`add_time_to_base` fields.

    Raises:
        ValueError: an unknown rule (the message names ``--rules``).
    """
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(f"--rules must be among {', '.join(RULES)}. Received: {unknown}")
    rows = []
    for rule in rules:
        warmup, scaling = RULES[rule]
        rule_config = dataclasses.replace(config, warmup=warmup, scaling=scaling,
                                          eval_every_epoch=True)
        study.validate(rule_config, num_train_examples=len(dataset.x_train))
        found = study.run_study(rule_config, dataset, progress=progress)
        study_report.add_deltas(found, config.base_batch_size)
        rows += [dict(r, rule=rule) for r in found]
    return add_time_to_base(rows, config.base_batch_size)


def format_table(rows):
    """A text table: rule, optimizer, batch, peak LR, warmup steps, accuracy, its change from
    the base batch, and the training time to the base accuracy."""
    header = (f"{'rule':<7} {'optimizer':<9} {'batch':>6} {'peak LR':>9} {'warmup':>7} "
              f"{'test acc':>8} {'vs base':>8} {'to base':>14}")
    lines = [header, "-" * len(header)]
    for r in rows:
        delta = r["delta_vs_base_points"]
        reached = ("not reached" if r["epochs_to_base"] is None else
                   f"{r['seconds_to_base']:.0f} s (ep {r['epochs_to_base']})")
        lines.append(
            f"{r['rule']:<7} {r['optimizer']:<9} {r['global_batch_size']:>6d} "
            f"{r['peak_learning_rate']:>9.4g} {r['warmup_steps']:>7d} "
            f"{100 * r['test_accuracy']:>7.2f}% {'' if delta is None else f'{delta:+.2f}':>8} "
            f"{reached:>14}")
    return "\n".join(lines)
