"""Tests of the run comparison (recipes/common/compare.py): steps to the baseline's accuracy,
training time from the logged throughput, the files written and the errors."""

import json

import pytest
from absl import flags

from recipes.common import compare


def write_run(directory, optimizer, batch, steps, accuracies, examples_per_second):
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({
        "optimizer": optimizer, "global_batch_size": batch, "train_steps": steps,
        "peak_learning_rate": 1e-3,
    }))
    every = steps // len(accuracies)
    lines = []
    for i, accuracy in enumerate(accuracies, 1):
        lines.append({"step": i * every, "loss": 5.0, "examples_per_second": examples_per_second})
        lines.append({"step": i * every, "eval_mlm_accuracy": accuracy, "eval_nsp_accuracy": 0.7})
    # A resumed run logs the steps after its checkpoint again: the later line wins (were this
    # one kept, every run would reach the target at its first evaluation).
    lines.insert(0, {"step": every, "eval_mlm_accuracy": 0.99, "eval_nsp_accuracy": 0.5})
    (directory / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def run(tmp_path, *args):
    fv = flags.FlagValues()
    compare.define_flags(fv)
    fv(["prog", f"--output_dir={tmp_path / 'out'}", *args])
    return compare.run(fv, log=lambda *_: None)


def test_steps_to_the_baseline_accuracy_and_training_time(tmp_path):
    write_run(tmp_path / "small", "adamw", 64, 4000, [0.10, 0.13, 0.15, 0.16], 320.0)
    write_run(tmp_path / "large", "lamb", 1024, 500, [0.12, 0.155, 0.17, 0.18], 256.0)
    write_run(tmp_path / "never", "lamb", 1024, 500, [0.11, 0.12, 0.13, 0.14], 256.0)
    rows = run(tmp_path, f"--runs=a={tmp_path / 'small'},b={tmp_path / 'large'},"
                         f"c={tmp_path / 'never'}")
    small, large, never = rows
    # The target is the baseline's final 0.16: the baseline reaches it at its last step,
    # the large batch at its 3rd evaluation (step 375 = 0.094 of 4,000 steps).
    assert (small["steps_to_baseline"], small["share_of_baseline_steps"]) == (4000, 1.0)
    assert large["steps_to_baseline"] == 375
    assert large["share_of_baseline_steps"] == pytest.approx(375 / 4000)
    assert never["steps_to_baseline"] is None
    assert large["best_eval_mlm_accuracy"] == 0.18 and large["steps"] == 500
    assert small["train_seconds"] == pytest.approx(4000 * 64 / 320.0)
    out = tmp_path / "out"
    assert json.loads((out / "comparison.json").read_text())["target"] == 0.16
    assert (out / "comparison.csv").read_text().count("\n") == 4
    assert (out / "eval_mlm_accuracy.png").stat().st_size > 10000
    assert small["seconds_per_step"] == pytest.approx(64 / 320.0)


def test_bad_runs_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--runs takes label=output_dir pairs"):
        run(tmp_path, f"--runs={tmp_path}")
    with pytest.raises(FileNotFoundError, match="--runs: .*config.json does not exist"):
        run(tmp_path, f"--runs=a={tmp_path}")
    write_run(tmp_path / "a", "adamw", 64, 100, [0.1], 100.0)
    with pytest.raises(ValueError, match="--baseline='z' is not one of"):
        run(tmp_path, f"--runs=a={tmp_path / 'a'}", "--baseline=z")
