#!/usr/bin/env bash
# Sets up (scripts/setup.sh --test), then runs the test suite: everything on the
# TensorFlow backend, the Colab notebooks executed in smoke mode (TF_LAMB_SMOKE=1), the site
# built in strict mode and opened in Chromium, and the wheel built, checked and installed in a
# fresh environment among them, then the optimizer, conformance, schedule, callback and
# documentation-example tests again on JAX and on PyTorch, the BERT and ResNet notebooks again
# on JAX,
# all on the pinned Keras (scripts/constraints.txt), then the
# optimizer and conformance tests on TensorFlow with two more Keras versions: the lowest
# supported (3.10.0) and keras-nightly, each installed on its own (.venv/keras-overlays/,
# ahead of the pinned Keras on the path; they need the same packages as keras). Test files run
# on TF_LAMB_TEST_WORKERS processes (pytest-xdist; default 2), each file's tests in one of them
# (--dist loadfile: a module's fixtures are built once).
# Fails on a failing test and on "no tests collected" (pytest exit code 5).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1

status=0
run() {
    local backend=$1; shift
    echo "== KERAS_BACKEND=$backend pytest $*"
    KERAS_BACKEND=$backend .venv/bin/python -m pytest -q -p no:cacheprovider \
        -n "${TF_LAMB_TEST_WORKERS:-2}" --dist loadfile "$@"
    local rc=$?
    if [ $rc = 5 ]; then echo "pytest collected no tests ($backend)" >&2; fi
    if [ $rc != 0 ]; then status=1; fi
}
notebook_work=$(mktemp -d)
TF_LAMB_SMOKE=1 TF_LAMB_WORK=$notebook_work run tensorflow tests colab --nbmake --nbmake-timeout=600
rm -rf "$notebook_work"
for backend in jax torch; do
    run $backend tests/optimizers tests/conformance tests/schedules tests/test_callbacks.py \
        tests/test_docs_examples.py
done
# The BERT and ResNet notebooks on JAX, as on a TPU VM without tensorflow-tpu.
notebook_work=$(mktemp -d)
TF_LAMB_SMOKE=1 TF_LAMB_WORK=$notebook_work run jax colab/bert_pretraining_tpu.ipynb \
    colab/resnet50_tpu.ipynb --nbmake --nbmake-timeout=600
rm -rf "$notebook_work"
for keras_version in 3.10.0 nightly; do
    overlay=.venv/keras-overlays/$keras_version
    spec=keras==$keras_version
    [ "$keras_version" = nightly ] && spec=keras-nightly
    .venv/bin/python -m pip install --quiet --no-deps --upgrade --pre --target "$overlay" "$spec" \
        || { echo "could not install $spec" >&2; status=1; continue; }
    echo "== Keras $keras_version"
    PYTHONPATH=$overlay run tensorflow tests/optimizers tests/conformance
done
exit $status
