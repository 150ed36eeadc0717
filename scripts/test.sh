#!/usr/bin/env bash
# Install what the tests need into .venv (nothing system-wide: see scripts/setup-system.sh), check the
# services and system commands, lint, type-check, run the suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# The system commands the tests run (chromium, chromedriver, openssl, redis-server) come from a separate, root-only
# step; this script installs nothing system-wide and stops with one line naming that step.
bash scripts/setup-system.sh --check

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy  # pyproject [tool.mypy] files: orchestration agents tasks celeryconfig.py tests migrations
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
