#!/usr/bin/env bash
# Creates the separate virtualenv with a pinned Apache Airflow that tests/test_airflow_export.py
# loads exported DAGs with. Separate, so Airflow's pins never meet convflow's.
#
#   .ci/airflow-venv.sh            create it at $CONVFLOW_AIRFLOW_VENV (default below) if missing
#   CONVFLOW_AIRFLOW_VENV=/path .ci/airflow-venv.sh
# Prints the venv's path on its last line.
set -euo pipefail
AIRFLOW_VERSION=3.3.2
VENV=${CONVFLOW_AIRFLOW_VENV:-$HOME/.cache/convflow-airflow-venv}
PY=${PYTHON:-python3}
MARKER="$VENV/.convflow-airflow-$AIRFLOW_VERSION"

if [[ ! -f $MARKER ]]; then
  echo "== creating $VENV with apache-airflow==$AIRFLOW_VERSION (first time: a few minutes)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "apache-airflow==$AIRFLOW_VERSION" >&2
  "$VENV/bin/airflow" version >&2
  touch "$MARKER"
fi
echo "$VENV"
