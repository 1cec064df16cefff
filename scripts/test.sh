#!/usr/bin/env bash
# Set up ./.venv (see setup.sh) and run the test suite. Default: the tests not marked slow; pass pytest args to
# change that, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" "dev,demo,align,evaluate,peft"
cd "$here"
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
