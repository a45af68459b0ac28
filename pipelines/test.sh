#!/usr/bin/env bash
# README command 2: set up the environment, build the documentation site, then run the default (fast, CPU)
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup.sh
# The documentation site builds without a warning (a broken link or a page missing from the nav fails).
site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
exec .venv/bin/python -m pytest "$@"
