"""Evaluation scripts: ``prepare_pycerr_eval.py`` (RTSTRUCT contours, LPS mm, filled onto the DICOM
reader's grid) and ``untouched_structures.py --against`` (better / worse structures)."""

import sys
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("skimage")
sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
from prepare_pycerr_eval import rasterise_rtstruct  # noqa: E402
from napari_s2vnet.data.geometry import Geometry  # noqa: E402
from untouched_structures import compare  # noqa: E402

# voxel (i, j, k) -> RAS mm: 0.5 mm columns, 0.8 mm rows, 2 mm slices, an offset (like read_dicom_series)
AFFINE = np.array([[-0.5, 0, 0, 40.0], [0, -0.8, 0, 60.0], [0, 0, 2.0, -30.0], [0, 0, 0, 1]])
GEOMETRY = Geometry(AFFINE, (30, 20, 6))


def _contour(corners_ijk):
    """ContourData (LPS mm, flat) of a closed polygon given by voxel corners."""
    ijk = np.c_[np.asarray(corners_ijk, dtype=float), np.ones(len(corners_ijk))]
    lps = (AFFINE @ ijk.T)[:3].T * np.array([-1.0, -1.0, 1.0])
    ds = pydicom.Dataset()
    ds.ContourData = [float(v) for v in lps.ravel()]
    return ds


def _rtstruct(*contours):
    roi = pydicom.Dataset()
    roi.ReferencedROINumber = 1
    roi.ContourSequence = pydicom.Sequence(list(contours))
    rts = pydicom.Dataset()
    rts.ROIContourSequence = pydicom.Sequence([roi])
    return rts


def test_contours_fill_their_slice_on_the_right_axes_with_holes():
    outer = _contour([(2, 2, 3), (2, 12, 3), (24, 12, 3), (24, 2, 3)])  # long in i, short in j
    hole = _contour([(10, 5, 3), (10, 9, 3), (15, 9, 3), (15, 5, 3)])
    other = _contour([(5, 5, 1), (5, 8, 1), (8, 8, 1), (8, 5, 1)])
    labels = rasterise_rtstruct(_rtstruct(outer, hole, other), GEOMETRY)
    assert labels[20, 4, 3] == 1 and labels[4, 10, 3] == 1  # inside the outer contour
    assert labels[12, 7, 3] == 0  # inside the hole: even-odd
    assert labels[27, 7, 3] == 0 and labels[20, 15, 3] == 0  # outside
    assert labels[6, 6, 1] == 1 and labels[:, :, [0, 2, 4, 5]].sum() == 0  # each contour on its own slice
    i, j = np.nonzero(labels[:, :, 3])
    assert np.ptp(i) > 2 * np.ptp(j)  # the long side stays along i (no transposition)


def test_a_contour_off_the_slices_is_an_error():
    off = _contour([(2, 2, 3.5), (2, 6, 3.5), (6, 6, 3.5)])
    with pytest.raises(ValueError, match="off the image's slices"):
        rasterise_rtstruct(_rtstruct(off), GEOMETRY)


def test_against_counts_structures_beyond_the_margin_and_lists_the_largest_loss_first():
    earlier = {"liver": [0.5] * 5, "rib": [0.5] * 5, "aorta": [0.5] * 5}
    now = {"liver": [0.51] * 5, "rib": [0.504] * 5, "aorta": [0.3, 0.4, 0.4, 0.4, 0.5]}
    lines = compare(earlier, now).splitlines()
    assert "better by > 0.005 on 1, worse by > 0.005 on 1 of 3;" in lines[0]  # the rib's +0.004 is level
    low, high = (float(v) for v in lines[0].split("structures ")[1].rstrip(")").split(" .. "))
    assert "mean change -0.029" in lines[0] and -0.1 <= low < -0.029 < high <= 0.01  # resampled means lie between
    assert lines[1].split()[0] == "aorta" and lines[1].endswith("(-0.100)")


def test_first_click_diagnostic_takes_an_image_label_pair(tmp_path):
    """``first_click_diagnostic.py`` scores ``NAME=IMAGE::LABELS::MODALITY`` cases (a test tumour), not only
    fetched cases with a ``:subset``."""
    import json
    import subprocess

    import nibabel as nib

    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.model.weights import default_weights_path

    ph = make_phantom(3, shape=(10, 48, 48))
    affine = np.diag([*ph.spacing[::-1], 1.0])
    nib.save(nib.Nifti1Image(ph.image.transpose(2, 1, 0), affine), tmp_path / "i.nii.gz")
    nib.save(nib.Nifti1Image(ph.labels.transpose(2, 1, 0).astype(np.uint16), affine), tmp_path / "l.nii.gz")
    out = tmp_path / "diag.json"
    script = Path(__file__).parents[1] / "scripts" / "first_click_diagnostic.py"
    spec = f"lump_tumor={tmp_path / 'i.nii.gz'}::{tmp_path / 'l.nii.gz'}::CT"
    subprocess.run([sys.executable, str(script), str(default_weights_path()), str(tmp_path), str(out), spec],
                   check=True, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())
    assert rows and all(r["case"] == spec and r["structure"].startswith("lump_tumor_") for r in rows)
    assert all(0 <= r["vol"] <= 1 and r["zext"] >= 1 for r in rows)
