#!/usr/bin/env bash
# Build the one-folder desktop bundle of Kintsugi for this platform with PyInstaller.
#
#   bash installer/build.sh              # -> installer/dist/kintsugi/kintsugi
#   bash installer/build.sh DIST_DIR     # -> DIST_DIR/kintsugi/kintsugi
#
# Needs the project's environment (bash installer/setup.sh); installs PyInstaller into .venv with pip when
# it is missing. The build is slow (several minutes to half an hour: torch, VTK and Qt are large) and
# the bundle is about 2 GB; it is a bundle for the OS and CPU architecture it was built on.
# Environment: PYTHON (default .venv/bin/python), PYINSTALLER_SPEC ("pyinstaller" pip requirement).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DIST=${1:-installer/dist}
WORK=installer/build
PY=${PYTHON:-.venv/bin/python}
log() { printf '[build] %s\n' "$*"; }

[ -x "$PY" ] || { echo "build.sh: no $PY; run 'bash installer/setup.sh' first" >&2; exit 2; }
"$PY" -c 'import kintsugi' 2>/dev/null || { echo "build.sh: kintsugi is not installed in $PY" >&2; exit 2; }
if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
  log "installing ${PYINSTALLER_SPEC:-pyinstaller} into $(dirname "$(dirname "$PY")")"
  "$PY" -m pip install --disable-pip-version-check -q "${PYINSTALLER_SPEC:-pyinstaller}"
fi
log "PyInstaller $("$PY" -c 'import PyInstaller; print(PyInstaller.__version__)'), $("$PY" --version), kintsugi $("$PY" -c 'import kintsugi; print(kintsugi.__version__)')"

mkdir -p "$DIST"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" installer/kintsugi.spec
end=$(date +%s)

BUNDLE="$DIST/kintsugi"
[ -x "$BUNDLE/kintsugi" ] || { echo "build.sh: no executable at $BUNDLE/kintsugi" >&2; exit 1; }
# The .desktop entry and icons travel with the bundle (install-desktop.sh uses them).
cp installer/kintsugi.desktop installer/kintsugi.png installer/kintsugi.svg installer/install-desktop.sh "$BUNDLE/"
elapsed=$((end - start))
size=$(du -sh "$BUNDLE" | cut -f1)
log "bundle: $(cd "$BUNDLE" && pwd)"
log "size: $size ($(find "$BUNDLE" -type f | wc -l) files)"
log "build time: $((elapsed / 60)) min $((elapsed % 60)) s"
cd "$ROOT"
