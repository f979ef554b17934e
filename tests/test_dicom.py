"""DICOM series reading on a small synthetic series written with pydicom."""

from __future__ import annotations

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: E402

from napari_s2vnet.data.io import read_volume  # noqa: E402
from napari_s2vnet.errors import InputError, InputWarning  # noqa: E402

ROWS, COLS, N_SLICES = 8, 6, 4
PIXEL_SPACING = (0.7, 0.9)  # (row spacing, column spacing)
STEP = 2.5
ORIGIN = np.array([-100.0, -80.0, 30.0])  # LPS mm of slice 0, pixel (0, 0)


def _orientation() -> tuple[np.ndarray, np.ndarray]:
    t = np.deg2rad(15.0)  # axial, tilted about the patient's L axis
    row_dir = np.array([1.0, 0.0, 0.0])
    col_dir = np.array([0.0, np.cos(t), np.sin(t)])
    return row_dir, col_dir


def _stored(k: int) -> np.ndarray:
    """Stored (pre-rescale) pixels of slice k: unique value per (row, col, slice)."""
    rows, cols = np.mgrid[:ROWS, :COLS]
    return (600 + 100 * k + 10 * rows + cols).astype(np.uint16)


def _write_slice(path, k: int, series_uid: str, modality: str = "CT", number: int | None = None) -> None:
    row_dir, col_dir = _orientation()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    if number is not None:
        ds.SeriesNumber = number
        ds.SeriesDescription = f"series {number}"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [float(v) for v in ORIGIN + k * STEP * np.cross(row_dir, col_dir)]
    ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
    ds.PixelSpacing = list(PIXEL_SPACING)
    ds.SliceThickness = STEP
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 2
    ds.RescaleIntercept = -1024
    ds.PixelData = _stored(k).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


@pytest.fixture
def series_dir(tmp_path):
    uid = generate_uid()
    for n, k in enumerate([2, 0, 3, 1]):  # file names not in slice order
        _write_slice(tmp_path / f"IM{n:04d}.dcm", k, uid)
    other = generate_uid()  # a smaller second series, ignored
    _write_slice(tmp_path / "other.dcm", 0, other, modality="MR")
    (tmp_path / "README.txt").write_text("not dicom")
    return tmp_path


def test_read_series(series_dir):
    volume = read_volume(series_dir)
    assert volume.modality == "CT"
    assert volume.array.shape == (COLS, ROWS, N_SLICES)  # (i=col, j=row, k=slice)
    assert volume.array.dtype == np.float32
    for k in range(N_SLICES):
        np.testing.assert_array_equal(volume.array[:, :, k], (_stored(k) * 2.0 - 1024.0).T)

    row_dir, col_dir = _orientation()
    lps = np.eye(4)
    lps[:3, 0] = row_dir * PIXEL_SPACING[1]
    lps[:3, 1] = col_dir * PIXEL_SPACING[0]
    lps[:3, 2] = np.cross(row_dir, col_dir) * STEP
    lps[:3, 3] = ORIGIN
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    np.testing.assert_allclose(volume.geometry.affine, expected, atol=1e-6)
    assert volume.geometry.axcodes == ("L", "P", "S")
    assert volume.geometry.internal_spacing == pytest.approx((STEP, 0.7, 0.9))

    # a single file of the series reads the whole series; modality override
    assert read_volume(series_dir / "IM0000.dcm", modality="MR").modality == "MR"


def test_missing_slice_and_empty_folder(tmp_path):
    uid = generate_uid()
    for k in (0, 1, 3):
        _write_slice(tmp_path / f"s{k}.dcm", k, uid)
    with pytest.raises(InputError, match="uneven"):
        read_volume(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no DICOM"):
        read_volume(empty)


def test_several_series(series_dir, tmp_path_factory):
    with pytest.warns(InputWarning, match=r"holds 2 series: .*\(MR, 1 slice\); read the largest, .*\(CT, 4 slices\); choose another with --series N"):
        assert read_volume(series_dir).array.shape == (COLS, ROWS, N_SLICES)
    other = str(pydicom.dcmread(series_dir / "other.dcm").SeriesInstanceUID)
    picked = read_volume(series_dir, series=other)
    assert picked.array.shape == (COLS, ROWS, 1) and picked.modality == "MR"

    tie = tmp_path_factory.mktemp("tie")
    for number in (3, 7):
        uid = generate_uid()
        for k in range(N_SLICES):
            _write_slice(tie / f"s{number}_{k}.dcm", k, uid, number=number)
    with pytest.raises(InputError, match=r"several series of the same size: choose one with --series N.*"
                                         r"3 \(CT series 3, 4 slices\); 7 \(CT series 7, 4 slices\)"):
        read_volume(tie)
    assert read_volume(tie, series=7).array.shape == (COLS, ROWS, N_SLICES)
    with pytest.raises(InputError, match="has no series '9'; it holds: 3"):
        read_volume(tie, series="9")


def test_segment_series_flag(series_dir, tmp_path, capsys):
    from napari_s2vnet.cli import main

    assert main(["segment", str(series_dir), "-o", str(tmp_path / "o.nii.gz"), "--series", "9"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "has no series '9'; it holds: " in err
