#!/usr/bin/env bash
# Decide how the napari/Qt GUI tests can get a display, and print that on stdout as one word:
#   display  the session's own $DISPLAY / $WAYLAND_DISPLAY works
#   xvfb     run them under xvfb-run (a virtual X display)
#   none     no display can be had here: run the other tests only (the reason goes to stderr)
# Every check is a real one: a QApplication is created (under xvfb-run when there is no display),
# because a missing X library (e.g. libxcb-cursor0) otherwise kills pytest-qt with
# "Fatal Python error: Aborted" and no summary. When that fails and this runs as root with apt-get,
# the packages of scripts/gui-packages.txt are installed first (S2VNET_NO_INSTALL=1 forbids it).
#
#   gui_display.sh PYTHON      the mode for the interpreter PYTHON (needs qtpy and a Qt binding)
#   gui_display.sh --install   only install the packages (as root, with apt-get)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
XVFB_ARGS=(-a -s "-screen 0 1600x1000x24")

packages() { grep -v '^\s*#' "$here/gui-packages.txt" | grep -v '^\s*$' | tr '\n' ' '; }

install_packages() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "gui_display: cannot install the GUI packages (needs root and apt-get)" >&2
    return 1
  fi
  echo "gui_display: installing Debian packages for the GUI tests: $(packages)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
    # shellcheck disable=SC2046  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(packages) >/dev/null
}

if [ "${1:-}" = "--install" ]; then
  install_packages
  exit $?
fi
py="${1:?usage: gui_display.sh PYTHON | --install}"
probe_log="$(mktemp)"
trap 'rm -f "$probe_log"' EXIT
PROBE='from qtpy.QtWidgets import QApplication; app = QApplication([]); app.processEvents()'

probe() {  # probe [xvfb]: can this interpreter open a Qt application (on that display)?
  if [ "${1:-}" = xvfb ]; then
    command -v xvfb-run >/dev/null 2>&1 || { echo "xvfb-run is not installed" >"$probe_log"; return 1; }
    timeout 120 xvfb-run "${XVFB_ARGS[@]}" "$py" -c "$PROBE" >"$probe_log" 2>&1
  else
    timeout 60 "$py" -c "$PROBE" >"$probe_log" 2>&1
  fi
}

reason() {  # the telling line of the last failed probe (Qt names the missing library)
  grep -m1 -iE "needed|could not|cannot|no module|not installed|error" "$probe_log" || tail -n 1 "$probe_log"
}

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && probe; then
  echo display
  exit 0
fi
if probe xvfb; then
  echo xvfb
  exit 0
fi
why="$(reason)"
if [ "${S2VNET_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && [[ "$why" != *"No module named"* ]]; then  # Debian packages cannot give a missing Python package
  echo "gui_display: no usable display ($why)" >&2
  if install_packages && probe xvfb; then
    echo xvfb
    exit 0
  fi
  why="$(reason)"
fi
if [[ "$why" == *"No module named"* ]]; then
  fix="install napari with Qt in that venv: bash scripts/setup.sh test"
else
  fix="install as root: apt-get install $(packages)"
fi
echo "gui_display: no display for the GUI tests: $why. To run them, $fix" >&2
echo none
