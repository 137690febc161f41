#!/usr/bin/env bash
# A one-folder build of kiosk for machines without Python: dist/kiosk/ (run dist/kiosk/kiosk).
# Builds with the project's .venv (set up by packaging/dev.sh) plus PyInstaller.
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=${DIST:-dist}
[ -x .venv/bin/python ] || { echo "run packaging/dev.sh test (or demo) first" >&2; exit 1; }
.venv/bin/python -m pip install -q "pyinstaller>=6.5"
KIVY_NO_ARGS=1 .venv/bin/pyinstaller --noconfirm --log-level ERROR \
    --distpath "$DIST" --workpath build/pyinstaller packaging/kiosk.spec
echo "built: $DIST/kiosk/kiosk ($(du -sh "$DIST/kiosk" | cut -f1))"
