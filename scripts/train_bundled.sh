#!/usr/bin/env bash
# Train the bundled weights v0.3 (docs/training.md, fourth run): the v0.1 weights (git history)
# fine-tuned for 600 steps on the bundled CT + MR and 16 phantoms with the "segment what I clicked"
# interactive targets (classes, unions, parts, supervoxels, synthetic lesions).
# One command: bash scripts/train_bundled.sh      (about 20 min on one CPU core)
# Env: OUT (run folder), EXCLUDE (a bundled case to hold out: ct_abdomen or mr_abdomen),
#      INIT (start weights; default v0.1, or a leave-one-out twin of v0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${S2VNET_VENV:-.venv}"
py="$venv/bin/python"
OUT="${OUT:-runs/bundled_v0.3}"
init="${INIT:-runs/init/s2vnet_tiny_ct_v0.1.safetensors}"
if [ -z "${INIT:-}" ] && [ ! -f "$init" ]; then  # the weights shipped until v0.3 (commit 6c55a8f)
  mkdir -p "$(dirname "$init")"
  git show 6c55a8f:src/napari_s2vnet/_resources/weights/s2vnet_tiny_ct.safetensors > "$init"
fi
extra=()
if [ -n "${EXCLUDE:-}" ]; then extra+=(--exclude "$EXCLUDE"); fi
OMP_NUM_THREADS=1 "$py" -m napari_s2vnet train --init "$init" --data bundled --steps 600 --slices 4 \
  --interactive-fraction 0.6 --lr 1e-3 --click-centres pooled --augment light \
  --seed 0 --threads 1 --val-every 100000 --out "$OUT" "${extra[@]}"
