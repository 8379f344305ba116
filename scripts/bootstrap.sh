#!/usr/bin/env bash
# Create .venv and install the project. Torch goes in first (scripts/install_torch.sh: the
# CPU wheel unless a GPU is present) so that the project's resolution reuses it instead of
# downloading a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
bash scripts/install_torch.sh
python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
