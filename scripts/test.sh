#!/usr/bin/env bash
# The tests: adds what only the tests need (pytest, ruff, JAX as the second Keras backend)
# to the .venv that ./bootstrap.sh made, then runs pytest with any arguments given.
#
#   ./scripts/test.sh                  the whole suite (what CI runs)
#   ./scripts/test.sh -m "not slow"    the fast subset
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  echo "error: .venv is missing; run ./bootstrap.sh --no-run first" >&2
  exit 1
fi
log=.venv/pip-test-install.log
.venv/bin/python -m pip install -q -e ".[test]" >"$log" 2>&1 || {
  tail -n 30 "$log" >&2
  echo "error: installing the test requirements failed (full log: $log)" >&2
  exit 1
}
exec .venv/bin/python -m pytest "$@"
