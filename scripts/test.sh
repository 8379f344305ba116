#!/usr/bin/env bash
# Set up and run the full test suite: lint, types, then pytest against a real Postgres
# (127.0.0.1:5432 when it answers, TEST_DATABASE_URL when set, else an embedded one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
# tests/ui drive the dashboard in the system's chromium (Playwright's own browser download is
# not used); install it with Debian's package when we can, else the UI tests say how.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium
fi
. .venv/bin/activate
ruff check .
ruff format --check .
mypy app migrations tests
pytest -q "$@"
