#!/usr/bin/env bash
# Set up (idempotent) and start the main job.
# Usage: scripts/run.sh [ARGS...]   (ARGS are passed to the main job)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/setup.sh
exec "$ROOT/.venv/bin/python" -m napari_mrcz.demo "$@"
