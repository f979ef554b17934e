#!/usr/bin/env bash
# Issue 8 on a lent GPU, in one call of the device tool: the v0.4 recipe (scripts/train_bundled.sh, one
# home for it) with every training at once on the GPU, each for TIME_MIN minutes of wall clock, then
# their soup; what comes back under $OUT is the soup and a report. Evaluate it here afterwards:
# bash scripts/eval_unseen.sh OUT/weights.safetensors runs/... (docs/training.md, "Training on a lent GPU").
#
#   here, once:  bash scripts/device_train.sh --prepare
#                (v0.3 from git history into runs/init/, the monai and nibabel wheels the device image
#                lacks into .whl/; .gitignore ignores both folders, so the call must carry them)
#   device tool: command "bash scripts/device_train.sh", carry [".whl", "runs/init"], timeout_s 600
#
# Env: TIME_MIN (minutes per training, default 6), STEPS (upper bound per training, default 20000),
#      SEEDS (default "0 1 2": a plain and a fine-copies training each), JOBS (trainings at once,
#      default all), DEVICE (default cuda), PY (default python3, the device image's), OUT (default
#      runs/device; the device tool sets it). Writes OUT/weights.safetensors, OUT/report.txt (device,
#      each training's steps and seconds, the command) and OUT/logs.txt (the end of each log).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-python3}"
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p runs/init .whl
  [ -f runs/init/s2vnet_tiny_ct_v0.3.safetensors ] || git show \
    "993cc99:src/napari_s2vnet/_resources/weights/s2vnet_tiny_ct.safetensors" > runs/init/s2vnet_tiny_ct_v0.3.safetensors
  "${S2VNET_VENV:-.venv}/bin/python" -m pip download -q --no-deps --only-binary=:all: -d .whl \
    "nibabel==5.4.2" "monai==1.6.1"
  ls -l .whl runs/init
  exit 0
fi
[ -f runs/init/s2vnet_tiny_ct_v0.3.safetensors ] || {
  echo "device_train.sh: runs/init/s2vnet_tiny_ct_v0.3.safetensors is missing: run 'bash scripts/device_train.sh --prepare' here and carry runs/init" >&2
  exit 2; }
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/s2vnet_site .whl/*.whl
  export PYTHONPATH="/tmp/s2vnet_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
out="${OUT:-runs/device}"
mkdir -p "$out"
seeds=(${SEEDS:-0 1 2})
torch_line=$("$py" -c "import torch, sys; d = '${DEVICE:-cuda}'; ok = d != 'cuda' or torch.cuda.is_available(); \
print('torch', torch.__version__, 'device', d, torch.cuda.get_device_name(0) if d == 'cuda' and ok else ''); sys.exit(0 if ok else 3)")
echo "$torch_line"
t0=$(date +%s)
S2VNET_PYTHON="$py" DEVICE="${DEVICE:-cuda}" TIME_MIN="${TIME_MIN:-6}" STEPS="${STEPS:-20000}" SEEDS="${seeds[*]}" \
  JOBS="${JOBS:-$((2 * ${#seeds[@]}))}" OUT="$out/run" bash scripts/train_bundled.sh || status=$?
{
  echo "device_train.sh, $(date -u +%FT%TZ): DEVICE=${DEVICE:-cuda} TIME_MIN=${TIME_MIN:-6} STEPS=${STEPS:-20000} SEEDS=${seeds[*]}"
  echo "$torch_line"
  echo "wall seconds, all trainings and the soup: $(( $(date +%s) - t0 ))"
  "$py" - "$out"/run/*/weights.safetensors <<'PY'
import sys
from napari_s2vnet.model.weights import train_info
for path in sys.argv[1:]:
    i = train_info(path)
    print(f"{path.split('/')[-2]}: {i['steps']} steps in {i['seconds']} s on {i['device']} (amp {i['amp']}); "
          f"{i['loading']['model_slices_per_s']} slices/s, {100 * i['loading']['waited_share']:.0f} % of the step time waiting for data")
PY
} > "$out/report.txt" 2>&1
for log in "$out"/run/*.log; do echo "== $log"; tail -n 20 "$log"; done > "$out/logs.txt"
[ -f "$out/run/weights.safetensors" ] && cp "$out/run/weights.safetensors" "$out/weights.safetensors"
cat "$out/report.txt"
exit "${status:-0}"
