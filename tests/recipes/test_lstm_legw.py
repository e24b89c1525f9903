"""Tests of the LEGW comparison (recipes/lstm/legw.py) on a small real slice of Fashion-MNIST
read row by row by the LSTM."""

import csv
import dataclasses
import io
import json
import math
import os
import sys
import types

import pytest

from recipes.common import study
from recipes.common import runtime
from recipes.lstm import legw
from recipes.lstm import main as legw_main


def test_time_to_base_is_the_first_epoch_reaching_the_rules_base_accuracy():
    def row(rule, batch, accuracies):
        logs = [{"test_accuracy": f"{a:.4f}", "train_s": f"{10.0 * e:.2f}"}
                for e, a in enumerate(accuracies, 1)]
        return {"rule": rule, "optimizer": "lamb", "global_batch_size": batch,
                "test_accuracy": accuracies[-1], "epoch_logs": logs}

    rows = legw.add_time_to_base([
        row("legw", 128, [0.70, 0.80, 0.85]), row("legw", 1024, [0.60, 0.86, 0.84]),
        row("none", 128, [0.50, 0.60, 0.65]), row("none", 1024, [0.40, 0.50, 0.55]),
    ], base_batch_size=128)
    assert [(r["epochs_to_base"], r["seconds_to_base"]) for r in rows] == [
        (3, 30.0), (2, 20.0), (3, 30.0), (None, None)]
    assert rows[1]["target"] == 0.85 and rows[3]["target"] == 0.65


def test_time_to_base_perplexity_counts_lower_as_better():
    def row(batch, losses):
        logs = [{"test_accuracy": "0.2", "test_loss": f"{x:.4f}", "train_s": f"{5.0 * e:.2f}"}
                for e, x in enumerate(losses, 1)]
        return {"rule": "legw", "optimizer": "lamb", "global_batch_size": batch,
                "test_accuracy": 0.2, "test_loss": losses[-1] - 4e-5, "epoch_logs": logs}

    # The final loss (4.19996) is below what the logs show (4.2000): the base run still reaches
    # its own value, at its last epoch.
    rows = legw.add_time_to_base([row(128, [5.0, 4.5, 4.2]), row(512, [4.9, 4.1, 4.0]),
                                  row(2048, [6.0, 5.0, 4.3])], 128, metric="perplexity")
    assert rows[0]["target"] == pytest.approx(math.exp(4.2), rel=1e-9)
    assert [(r["epochs_to_base"], r["seconds_to_base"]) for r in rows] == [
        (3, 15.0), (2, 10.0), (None, None)]
    assert legw.metric_value({"test_loss": "800"}, "perplexity") == math.inf


def test_each_rule_sets_its_warmup_and_peak_at_every_batch_size(monkeypatch):
    # The rules as the module documents them, at k = 1, 4 and 16 times the base batch: legw
    # and none scale the peak by sqrt(k), linear by k; none has no warmup, linear a fixed one
    # in epochs, legw the base batch's warmup steps. Runs stand in for training (no data).
    def run_one(config, dataset, name, batch, progress=True, build_model=None):
        sched = study.build_schedule(config, batch, len(dataset.x_train),
                                     base_learning_rate=config.learning_rate(name))
        return {"optimizer": name, "global_batch_size": batch, "test_accuracy": 0.5,
                "test_loss": 1.0, "epoch_logs": [], "peak_learning_rate": sched.peak_learning_rate,
                "warmup_steps": sched.warmup_steps, "steps_per_epoch": sched.steps_per_epoch}

    monkeypatch.setattr(study, "run_one", run_one)
    config = study.StudyConfig(optimizers=("lamb", "momentum"), batch_sizes=(64, 256, 1024),
                               base_batch_size=64, epochs=4, base_warmup_epochs=0.25,
                               train_examples=8192)
    rows = legw.run_rules(config, types.SimpleNamespace(x_train=range(8192)), progress=False)
    assert len(rows) == 3 * 2 * 3
    for r in rows:
        k = r["global_batch_size"] // 64
        base = config.learning_rate(r["optimizer"])
        peak = {"legw": math.sqrt(k), "none": math.sqrt(k), "linear": k}[r["rule"]] * base
        assert r["peak_learning_rate"] == pytest.approx(peak, rel=1e-6), r
        base_warmup = 0.25 * 8192 // 64  # 32 steps of the base batch
        warmup = {"legw": base_warmup, "none": 0,
                  "linear": math.ceil(0.25 * r["steps_per_epoch"])}[r["rule"]]
        assert r["warmup_steps"] == warmup, r


