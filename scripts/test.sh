#!/usr/bin/env bash
# Fresh machine -> the whole test suite (engine + napari GUI under Xvfb + benchmark smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,benchmark
venv="${S2VNET_VENV:-.venv}"
export QT_API="${QT_API:-pyqt6}"
if command -v xvfb-run >/dev/null 2>&1 && [ -z "${DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$venv/bin/python" -m pytest -p no:xvfb -q "$@"
fi
exec "$venv/bin/python" -m pytest -p no:xvfb -q "$@"
