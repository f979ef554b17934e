#!/usr/bin/env bash
# Create .venv (if missing) and install napari-s2vnet with the given extras (default: napari,dicom).
# torch is pinned to the CPU build first: an unpinned torch can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-napari,dicom}"
venv="${S2VNET_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q -e ".[$extras]"
