#!/usr/bin/env bash
# Create ./.venv once and install amber-align (editable) with the extras given as $1 (e.g. "dev,demo,align").
# A torch that is already importable (yours, e.g. a CUDA build) is kept; otherwise the CPU wheel torch==2.13.0 is
# installed first, so pip never pulls the multi-gigabyte CUDA packages. Re-runs skip pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
stamp=".venv/.amber-align-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ -f "$stamp" ]; then exit 0; fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
rm -f .venv/.amber-align-* && touch "$stamp"
