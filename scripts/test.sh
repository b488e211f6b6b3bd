#!/usr/bin/env bash
# Set up everything the tests need and run them all: a virtual environment with the project and
# its test tools, Debian's Chromium and chromedriver for the browser tests, then lint and pytest.
# Usage (from anywhere): scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser tests drive Debian's Chromium (a browser download is not possible offline).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo); else as_root=(none); fi
  if [ "${as_root[0]-}" != none ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium and chromium-driver for the browser tests ..."
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "the browser tests need Chromium: run 'sudo apt-get install chromium chromium-driver', then $0 again" >&2
    exit 1
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# editable_mode=compat puts the checkout on sys.path: model_training/ and harness/ are not installed
# packages (the serving install holds app/ alone), and scripts/ and `python -m model_training` need them
pip install -q -e ".[dev]" --config-settings editable_mode=compat
ruff check .
python -m pytest --durations=15 "$@"
