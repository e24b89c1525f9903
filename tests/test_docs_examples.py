"""The documentation's Python examples run, on every backend.

The quickstart's blocks run in order in one namespace on real data (Debian's Fashion-MNIST,
through ``keras.datasets`` as a user's download would be); the README's example is the
quickstart's first block. The other pages' blocks run in order in one namespace per page that
starts with a small model and data (``model``, ``x``, ``y``); the "before" lines of the
migration examples (tensorflow_addons, Model Garden) are skipped: those packages do not import
with Keras 3, which is the point of the page."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_lamb
from tests.docs_support import ROOT, keras_home_with_fashion_mnist, python_blocks

PAGES = ["docs/index.md", "docs/guide.md", "docs/migration.md", "docs/choosing.md"]


def runnable(block):
    """The block without its ``# before`` statements (up to the next comment line)."""
    kept, skipping = [], False
    for line in block.splitlines():
        if line.startswith("# before"):
            skipping = True
        elif line.startswith("#"):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept).replace("learning_rate=...", "learning_rate=1.0")


def test_the_readme_example_is_the_quickstarts():
    (readme,) = python_blocks("README.md")
    assert readme == python_blocks("docs/quickstart.md")[0]


def check_quickstart_report(report):
    """What the quickstart's output must show (also checked by the wheel test)."""
    # 3 epochs at batch 1,024: 84% measured on TensorFlow; a model that did not train is at 10%.
    assert report["accuracy"] > 0.80 and report["optimizer"] == "LAMB"
    assert report["peak_learning_rate"] == pytest.approx(5e-3 * 2)  # sqrt(4096 / 1024) = 2
    assert report["iterations"] == 3 * 15  # ceil(60,000 / 4,096) steps per epoch
    assert report["adapts"] == [True, False, True, False]  # the biases are excluded
    assert all(r > 0 for r in report["trust_ratios"])


def run_quickstart(python, tmp_path, cwd):
    """Runs the quickstart with ``python`` in a fresh process; returns its report."""
    env = dict(os.environ, KERAS_HOME=keras_home_with_fashion_mnist(tmp_path / "keras"),
               TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [python, os.path.join(ROOT, "tests", "quickstart_driver.py"),
         os.path.join(ROOT, "docs", "quickstart.md")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_quickstart_trains_a_model_on_fashion_mnist(tmp_path):
    report = run_quickstart(sys.executable, tmp_path, cwd=tmp_path)
    check_quickstart_report(report)


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(page)
    assert blocks, f"{page} has no Python example"
    rng = np.random.default_rng(0)
    namespace = {
        "keras": keras,
        "tf_lamb": tf_lamb,
        "model": keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
                                   keras.layers.LayerNormalization(name="LayerNorm"),
                                   keras.layers.Dense(3)]),
        "x": rng.normal(size=(64, 8)).astype("float32"),
        "y": rng.integers(0, 3, size=(64,)),
    }
    for block in blocks:
        exec(compile(runnable(block), page, "exec"), namespace)  # noqa: S102
    if page == "docs/guide.md":
        assert int(namespace["model"].optimizer.iterations) == 2  # fit ran with tf_lamb.LAMB
        assert type(namespace["model"].optimizer).__name__ == "LAMB"
    if page == "docs/migration.md":
        assert type(namespace["optimizer"]).__name__ in ("LAMB", "LARS")
    if page == "docs/choosing.md":
        assert namespace["baseline"].global_clipnorm == 1.0
