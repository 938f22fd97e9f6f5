#!/usr/bin/env bash
# Starts an MLflow tracking + registry server for a team (see mlflow/README.md).
#
#   mlflow/server.sh                         sqlite store in ./mlflow-server, 127.0.0.1:5000
#   MLFLOW_BACKEND=postgresql://u:p@db/mlflow mlflow/server.sh    a real database for many users
#   MLFLOW_AUTH=1 mlflow/server.sh           with login; needs `pip install -e '.[auth]'`,
#                                            MLFLOW_FLASK_SERVER_SECRET_KEY and
#                                            MLFLOW_AUTH_ADMIN_PASSWORD in the environment
#
# Extra arguments go to `mlflow server` (e.g. --workers 2).
set -euo pipefail
DATA=${MLFLOW_DATA:-$PWD/mlflow-server}
HOST=${MLFLOW_HOST:-127.0.0.1}        # loopback unless told otherwise
PORT=${MLFLOW_PORT:-5000}
BACKEND=${MLFLOW_BACKEND:-sqlite:///$DATA/mlflow.db}
# PostgreSQL, a database many users share: MLFLOW_BACKEND=postgresql://USER:PW@HOST:5432/DB and
# convflow's `postgres` extra (psycopg2-binary). SQLAlchemy 2.1 reads a bare postgresql:// as
# psycopg 3, so the URL is pinned to psycopg2 here. Artifacts (MLFLOW_ARTIFACTS, proxied by the
# server, so clients need no storage credentials): a local or shared folder (default),
# s3://bucket/path (boto3), gs://bucket/path (google-cloud-storage), wasbs://... (azure-storage-blob).
if [[ "$BACKEND" == postgresql://* || "$BACKEND" == postgres://* ]]; then
  BACKEND="postgresql+psycopg2://${BACKEND#*://}"
fi
ARTIFACTS=${MLFLOW_ARTIFACTS:-$DATA/artifacts}   # or s3://bucket/path, gs://bucket/path
AUTH=${MLFLOW_AUTH:-0}
MLFLOW_BIN=$(command -v mlflow || true)
if [[ -z "$MLFLOW_BIN" ]]; then
  echo "error: the mlflow command is not on PATH; activate convflow's virtualenv (.venv/bin)" >&2
  exit 2
fi
if [[ "$BACKEND" == postgresql+psycopg2://* ]] &&
  ! "$(dirname "$MLFLOW_BIN")/python" -c "import psycopg2" 2>/dev/null; then
  echo "error: MLFLOW_BACKEND is PostgreSQL (...@${BACKEND##*@}) but psycopg2 is missing: pip install -e '.[postgres]'" >&2
  exit 2
fi
args=(--host "$HOST" --port "$PORT" --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS")

if [[ "$AUTH" == 1 ]]; then
  if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
    echo "error: MLFLOW_AUTH=1 needs MLFLOW_FLASK_SERVER_SECRET_KEY (signs login sessions and CSRF tokens), e.g. export MLFLOW_FLASK_SERVER_SECRET_KEY=\$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >&2
    exit 2
  fi
  if [[ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]]; then
    echo "error: MLFLOW_AUTH=1 needs MLFLOW_AUTH_ADMIN_PASSWORD (the password of the first admin, user \${MLFLOW_AUTH_ADMIN_USERNAME:-admin}; read only when the user database is created)" >&2
    exit 2
  fi
  if ! "$(dirname "$MLFLOW_BIN")/python" -c "import flask_wtf" 2>/dev/null; then
    echo "error: MLflow's auth app needs its 'auth' extra: pip install -e '.[auth]' (in convflow's checkout)" >&2
    exit 2
  fi
  # Owner-only: the user database holds password hashes, the ini its location.
  umask 077
  mkdir -p "$DATA"
  chmod 700 "$DATA"
  cat > "$DATA/basic_auth.ini" <<EOF
[mlflow]
default_permission = READ
database_uri = sqlite:///$DATA/basic_auth.db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
  export MLFLOW_AUTH_CONFIG_PATH="$DATA/basic_auth.ini"
  args+=(--app-name basic-auth)
else
  mkdir -p "$DATA"
  if [[ "$HOST" != 127.* && "$HOST" != localhost ]]; then
    echo "warning: serving on $HOST without authentication; set MLFLOW_AUTH=1" >&2
  fi
fi
exec "$MLFLOW_BIN" server "${args[@]}" "$@"
