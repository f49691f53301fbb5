#!/usr/bin/env bash
# Set up (idempotent), lint, and run the whole test suite.
# Usage: scripts/test.sh [PYTEST_ARGS...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/setup.sh
PY="$ROOT/.venv/bin/python"

echo "[test] ruff check . && ruff format --check ." >&2
"$PY" -m ruff check .
"$PY" -m ruff format --check .

if [[ -z "${DISPLAY:-}" ]] && command -v xvfb-run >/dev/null 2>&1; then
    echo "[test] pytest under xvfb-run" >&2
    export QT_QPA_PLATFORM=xcb
    exec xvfb-run -a -s "-screen 0 1600x1000x24" "$PY" -m pytest "$@"
fi

echo "[test] pytest" >&2
exec "$PY" -m pytest "$@"
