"""What the documentation tests share: the pages' Python examples, and the real data and
programs (Debian's Fashion-MNIST, Chromium) they need, skipped when missing and failed when
``TF_LAMB_REQUIRE_DATA`` is set (CI)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def python_blocks(relative_path):
    """The ```python blocks of a Markdown file of the repository, in order."""
    with open(os.path.join(ROOT, relative_path), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def require(present, what):
    """Skips the test when ``present`` is false; fails it instead under CI."""
    if present:
        return
    if os.environ.get("TF_LAMB_REQUIRE_DATA"):
        pytest.fail(f"{what} is missing; scripts/setup.sh --test installs it as root")
    pytest.skip(f"{what} is missing")


def keras_home_with_fashion_mnist(directory):
    """A ``KERAS_HOME`` whose dataset cache holds Debian's Fashion-MNIST, so
    ``keras.datasets.fashion_mnist.load_data()`` reads it instead of downloading, as the
    quickstart tells offline users to arrange. Returns the folder."""
    require(os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")),
            "Debian's dataset-fashion-mnist")
    datasets = os.path.join(directory, "datasets")
    os.makedirs(datasets, exist_ok=True)
    os.symlink(FASHION_MNIST, os.path.join(datasets, "fashion-mnist"))
    return str(directory)
