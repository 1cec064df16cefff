#!/usr/bin/env bash
# The GPU tables of benchmarks/RESULTS.md in one go (issue 25); see benchmarks/gpu_suite.py for what is measured.
#
#   bash benchmarks/gpu_suite.sh --prepare       # here: writes benchmarks/gpu_inputs/ (needs datasets, ../shared/data)
#   bash benchmarks/gpu_suite.sh                 # GPU machine: every table, under 8 minutes, rows written as measured
#   bash benchmarks/gpu_suite.sh --smoke --inputs DIR [--results FILE]   # CPU, tiny shapes (CI)
#   bash benchmarks/gpu_suite.sh --merge FILE    # here: append a device run's $OUT/gpu_suite.md to RESULTS.md
#
# Device tool: run(command="bash benchmarks/gpu_suite.sh", carry=["benchmarks/gpu_inputs"], timeout_s=540)
# Needs only torch and transformers (+ accelerate) on the GPU machine: no datasets, no seqeval, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
export GPU_SUITE_T0="${GPU_SUITE_T0:-$(date +%s)}"  # the time budget counts from here, imports included
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -n "${PYTHON:-}" ]; then py="$PYTHON"
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
elif command -v python >/dev/null 2>&1; then py=python
else py=python3; fi
if [ "${1:-}" = "--prepare" ]; then
  shift
  exec "$py" benchmarks/gpu_inputs.py "$@"
fi
exec "$py" benchmarks/gpu_suite.py "$@"
