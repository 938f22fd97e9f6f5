#!/usr/bin/env bash
# Sets convflow up on a fresh Debian machine and runs the main job.
#
#   ./bootstrap.sh            venv + packages + Fashion-MNIST, then the default pipeline
#   ./bootstrap.sh --no-run   set up only (what CI does before the tests)
#   ./bootstrap.sh --set train.epochs=2 ...   extra arguments go to `convflow run`
#   ./bootstrap.sh --verbose  also show pip's output and the libraries' start-up messages
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
DATA=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "error: convflow needs Python >= 3.10 (tested on 3.11); set PYTHON=/path/to/python3.11" >&2
  exit 1
}

if [[ ! -f $DATA ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing Debian's dataset-fashion-mnist"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "error: Fashion-MNIST is missing; run: sudo apt-get install dataset-fashion-mnist" >&2
    exit 1
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing convflow and its dependencies into .venv (first time: a few minutes)"
# Only what the main job needs (the tests add theirs: scripts/test.sh). pip's and setuptools'
# chatter (the editable-install notice box) goes to a log unless --verbose is given.
log=.venv/pip-install.log
if [[ " $* " == *" --verbose "* ]]; then
  .venv/bin/python -m pip install --upgrade pip
  .venv/bin/python -m pip install -e .
elif ! { .venv/bin/python -m pip install -q --upgrade pip &&
  .venv/bin/python -m pip install -q -e .; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "error: installing convflow failed (full log: $log)" >&2
  exit 1
fi

if [[ ${1:-} == --no-run ]]; then
  echo "== set up; run the pipeline with: .venv/bin/convflow run configs/fashion_mnist_lenet.yaml"
  exit 0
fi
echo "== running the default pipeline (configs/fashion_mnist_lenet.yaml)"
exec .venv/bin/convflow run configs/fashion_mnist_lenet.yaml "$@"
