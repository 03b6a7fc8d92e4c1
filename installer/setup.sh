#!/usr/bin/env bash
# Set up Kintsugi on a fresh Debian/Ubuntu machine (or any machine with Python >= 3.10):
#   system libraries for Qt/VTK and Xvfb (apt, when run as root or with sudo), a virtual environment
#   in .venv, torch pinned first (CPU wheel here, CUDA build where the platform gets one), then the
#   project itself in editable mode.  Safe to rerun: each step is skipped when already done.
#
#   bash installer/setup.sh          # the application
#   bash installer/setup.sh --test   # the application plus the test tools
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS=""
for arg in "$@"; do
  case "$arg" in
    --test) EXTRAS="[test]" ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

TORCH_PIN="torch==2.13.0"
APT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0
  libxcb-cursor0 libxcb-shape0 libxkbcommon-x11-0 libegl1 libgl1 libglx-mesa0 libgl1-mesa-dri libopengl0
  libdbus-1-3 libfontconfig1 libxrender1 libxi6)

log() { printf '[setup] %s\n' "$*"; }

install_system_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { log "no dpkg: install Xvfb and the Qt xcb libraries yourself"; return 0; }
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "system packages present"; return 0; }
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "missing system packages (${missing[*]}) and no root: install them, then rerun"; return 1
    fi
  fi
  log "installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

pick_python() {
  for py in "${PYTHON:-}" python3.11 python3.12 python3.10 python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then echo "$py"; return 0; fi
  done
  echo "setup.sh: Python 3.10 or newer is required" >&2
  return 1
}

install_system_packages
PY=$(pick_python)
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
STAMP=".venv/.kintsugi-setup"
WANT="$(sha256sum pyproject.toml | cut -c1-16) $TORCH_PIN $EXTRAS"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && .venv/bin/python -c 'import kintsugi, torch' 2>/dev/null; then
  log "Python packages up to date"
else
  "${PIP[@]}" install -q --upgrade pip
  .venv/bin/python -c "import torch" 2>/dev/null || { log "installing $TORCH_PIN"; "${PIP[@]}" install -q "$TORCH_PIN"; }
  log "installing kintsugi-studio$EXTRAS (editable)"
  "${PIP[@]}" install -q -e ".$EXTRAS"
  echo "$WANT" > "$STAMP"
fi
log "ready: $(.venv/bin/kintsugi --version)"
