#!/usr/bin/env bash
# Create .venv and install the project. Torch's CPU wheel goes in first so that keras'
# resolution reuses it instead of downloading a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
