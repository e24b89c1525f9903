#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the LEGW study with its default settings (recipes/lstm):
# the LSTM classifier over Fashion-MNIST rows, then the LSTM language model over the Python
# documentation, each at batches 128 to 8,192 under the legw, linear and none rules with LAMB
# and momentum SGD (recipes/lstm/RESULTS.md has the measured times). Results go to runs/legw/.
# Extra arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tf-lamb-legw --task=rows --output_dir=runs/legw/rows "$@"
exec .venv/bin/tf-lamb-legw --task=text --output_dir=runs/legw/text "$@"
