#!/usr/bin/env bash
# README command 1: set up, then train on the bundled MOSES sample, sample 2,000 molecules,
# print the metrics table and record everything in the MLflow store ./mlflow.db.
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup.sh
exec .venv/bin/molvae train --config pipelines/recipes/quickstart.toml --out runs/quickstart "$@"
