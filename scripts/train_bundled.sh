#!/usr/bin/env bash
# Train the bundled weights v0.4 (docs/training.md, seventh run): v0.3 (git history) fine-tuned six
# times for 600 steps on the bundled CT + MR and 16 phantoms with the "segment what I clicked"
# interactive targets -- v0.3's recipe with seeds 0, 1 and 2, and the same with 1.5 mm fine copies
# (--fine-mm 1.5 --fine-upsampled) with seeds 0, 1 and 2 -- then the six averaged tensor by tensor
# (scripts/soup_weights.py; zoom_mm 1.5, the fine copies' zoomed view).
# One command: bash scripts/train_bundled.sh   (six trainings of 9-17 min on one CPU core each, JOBS at a time)
# Env: OUT (run folder; the weights are OUT/weights.safetensors), JOBS (trainings at once, default 2),
#      RECIPE=v0.3: only v0.3's own fine-tune, from v0.1 (EXCLUDE: a bundled case to hold out,
#      ct_abdomen or mr_abdomen; INIT: start weights, default v0.1, or a leave-one-out twin of v0.1).
#      Scaling the v0.4 recipe (defaults reproduce v0.4): STEPS (600), SEEDS ("0 1 2": each seed trains
#      the plain and the fine-copies fine-tune), DEVICE (train --device, default auto), TIME_MIN (train
#      --time-budget-min per training, default none), S2VNET_PYTHON (default $S2VNET_VENV/bin/python),
#      EXTRA (more train options for every parent, e.g. "--lesion-donor 0.5"; default none),
#      DRY=1 (print the training commands, run nothing). scripts/device_train.sh runs it on a lent GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${S2VNET_VENV:-.venv}"
py="${S2VNET_PYTHON:-$venv/bin/python}"
recipe=(--data bundled --steps "${STEPS:-600}" --slices 4 --interactive-fraction 0.6 --lr 1e-3 --click-centres pooled
        --augment light --threads 1 --val-every 100000)
[ -z "${DEVICE:-}" ] || recipe+=(--device "$DEVICE")
[ -z "${TIME_MIN:-}" ] || recipe+=(--time-budget-min "$TIME_MIN")
[ -z "${EXTRA:-}" ] || recipe+=($EXTRA)

restore() {  # restore <commit> <file>: a bundled weights file from git history
  if [ ! -f "$2" ] && [ "${DRY:-0}" != 1 ]; then
    mkdir -p "$(dirname "$2")"
    git show "$1:src/napari_s2vnet/_resources/weights/s2vnet_tiny_ct.safetensors" > "$2"
  fi
}

if [ "${RECIPE:-v0.4}" = "v0.3" ]; then
  OUT="${OUT:-runs/bundled_v0.3}"
  init="${INIT:-runs/init/s2vnet_tiny_ct_v0.1.safetensors}"
  [ -n "${INIT:-}" ] || restore 6c55a8f "$init"  # the weights shipped until v0.3
  extra=()
  if [ -n "${EXCLUDE:-}" ]; then extra+=(--exclude "$EXCLUDE"); fi
  OMP_NUM_THREADS=1 "$py" -m napari_s2vnet train --init "$init" "${recipe[@]}" --seed 0 --out "$OUT" "${extra[@]}"
  exit 0
fi

OUT="${OUT:-runs/bundled_v0.4}"
init=runs/init/s2vnet_tiny_ct_v0.3.safetensors
restore 993cc99 "$init"  # v0.3
[ "${DRY:-0}" = 1 ] || mkdir -p "$OUT"
seeds=(${SEEDS:-0 1 2})
names=("${seeds[@]/#/plain_s}" "${seeds[@]/#/fine_s}")
running=0
for name in "${names[@]}"; do
  seed="${name##*_s}"
  extra=()
  if [ "${name%%_*}" = "fine" ]; then extra+=(--fine-mm 1.5 --fine-upsampled); fi
  if [ "${DRY:-0}" = 1 ]; then
    echo "$py -m napari_s2vnet train --init $init ${recipe[*]} --seed $seed ${extra[*]} --out $OUT/$name"
  elif [ ! -f "$OUT/$name/weights.safetensors" ]; then
    OMP_NUM_THREADS=1 "$py" -m napari_s2vnet train --init "$init" "${recipe[@]}" --seed "$seed" "${extra[@]}" \
      --out "$OUT/$name" > "$OUT/$name.log" 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge "${JOBS:-2}" ]; then wait -n || true; running=$((running - 1)); fi
  fi
done
wait
[ "${DRY:-0}" = 1 ] && exit 0
for name in "${names[@]}"; do  # a failed training stops here, with its log named
  [ -f "$OUT/$name/weights.safetensors" ] || { echo "training $name failed: see $OUT/$name.log" >&2; exit 1; }
done
# the fine-copy seeds first: their config (zoom_mm 1.5) is the soup's
parts=()
for kind in fine plain; do for seed in "${seeds[@]}"; do parts+=("$OUT/${kind}_s$seed/weights.safetensors"); done; done
"$py" scripts/soup_weights.py "$OUT/weights.safetensors" "${parts[@]}"
