#!/usr/bin/env bash
# Builds the documentation site into docs/_build/html (or the folder given) with Sphinx in
# strict mode: any warning (a broken reference, a docstring that does not parse, a page in
# no table of contents) fails the build. Needs the `docs` extra (scripts/setup.sh installs it).
# Usage: bash scripts/docs.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/_build/html}
# -E: read every page again (no stale state); -n: warn on every unresolved reference.
exec .venv/bin/python -m sphinx -E -n -W --keep-going -q -b html docs "$out"
