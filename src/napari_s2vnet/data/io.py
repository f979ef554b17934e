"""Reading and writing volumes: NIfTI, TIFF and DICOM series.

Arrays are returned and written in **file order** together with a :class:`Geometry`
(see ``data/geometry.py`` and ``docs/architecture.md``):

* NIfTI (``.nii``, ``.nii.gz``): nibabel voxel order; the affine is nibabel's ``img.affine`` (sform,
  else qform). Labels are written with that affine as both qform and sform (code 1), so a written
  file reads back with the same shape and affine.
* TIFF (``.tif``, ``.tiff``): a ``(Z, Y, X)`` stack in internal order (``Geometry.from_spacing``).
  The voxel size comes from ImageJ metadata (``spacing`` for z, X/YResolution for y/x, in the
  ImageJ ``unit``) or from OME ``PhysicalSize*``; mm is assumed when no unit is given and 1 mm when
  no size is given. TIFFs are *written* in internal order (``geometry.to_internal``) with the
  internal spacing as ImageJ metadata in mm, so they read back as the internal-order volume.
* DICOM: a folder holding a series (or one of its files), see ``data/dicom.py``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .geometry import Geometry

_SUPPORTED = "expected .nii, .nii.gz, .tif, .tiff or a DICOM folder"
_MM_PER_UNIT = {
    "mm": 1.0, "millimeter": 1.0, "millimetre": 1.0,
    "cm": 10.0, "centimeter": 10.0, "centimetre": 10.0,
    "m": 1000.0, "meter": 1000.0, "metre": 1000.0,
    "um": 1e-3, "µm": 1e-3, "μm": 1e-3, "\\u00b5m": 1e-3, "micron": 1e-3, "micrometer": 1e-3,
    "nm": 1e-6, "nanometer": 1e-6,
    "": 1.0, "pixel": 1.0, "pixels": 1.0,
}


@dataclass
class Volume:
    """An image volume in file order with its geometry."""

    array: np.ndarray
    geometry: Geometry
    modality: str | None = None
    path: str | None = None


def guess_modality(array: np.ndarray) -> str:
    """``"CT"`` when the intensities look like Hounsfield units (1st percentile < -500 and
    maximum > 500), else ``"MR"``."""
    flat = np.asarray(array).ravel()
    sample = flat[:: max(1, flat.size // 2_000_000)]
    if sample.size == 0:
        return "MR"
    return "CT" if np.percentile(sample, 1) < -500 and sample.max() > 500 else "MR"


def _split_ext(path: Path) -> str:
    name = path.name.lower()
    for ext in (".nii.gz", ".nii", ".tiff", ".tif", ".dcm"):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _as_3d(array: np.ndarray, name: str, first_axes_fixed: bool) -> np.ndarray:
    """Drop singleton axes until the array is 3-D; anything else is an :class:`InputError`.

    With ``first_axes_fixed`` (NIfTI: the affine describes the first three axes) only axes after
    the third may be dropped.
    """
    while array.ndim > 3:
        start = 3 if first_axes_fixed else 0
        singles = [a for a in range(start, array.ndim) if array.shape[a] == 1]
        if not singles:
            break
        array = np.squeeze(array, axis=singles[0])
    if array.ndim != 3:
        raise InputError(
            f"cannot read '{name}': expected a single 3-D volume, got an array of shape {array.shape}"
        )
    return array


def read_volume(path: str | os.PathLike, modality: str | None = None) -> Volume:
    """Read a NIfTI file, a TIFF stack or a DICOM series folder into a float32 :class:`Volume`.

    ``modality`` (``"CT"``/``"MR"``) overrides the guess (DICOM ``Modality`` tag, else
    :func:`guess_modality`).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"cannot read '{p}': no such file or folder")
    if modality is not None:
        modality = modality.upper()
        if modality not in ("CT", "MR"):
            raise InputError(f"unknown modality '{modality}': expected 'CT' or 'MR'")
    ext = "" if p.is_dir() else _split_ext(p)
    if p.is_dir() or ext == ".dcm":
        from .dicom import read_dicom_series

        volume = read_dicom_series(p if p.is_dir() else p.parent)
        if modality is not None:
            volume.modality = modality
        return volume
    if ext in (".nii", ".nii.gz"):
        array, geometry = _read_nifti(p)
    elif ext in (".tif", ".tiff"):
        array, geometry = _read_tiff(p)
    else:
        raise InputError(f"cannot read '{p.name}': unsupported file type ({_SUPPORTED})")
    return Volume(array, geometry, modality or guess_modality(array), str(p))


