#!/usr/bin/env bash
# Sets up a checkout: a virtual environment in .venv with tf_lamb (editable), TensorFlow (CPU),
# the recipes' and tests' dependencies, and Fashion-MNIST from Debian's archive.
# Usage: bash scripts/setup.sh [--backends]   (--backends also installs JAX and PyTorch)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[tf-cpu,recipes,dev]"
if [ "${1:-}" = "--backends" ]; then
    # torch 2.13.0 is pinned so pip takes the CPU wheel rather than the CUDA build.
    .venv/bin/python -m pip install --quiet "jax[cpu]" "torch==2.13.0"
fi

DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "Fashion-MNIST is not in $DATA. Install it with" >&2
        echo "  sudo apt-get install dataset-fashion-mnist      (Debian/Ubuntu)" >&2
        echo "or pass --data_dir=DIR holding the four IDX .gz files, or run online:" >&2
        echo "the study then falls back to keras.datasets.fashion_mnist." >&2
    fi
fi
