#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the batch-scaling study with its default settings.
# Extra arguments go to the study, e.g. --optimizers=lamb,adamw --epochs=5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tf-lamb-batch-scaling --output_dir=runs/batch_scaling "$@"
