#!/usr/bin/env bash
# Set up and run the full test suite: lint, types, then pytest against a real Postgres
# (127.0.0.1:5432 when it answers, TEST_DATABASE_URL when set, else an embedded one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
. .venv/bin/activate
ruff check .
ruff format --check .
mypy app migrations
pytest -q "$@"