@pytest.mark.slow
def test_rules_run_the_lstm_study_with_their_warmup_and_scaling(fashion, tmp_path, monkeypatch):
    config = study.StudyConfig(optimizers=("lamb",), batch_sizes=(64, 256), base_batch_size=64,
                               epochs=2, train_examples=1024, model="lstm",
                               base_warmup_epochs=0.25, output_dir=str(tmp_path))
    out = io.StringIO()
    rows = legw_main.execute(config, tuple(legw.RULES), legw_main.rows_task(config, fashion),
                             progress=False, out=out)
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["rule"], r["global_batch_size"]) for r in table] == [
        (rule, b) for rule in ("legw", "linear", "none") for b in ("64", "256")]
    assert (tmp_path / "accuracy_vs_batch.png").stat().st_size > 10000
    assert "legw" in out.getvalue() and (tmp_path / "results.json").exists()
    by = {(r["rule"], r["global_batch_size"]): r for r in rows}
    # LEGW keeps the warmup steps (0.25 x 16 = 4 at 64; 1.0 epoch x 4 at 256) and scales the
    # peak by sqrt(4) = 2; the fixed warmup keeps the epochs (ceil(0.25 x 4) = 1 step) with
    # the peak x 4; no warmup scales by 2.
    base = config.lamb_learning_rate
    assert (by["legw", 256]["warmup_steps"], by["legw", 256]["peak_learning_rate"]) == (
        4, pytest.approx(2 * base))
    assert (by["linear", 256]["warmup_steps"], by["linear", 256]["peak_learning_rate"]) == (
        1, pytest.approx(4 * base))
    assert (by["none", 256]["warmup_steps"], by["none", 64]["warmup_steps"]) == (0, 0)
    for r in rows:
        assert len(r["epoch_logs"]) == 2 and 0.1 < r["test_accuracy"] <= 1
        assert float(r["epoch_logs"][1]["train_s"]) > float(r["epoch_logs"][0]["train_s"]) > 0
    assert by["legw", 64]["epochs_to_base"] == 2 and by["legw", 64]["delta_vs_base_points"] == 0
    table = legw.format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "legw" in table and "none" in table
    # Run again (as after a kill), the study reuses every saved run and trains nothing; a
    # line cut short by the kill is skipped.
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"settings": {"seed": 0}, "row": {"rule"')
    before = (tmp_path / "results.csv").read_text()
    monkeypatch.setattr(study, "run_one", lambda *a, **k: pytest.fail("ran a finished run"))
    again = io.StringIO()
    legw_main.execute(config, tuple(legw.RULES), legw_main.rows_task(config, fashion),
                      progress=False, out=again)
    assert "reusing 6 finished runs" in again.getvalue()
    assert (tmp_path / "results.csv").read_text() == before
    # Results split across runs (one rule each here) merge back into the same table.
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)["rows"]
    parts = []
    for rule in ("none", "legw", "linear"):
        part = tmp_path / f"part_{rule}"
        part.mkdir()
        with open(part / "results.json", "w") as f:
            json.dump({"rows": [r for r in saved if r["rule"] == rule]}, f)
        parts.append(str(part))
    merged_config = dataclasses.replace(config, output_dir=str(tmp_path / "merged"))
    legw_main.merge(merged_config, "rows", parts, out=io.StringIO())
    assert (tmp_path / "merged" / "results.csv").read_text() == (
        tmp_path / "results.csv").read_text()
    with pytest.raises(ValueError, match="--merge_from: a rule, optimizer and batch appear twice"):
        legw_main.merge(merged_config, "rows", parts + parts[:1], out=io.StringIO())
    with pytest.raises(FileNotFoundError, match="--merge_from: no results.json in"):
        legw_main.merge(merged_config, "rows", [str(tmp_path / "missing")], out=io.StringIO())
    with pytest.raises(ValueError, match="--rules must be among legw, linear, none"):
        legw.run_rules(config, study.select(fashion, 1024), rules=("cosine",))


def test_without_matplotlib_the_comparison_stops_before_its_first_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(study, "run_one", lambda *a, **k: pytest.fail("trained"))
    output_dir = tmp_path / "legw"
    config = study.StudyConfig(optimizers=("lamb",), batch_sizes=(64, 256), base_batch_size=64,
                               epochs=1, model="lstm", output_dir=str(output_dir))
    with pytest.raises(runtime.WriterNotInstalledError, match="pip install tf-lamb\\[recipes\\]"):
        legw_main.execute(config, tuple(legw.RULES), task=None, progress=False,
                          out=io.StringIO())
    assert not output_dir.exists()


def test_perplexity_plot_and_table_keep_diverged_runs_readable(tmp_path):
    rows = [{"rule": "legw", "optimizer": "momentum", "global_batch_size": b,
             "test_perplexity": p, "test_accuracy": 0.2, "delta_vs_base_points": None,
             "peak_learning_rate": 3.0, "warmup_steps": 13, "epochs_to_base": None,
             "seconds_to_base": None} for b, p in ((128, 70.65), (1024, 2546.0),
                                                   (8192, math.inf))]
    path = legw.plot(rows, str(tmp_path), 128, "perplexity", title="diverged")
    assert path.endswith("perplexity_vs_batch.png") and os.path.getsize(path) > 10000
    table = legw.format_table(rows, "perplexity")
    assert "70.65" in table and "2546" in table and " inf " in table
    assert table.splitlines()[-1].endswith("-")  # no base run: nothing to reach


@pytest.mark.parametrize("task, heading, value", [
    ("rows", "## The classifier", lambda r: f"{100 * float(r['test_accuracy']):.2f}"),
    ("text", "## The language model", lambda r: f"{float(r['test_perplexity']):.1f}"),
])
def test_the_study_pages_tables_are_the_committed_results(task, heading, value):
    # Every cell of the study page's tables is the committed run's number (docs/legw/<task>/).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "legw", task, "results.csv")) as f:
        results = list(csv.DictReader(f))
    with open(os.path.join(root, "docs", "studies", "legw.md")) as f:
        section = f.read().split(heading, 1)[1].split("\n#", 1)[0]
    table = {}
    for line in section.splitlines():
        if line.startswith("| LAMB") or line.startswith("| momentum"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            optimizer, rule = cells[0].split(", ")
            table[("lamb" if optimizer == "LAMB" else "momentum", rule)] = cells[1:]
    assert len(table) == 6
    batches = sorted({int(r["global_batch_size"]) for r in results})
    for r in results:
        cell = table[(r["optimizer"], r["rule"])][batches.index(int(r["global_batch_size"]))]
        if cell.startswith("diverged"):
            assert float(r["test_perplexity"]) > 1000, r
        else:
            assert cell.strip("*").replace(",", "").startswith(value(r)), (cell, r)
