"""Reading a DICOM image series (pydicom, imported lazily: ``pip install 'napari-s2vnet[dicom]'``).

The folder (searched recursively) may hold several series (``SeriesInstanceUID``): ``series``
chooses one by its ``SeriesNumber`` or UID; without it the one with the most slices is read, with an
:class:`InputWarning` that lists the others (a tie for the most slices is an :class:`InputError`
that lists them all). Slices are sorted by the projection of ``ImagePositionPatient``
on the slice normal ``n = row_dir x col_dir`` (``ImageOrientationPatient``), and stored values are
converted with ``RescaleSlope``/``RescaleIntercept`` to float32 (Hounsfield units for CT).

File order follows the NIfTI convention: ``array[i, j, k]`` with ``i`` = column, ``j`` = row and
``k`` = slice index along increasing ``n``. In DICOM patient coordinates (LPS mm) voxel ``(i, j, k)``
lies at ``P0 + i * dc * row_dir + j * dr * col_dir + k * step`` where ``P0`` is the first slice's
``ImagePositionPatient``, ``(dr, dc) = PixelSpacing`` (row spacing, column spacing) and ``step`` the
mean position difference between consecutive slices. The returned affine is that LPS affine with
its first two rows negated, i.e. RAS mm like nibabel.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import warn
from .geometry import Geometry
from .io import Volume, guess_modality


def _import_pydicom():
    try:
        import pydicom
    except ImportError as exc:
        raise InputError("reading DICOM needs pydicom: pip install 'napari-s2vnet[dicom]'") from exc
    return pydicom


def _series_headers(folder: Path) -> dict[str, list]:
    """Image headers (no pixel data) grouped by SeriesInstanceUID."""
    pydicom = _import_pydicom()
    series: dict[str, list] = defaultdict(list)
    for root, _dirs, files in os.walk(folder):
        for fname in sorted(files):
            try:
                ds = pydicom.dcmread(os.path.join(root, fname), stop_before_pixels=True)
            except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
                continue  # not a DICOM file (README, DICOMDIR index, ...)
            required = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows")
            if all(hasattr(ds, tag) for tag in required):
                series[str(getattr(ds, "SeriesInstanceUID", ""))].append(ds)
    return series


def _describe(uid: str, headers: list) -> str:
    ds = headers[0]
    number = getattr(ds, "SeriesNumber", None)
    what = " ".join(str(v) for v in (getattr(ds, "Modality", ""), getattr(ds, "SeriesDescription", "")) if v)
    name = f"{number}" if number not in (None, "") else uid
    return f"{name} ({what + ', ' if what else ''}{len(headers)} slice{'s' * (len(headers) != 1)})"


def _choose_series(folder: Path, series: dict[str, list], chosen: str | None) -> list:
    """The headers of the series ``chosen`` names (SeriesNumber or UID), else of the largest one."""
    listing = "; ".join(_describe(uid, h) for uid, h in sorted(series.items(), key=lambda kv: -len(kv[1])))
    if chosen is not None:
        for uid, headers in series.items():
            if str(chosen) in (uid, str(getattr(headers[0], "SeriesNumber", "")).strip()):
                return headers
        raise InputError(f"'{folder}' has no series {chosen!r}; it holds: {listing}")
    if len(series) == 1:
        return next(iter(series.values()))
    ranked = sorted(series.items(), key=lambda kv: -len(kv[1]))
    if len(ranked[0][1]) == len(ranked[1][1]):
        raise InputError(f"'{folder}' holds several series of the same size: choose one with --series N "
                         f"(read_volume(..., series=N)); it holds: {listing}")
    warn(f"'{folder}' holds {len(series)} series: {listing}; read the largest, {_describe(*ranked[0])}; "
         "choose another with --series N (its SeriesNumber or UID)")
    return ranked[0][1]


def read_dicom_series(folder: str | os.PathLike, series: str | int | None = None) -> Volume:
    """Read one image series under ``folder`` (``series``: its SeriesNumber or UID; default the
    largest) into a float32 file-order :class:`Volume`."""
    pydicom = _import_pydicom()
    folder = Path(folder)
    found = _series_headers(folder)
    if not found:
        raise InputError(f"cannot read '{folder}': no DICOM image slices found in this folder")
    headers = _choose_series(folder, found, None if series is None else str(series))

    orient = np.asarray(headers[0].ImageOrientationPatient, dtype=np.float64)
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    shape2d = (int(headers[0].Rows), int(headers[0].Columns))
    for ds in headers:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), orient, atol=1e-4):
            raise InputError(f"cannot read '{folder}': slices of the series have different orientations")
        if (int(ds.Rows), int(ds.Columns)) != shape2d:
            raise InputError(f"cannot read '{folder}': slices of the series have different sizes")

    positions = np.array([np.asarray(ds.ImagePositionPatient, dtype=np.float64) for ds in headers])
    order = np.argsort(positions @ normal, kind="stable")
    headers = [headers[i] for i in order]
    positions = positions[order]

    if len(headers) > 1:
        gaps = np.diff(positions @ normal)
        if gaps.min() < 1e-3 or np.abs(gaps - np.median(gaps)).max() > 0.1 * np.median(gaps):
            raise InputError(
                f"cannot read '{folder}': uneven or repeated slice positions "
                f"(gaps {gaps.min():.3g}..{gaps.max():.3g} mm; missing slices or several volumes?)"
            )
        step = (positions[-1] - positions[0]) / (len(headers) - 1)
    else:
        step = normal * float(getattr(headers[0], "SliceThickness", 1.0) or 1.0)

    array = np.empty((shape2d[1], shape2d[0], len(headers)), dtype=np.float32)
    for k, ds in enumerate(headers):
        try:
            pixels = pydicom.dcmread(ds.filename).pixel_array
        except Exception as exc:  # compressed transfer syntax without a decoder, truncated file, ...
            raise InputError(f"cannot read the pixels of '{ds.filename}': {exc}") from exc
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        array[:, :, k] = (pixels.astype(np.float32) * slope + intercept).T

    dr, dc = (float(v) for v in headers[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps

    tag = str(getattr(headers[0], "Modality", "")).upper()
    modality = tag if tag in ("CT", "MR") else guess_modality(array)
    return Volume(array, Geometry(affine, array.shape), modality, str(folder))
