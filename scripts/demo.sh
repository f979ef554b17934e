#!/usr/bin/env bash
# Fresh machine -> main job on the bundled sample.
# With a display: napari opens with the S2VNet dock and the real abdominal CT.
# Without one: headless automatic segmentation of the same CT, then its Dice against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh napari,dicom
venv="${S2VNET_VENV:-.venv}"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${S2VNET_HEADLESS:-0}" != 1 ]; then
  exec "$venv/bin/python" -m napari_s2vnet.widget.demo
fi
mkdir -p out
"$venv/bin/napari-s2vnet" segment sample:ct -o out/ct_auto_labels.nii.gz
echo "Automatic segmentation of the bundled CT against its reference labels (Dice: overlap, 1 is perfect;"
echo "HD95: 95th-percentile surface distance in mm, 0 is perfect). This CT is a training volume of the"
echo "bundled model, so this checks the install, not accuracy on new scans (docs/benchmarks.md):"
"$venv/bin/napari-s2vnet" evaluate out/ct_auto_labels.nii.gz sample:ct_labels | tail -n 1
