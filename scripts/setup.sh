#!/usr/bin/env bash
# Idempotent set-up for napari-mrcz:
#   1. Debian packages needed to run napari under Xvfb (installed only when missing),
#   2. a virtual environment in .venv (reused when present and working),
#   3. the project, installed editable with its extras (skipped when nothing changed).
#
# Usage: scripts/setup.sh [EXTRAS]
#   EXTRAS: comma-separated extras of pyproject.toml to install (default: test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

EXTRAS="${1:-test}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.napari-mrcz-install.stamp"
# Oldest pip we accept as is; older ones get upgraded before installing.
MIN_PIP="23.1"

APT_PACKAGES=(
    xvfb xauth
    libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
    libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0
    libxcb-xfixes0 libdbus-1-3 libegl1 libfontconfig1
)

export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. Debian packages ------------------------------------------------------------------------
install_apt_packages() {
    if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        log "dpkg/apt-get not found: skipping Debian packages (${APT_PACKAGES[*]})"
        return 0
    fi

    local missing=() pkg status
    for pkg in "${APT_PACKAGES[@]}"; do
        status="$(dpkg -s "$pkg" 2>/dev/null)" || status=""
        if ! grep -qx 'Status: install ok installed' <<<"$status"; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi

    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            log "need root or sudo to install Debian packages: ${missing[*]}"
            return 1
        fi
    fi

    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- 2. virtual environment --------------------------------------------------------------------
ensure_venv() {
    if [[ -x "$PY" ]] && "$PY" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    if [[ -e "$VENV" ]]; then
        log "$VENV is broken: recreating it"
        rm -rf "$VENV"
    fi
    log "creating $VENV with $(command -v python3)"
    python3 -m venv "$VENV"
}

ensure_pip() {
    if ! "$PY" -c 'import pip' >/dev/null 2>&1; then
        log "pip missing in .venv: bootstrapping it"
        "$PY" -m ensurepip --upgrade
    fi
    if ! "$PY" - "$MIN_PIP" <<'PYEOF'
import sys
import pip

def key(v):
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        out.append(int(digits))
    return tuple(out)

sys.exit(0 if key(pip.__version__) >= key(sys.argv[1]) else 1)
PYEOF
    then
        log "upgrading pip (older than $MIN_PIP)"
        "$PY" -m pip install --upgrade pip
    fi
}

# --- 3. the project ----------------------------------------------------------------------------
install_hash() {
    {
        cat pyproject.toml
        printf '\nextras=%s\n' "$EXTRAS"
        "$PY" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

project_installed() {
    "$PY" -c 'import importlib.metadata as m; m.version("napari-mrcz")' >/dev/null 2>&1
}

install_project() {
    local want
    want="$(install_hash)"
    if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$want" ]] && project_installed; then
        log "project up to date in .venv (extras: $EXTRAS)"
        return 0
    fi
    ensure_pip
    log "installing project: pip install -e '.[$EXTRAS]'"
    "$PY" -m pip install -e ".[$EXTRAS]"
    printf '%s\n' "$want" >"$STAMP.tmp"
    mv -f "$STAMP.tmp" "$STAMP"
}

install_apt_packages
ensure_venv
install_project
