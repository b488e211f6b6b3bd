#!/usr/bin/env bash
# Set up a virtual environment with the project and its test tools, lint, and run every test.
# Usage (from the repository root): scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -e ".[dev]"
ruff check .
python -m pytest "$@"
