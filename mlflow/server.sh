#!/usr/bin/env bash
# Starts an MLflow tracking + registry server for a team.
#
#   mlflow/server.sh                         sqlite store in ./mlflow-server, 127.0.0.1:5000
#   MLFLOW_BACKEND=postgresql://u:p@db/mlflow mlflow/server.sh    a real database for many users
#   MLFLOW_HOST=0.0.0.0 MLFLOW_AUTH=1 mlflow/server.sh            reachable by others, with login
#
# Then: convflow run CONFIG --tracking-uri http://127.0.0.1:5000 (or export MLFLOW_TRACKING_URI).
set -euo pipefail
DATA=${MLFLOW_DATA:-$PWD/mlflow-server}
HOST=${MLFLOW_HOST:-127.0.0.1}        # loopback unless told otherwise
PORT=${MLFLOW_PORT:-5000}
BACKEND=${MLFLOW_BACKEND:-sqlite:///$DATA/mlflow.db}
ARTIFACTS=${MLFLOW_ARTIFACTS:-$DATA/artifacts}   # or s3://bucket/path, gs://bucket/path
mkdir -p "$DATA"
args=(--host "$HOST" --port "$PORT" --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS")
if [[ "${MLFLOW_AUTH:-0}" == 1 ]]; then
  # Basic auth: the first admin is read from basic_auth.ini (MLFLOW_AUTH_CONFIG_PATH); change
  # the default password at once (see mlflow/README.md).
  args+=(--app-name basic-auth)
fi
if [[ "$HOST" != 127.* && "$HOST" != localhost && "${MLFLOW_AUTH:-0}" != 1 ]]; then
  echo "warning: serving on $HOST without authentication; set MLFLOW_AUTH=1" >&2
fi
exec mlflow server "${args[@]}" "$@"
