#!/usr/bin/env bash
# Set up ./.venv (see setup.sh) and run the offline demo: `amber-align demo` (extra args are passed on).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" "dev,demo,align"
exec "$here/.venv/bin/amber-align" demo "$@"
