#!/usr/bin/env bash
# Set up (idempotent) and start the main job: napari with napari-mrcz, showing its
# samples (or the MRC/MRCZ/DM files given as arguments).
# Usage: scripts/run.sh [FILE...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/setup.sh
if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]] && command -v xvfb-run >/dev/null 2>&1; then
    echo "[run] no display: starting napari on a virtual screen (xvfb-run)" >&2
    export QT_QPA_PLATFORM=xcb
    exec xvfb-run -a -s "-screen 0 1600x1000x24" "$ROOT/.venv/bin/python" -m napari_mrcz "$@"
fi
exec "$ROOT/.venv/bin/python" -m napari_mrcz "$@"
