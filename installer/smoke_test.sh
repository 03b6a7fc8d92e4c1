#!/usr/bin/env bash
# Smoke test of the desktop bundle: build it (or reuse it), then from the bundle alone, with the network
# off, print the version, make the samples, run one task of each built-in plugin headless, load a user
# plugins folder with broken plugins, and save a GUI screenshot under Xvfb. Takes long (the build alone
# is minutes to half an hour); not part of the test suite.
#
#   bash installer/smoke_test.sh                    # build if installer/dist/kintsugi is missing, then test
#   bash installer/smoke_test.sh --rebuild          # always build first
#   bash installer/smoke_test.sh --bundle DIR       # test an existing bundle folder (no build)
#   ... [--network auto|unshare|none] [--screenshot FILE] [--work DIR] [--skip TASK]   (passed to smoke_test.py)
#
# The network is cut with `unshare -n` (root, or unprivileged user namespaces); where that is not
# possible the test says "network NOT isolated" and only points proxies at a closed port.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUNDLE=installer/dist/kintsugi
REBUILD=0
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) REBUILD=1 ;;
    --bundle) BUNDLE=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) PASS+=("$1") ;;
  esac
  shift
done
if [ "$REBUILD" = 1 ] || [ ! -x "$BUNDLE/kintsugi" ]; then
  [ "$BUNDLE" = installer/dist/kintsugi ] || { echo "smoke_test.sh: no bundle at $BUNDLE" >&2; exit 2; }
  bash installer/build.sh installer/dist
fi
PY=$(command -v python3 || command -v python) || { echo "smoke_test.sh: needs python3 (standard library only)" >&2; exit 2; }
exec "$PY" installer/smoke_test.py "$BUNDLE" ${PASS[@]+"${PASS[@]}"}
