#!/usr/bin/env bash
# Put a built Kintsugi bundle on a Linux desktop for the current user (no root):
# a `kintsugi` link in ~/.local/bin, the .desktop entry and the icon under ~/.local/share.
#
#   bash install-desktop.sh [BUNDLE_DIR]   # default: the folder this script is in, else installer/dist/kintsugi
#   bash install-desktop.sh --uninstall
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=$HOME/.local/bin
if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$BIN/kintsugi" "$DATA/applications/kintsugi.desktop" "$DATA/icons/hicolor/scalable/apps/kintsugi.svg" \
    "$DATA/icons/hicolor/256x256/apps/kintsugi.png"
  echo "removed the Kintsugi launcher (the bundle folder itself is left where it is)"; exit 0
fi
BUNDLE=${1:-}
if [ -z "$BUNDLE" ]; then
  if [ -x "$HERE/kintsugi" ]; then BUNDLE=$HERE; else BUNDLE=$HERE/dist/kintsugi; fi
fi
BUNDLE=$(cd "$BUNDLE" && pwd)
[ -x "$BUNDLE/kintsugi" ] || { echo "install-desktop.sh: no bundle at $BUNDLE (build it: bash installer/build.sh)" >&2; exit 1; }
ICONS=$BUNDLE; [ -f "$ICONS/kintsugi.svg" ] || ICONS=$HERE
mkdir -p "$BIN" "$DATA/applications" "$DATA/icons/hicolor/scalable/apps" "$DATA/icons/hicolor/256x256/apps"
ln -sf "$BUNDLE/kintsugi" "$BIN/kintsugi"
install -m 644 "$ICONS/kintsugi.svg" "$DATA/icons/hicolor/scalable/apps/kintsugi.svg"
install -m 644 "$ICONS/kintsugi.png" "$DATA/icons/hicolor/256x256/apps/kintsugi.png"
sed "s|^Exec=.*|Exec=\"$BUNDLE/kintsugi\" %F|; s|^TryExec=.*|TryExec=$BUNDLE/kintsugi|" \
  "$ICONS/kintsugi.desktop" > "$DATA/applications/kintsugi.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA/applications" || true
echo "installed: $BIN/kintsugi -> $BUNDLE/kintsugi, $DATA/applications/kintsugi.desktop"
