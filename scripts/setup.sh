#!/usr/bin/env bash
# Sets up a checkout: a virtual environment in .venv with tf_lamb (editable), TensorFlow (CPU),
# the recipes', tests' and documentation's dependencies, and the data from Debian's archive.
# Usage: bash scripts/setup.sh [--test]   (--test, what the test command needs besides: JAX
# with orbax-checkpoint, grain and tensorboardX, PyTorch, and Debian's Chromium for the site's
# browser test;
# --backends is its old name)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[tf-cpu,recipes,dev,docs]" -c scripts/constraints.txt
testing=false
case "${1:-}" in --test|--backends) testing=true ;; esac
if $testing; then
    # The jax extra: JAX, orbax-checkpoint, grain and tensorboardX (the recipes on JAX, BERT
    # without TensorFlow). torch 2.13.0 is pinned so
    # pip takes the CPU wheel rather than the CUDA build.
    .venv/bin/python -m pip install --quiet -e ".[jax]" -c scripts/constraints.txt "torch==2.13.0"
fi

# Real data from Debian's archive (recipes/README.md, "Data"): Fashion-MNIST for the study, the Python 3.11
# documentation sources as the BERT recipe's English corpus; for the tests, Chromium.
DATA=/usr/share/datasets/fashion-mnist
CORPUS=/usr/share/doc/python3.11/html/_sources
missing=()
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || missing+=(dataset-fashion-mnist)
[ -d "$CORPUS" ] || missing+=(python3.11-doc)
if $testing && ! command -v chromium >/dev/null; then missing+=(chromium); fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Missing Debian packages: ${missing[*]}. Install with" >&2
        echo "  sudo apt-get install ${missing[*]}      (Debian/Ubuntu)" >&2
        echo "Without them: the study takes --data_dir=DIR (the four Fashion-MNIST IDX .gz" >&2
        echo "files) or falls back to keras.datasets.fashion_mnist online; the BERT recipe" >&2
        echo "takes --input_files or --input_dir with your own text." >&2
    fi
fi