def _read_nifti(path: Path) -> tuple[np.ndarray, Geometry]:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(path))
        array = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, ValueError, EOFError, ImageFileError) as exc:
        raise InputError(f"cannot read '{path.name}': {exc}") from exc
    array = _as_3d(array, path.name, first_axes_fixed=True)
    return array, Geometry(img.affine, array.shape)


def _unit_to_mm(unit: str | None, name: str) -> float:
    key = (unit or "").strip().lower()
    if key not in _MM_PER_UNIT:
        raise InputError(f"cannot read '{name}': unknown length unit '{unit}' in the TIFF metadata")
    return _MM_PER_UNIT[key]


def _tiff_spacing(tif, name: str) -> tuple[float, float, float]:
    """``(sz, sy, sx)`` in mm from ImageJ or OME metadata (1 mm where absent)."""
    if tif.is_ome and tif.ome_metadata:
        root = ET.fromstring(tif.ome_metadata)
        pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
        if pixels is not None:
            sizes = []
            for ax in "ZYX":
                value = pixels.get(f"PhysicalSize{ax}")
                unit = pixels.get(f"PhysicalSize{ax}Unit", "µm")  # the OME default unit
                sizes.append(float(value) * _unit_to_mm(unit, name) if value else 1.0)
            return tuple(sizes)
    ij = tif.imagej_metadata or {}
    factor = _unit_to_mm(ij.get("unit"), name)
    tags = tif.pages[0].tags
    unit_tag = tags.get("ResolutionUnit")
    if not ij and unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
        factor = 10.0
    elif not ij and unit_tag is not None and int(unit_tag.value) == 2:  # inch: a print DPI, ignore
        return (1.0, 1.0, 1.0)

    def size(tag_name: str) -> float:
        tag = tags.get(tag_name)
        if tag is None:
            return 1.0
        num, den = tag.value
        return factor * den / num if num else 1.0

    sz = factor * float(ij["spacing"]) if "spacing" in ij else 1.0
    return (sz, size("YResolution"), size("XResolution"))


def _read_tiff(path: Path) -> tuple[np.ndarray, Geometry]:
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            array = tif.asarray()
            spacing = _tiff_spacing(tif, path.name)
    except (OSError, ValueError, ET.ParseError) as exc:
        raise InputError(f"cannot read '{path.name}': {exc}") from exc
    array = _as_3d(np.asarray(array, dtype=np.float32), path.name, first_axes_fixed=False)
    return array, Geometry.from_spacing(spacing, array.shape)


def write_labels(path: str | os.PathLike, labels: np.ndarray, geometry: Geometry) -> None:
    """Write a file-order label array (uint8 when the maximum is < 256, else uint16)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise InputError("labels must lie in [0, 65535] to be written")
    dtype = np.uint8 if labels.size == 0 or labels.max() < 256 else np.uint16
    _write(Path(path), labels.astype(dtype, copy=False), geometry)


def write_volume(path: str | os.PathLike, array: np.ndarray, geometry: Geometry) -> None:
    """Write a file-order image array as float32."""
    _write(Path(path), np.asarray(array, dtype=np.float32), geometry)


def _write(path: Path, array: np.ndarray, geometry: Geometry) -> None:
    if array.shape != geometry.shape:
        raise ValueError(f"array shape {array.shape} does not match the geometry {geometry.shape}")
    ext = _split_ext(path)
    if ext in (".nii", ".nii.gz"):
        import nibabel as nib

        img = nib.Nifti1Image(array, geometry.affine)
        img.set_qform(geometry.affine, code=1)
        img.set_sform(geometry.affine, code=1)
        img.header.set_xyzt_units("mm")
        nib.save(img, str(path))
    elif ext in (".tif", ".tiff"):
        import tifffile

        sz, sy, sx = geometry.internal_spacing
        tifffile.imwrite(
            str(path),
            geometry.to_internal(array),
            imagej=True,
            resolution=(1.0 / sx, 1.0 / sy),
            metadata={"spacing": sz, "unit": "mm", "axes": "ZYX"},
        )
    else:
        raise InputError(
            f"cannot write '{path.name}': unsupported file type (expected .nii, .nii.gz, .tif or .tiff)"
        )
