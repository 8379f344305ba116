#!/usr/bin/env bash
# Set up and start the whole service: database (embedded unless DATABASE_URL is set),
# migrations, the worker (one process per core; `--processes N`) and the API on
# http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/cerebros up "$@"
