"""Evaluation-only data: the tumour image/label pairs in the pyradiomics 3.1.0 sdist, as NIfTI.

These real volumes (brain MR, lung CT, breast MR tumours) were found after the training data was
fixed; they are used only to evaluate, never to train or tune (issue 8). Usage:

    python scripts/prepare_pyradiomics_eval.py EXTRACTED_SDIST/data OUT
    python -m napari_s2vnet.benchmark.unseen --model W --case "brain1_tumor=OUT/brain1_image.nii.gz::OUT/brain1_label.nii.gz::MR" ...
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from napari_s2vnet.data.convert import labels_onto_grid, read_nrrd

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for image in sorted(src.glob("*_image.nrrd")):
    case = image.name[: -len("_image.nrrd")]
    data, affine, _ = read_nrrd(image)
    labels, lab_affine, _ = read_nrrd(src / f"{case}_label.nrrd")
    labels = np.rint(labels).astype(np.uint16)
    if labels.shape != data.shape or not np.allclose(affine, lab_affine, atol=1e-3):
        labels = labels_onto_grid(labels, lab_affine, data.shape, affine).astype(np.uint16)
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), out / f"{case}_image.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), out / f"{case}_label.nii.gz")
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    print(case, data.shape, np.round(zooms, 2), {int(i): int((labels == i).sum()) for i in np.unique(labels) if i},
          f"intensity {data.min():.0f}..{data.max():.0f}")
