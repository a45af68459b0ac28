#!/usr/bin/env bash
# README command 2: set up the environment, then run the default (fast, CPU) test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup.sh
exec .venv/bin/python -m pytest "$@"
