"""The README's Python examples run: each ```python block, in order, in one namespace that
starts with a small compiled-ready model and data (``model``, ``x``, ``y``). The "before" lines
of the migration examples (tensorflow_addons, Model Garden) are skipped: those packages do not
import with Keras 3, which is the point of the notes."""

import os
import re

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


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


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4
    rng = np.random.default_rng(0)
    namespace = {
        "model": keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
                                   keras.layers.LayerNormalization(name="LayerNorm"),
                                   keras.layers.Dense(3)]),
        "x": rng.normal(size=(64, 8)).astype("float32"),
        "y": rng.integers(0, 3, size=(64,)),
    }
    for block in blocks:
        exec(compile(runnable(block), "README.md", "exec"), namespace)  # noqa: S102
    assert isinstance(namespace["optimizer"], keras.optimizers.Optimizer)
    assert int(namespace["model"].optimizer.iterations) == 2  # fit ran with tf_lamb.LAMB
    assert type(namespace["model"].optimizer).__name__ == "LAMB"
