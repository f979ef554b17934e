#!/usr/bin/env bash
# Fresh machine -> the whole test suite (engine + napari GUI + benchmark smoke test).
# The GUI tests need a display: the session's own, else a virtual one (xvfb-run). Without Xvfb and
# the Qt X libraries this installs them when run as root with apt-get (scripts/gui-packages.txt);
# otherwise it runs the other tests, says so on the first and the last line, and exits with their
# status. S2VNET_REQUIRE_GUI=1 makes a missing display an error (exit 3) instead (CI).
# S2VNET_SKIP_SETUP=1 reuses the venv as it is (no pip).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${S2VNET_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh test,benchmark
venv="${S2VNET_VENV:-.venv}"
export QT_API="${QT_API:-pyqt6}"
pytest=("$venv/bin/python" -m pytest -p no:xvfb -q)
mode="$(bash scripts/gui_display.sh "$venv/bin/python")"
case "$mode" in
  display) note="GUI tests: on this session's display" ;;
  xvfb) note="GUI tests: under a virtual display (xvfb-run)"
        pytest=(xvfb-run -a -s "-screen 0 1600x1000x24" "${pytest[@]}") ;;
  *) if [ "${S2VNET_REQUIRE_GUI:-0}" = 1 ]; then
       echo "test.sh: no display for the GUI tests and S2VNET_REQUIRE_GUI=1: not running the suite" >&2
       exit 3
     fi
     note="GUI tests SKIPPED (no display, see the line above); all other tests run"
     pytest+=(-m "not gui") ;;
esac
echo "test.sh: $note"
status=0
"${pytest[@]}" "$@" || status=$?
echo "test.sh: $note; pytest exit status $status"
exit "$status"
