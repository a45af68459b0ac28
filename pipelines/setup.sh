#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install molvae into it.
# Without an NVIDIA GPU a CPU build of torch is installed first, so pip never pulls the CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MOLVAE_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing the default (CUDA) torch build"
    pip install "torch>=2.4"
  else
    echo "[setup] no GPU: installing a CPU build of torch"
    pip install "torch==2.13.0" 2>/dev/null \
      || pip install "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
echo "[setup] installing molvae and its dependencies into $VENV"
pip install -e ".[dev,docs]" 2> >(grep -v "^WARNING: Location" >&2)
