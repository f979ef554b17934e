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
* ``sample:ct``, ``sample:mr``, ``sample:ct_labels``, ``sample:mr_labels``: the bundled files.

4-D and 5-D files hold several volumes: ``timepoint`` / ``channel`` choose one (NIfTI: the 4th axis
holds time points, or channels as in the Medical Segmentation Decathlon, the 5th axis channels;
TIFF: the ImageJ/OME ``T`` and ``C`` axes). Every image read goes through ``data/checks.py``
(non-finite voxels, zero voxel sizes, sheared axes); ``docs/robustness.md`` lists what each bad
input gets.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import affine_warnings, check_spacing, finite_image, warn
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
    sample = sample[np.isfinite(sample)]
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


def read_volume(path: str | os.PathLike, modality: str | None = None, *, channel: int | None = None,
                timepoint: int | None = None, series: str | int | None = None) -> Volume:
    """Read a NIfTI file, a TIFF stack, a DICOM series folder or a bundled ``sample:NAME`` into a
    float32 :class:`Volume`.

    ``modality`` (``"CT"``/``"MR"``) overrides the guess (DICOM ``Modality`` tag, else
    :func:`guess_modality`). ``channel`` / ``timepoint`` choose one volume of a 4-D or 5-D file,
    ``series`` (SeriesNumber or UID) one series of a DICOM folder (default: the largest).
    Problems raise :class:`~napari_s2vnet.errors.InputError`; changes made to the data (non-finite
    voxels replaced) are reported as :class:`~napari_s2vnet.errors.InputWarning`.
    """
    if str(path).startswith("sample:"):
        from .samples import sample_path

        path = sample_path(str(path).split(":", 1)[1])
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

        volume = read_dicom_series(p if p.is_dir() else p.parent, series)
        if modality is not None:
            volume.modality = modality
        volume.array = finite_image(volume.array, f"'{p.name}'")
        affine_warnings(volume.geometry.affine, f"'{p.name}'")
        return volume
    if series is not None:
        raise InputError(f"'{p.name}' is not a DICOM folder: it has no series to choose")
    if ext in (".nii", ".nii.gz"):
        array, geometry = _read_nifti(p, channel, timepoint)
    elif ext in (".tif", ".tiff"):
        array, geometry = _read_tiff(p, channel, timepoint)
    else:
        raise InputError(f"cannot read '{p.name}': unsupported file type ({_SUPPORTED})")
    array = finite_image(array, f"'{p.name}'")
    affine_warnings(geometry.affine, f"'{p.name}'")
    return Volume(array, geometry, modality or guess_modality(array), str(p))


def volume_choices(path: str | os.PathLike) -> list[dict[str, int]]:
    """The volumes a 4-D or 5-D NIfTI file holds, as :func:`read_volume` keyword arguments
    (``[{"timepoint": 0}, {"timepoint": 1}, ...]``, with ``"channel"`` where a 5th axis holds channels);
    ``[]`` for a 3-D file, another format, or a header that cannot be read (``read_volume`` reports it)."""
    p = Path(path)
    if p.is_dir() or _split_ext(p) not in (".nii", ".nii.gz"):
        return []
    import nibabel as nib

    try:
        with _quiet("nibabel.global"):
            shape = tuple(nib.load(str(p)).shape)
    except Exception:  # noqa: BLE001 -- a damaged header is read_volume's to report
        return []
    extra = (shape[3:5] + (1, 1))[:2] if len(shape) > 3 else (1, 1)
    sizes = {k: int(n) for k, n in zip(("timepoint", "channel"), extra) if n > 1}
    grid: list[dict[str, int]] = [{}]
    for key, n in sizes.items():
        grid = [{**g, key: i} for g in grid for i in range(n)]
    return grid if sizes else []


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence a library's logger (its complaints about a damaged file would break the one line)."""
    log = logging.getLogger(name)
    level, log.level = log.level, logging.CRITICAL + 1
    try:
        yield
    finally:
        log.level = level


def _choose(size: int, chosen: int | None, what: str, flag: str, name: str, shape: tuple[int, ...]) -> int:
    """Index along an axis of ``size`` ``what`` (time points, channels) that ``flag`` chooses."""
    if size == 1 and chosen in (None, 0):
        return 0
    if chosen is None:
        raise InputError(f"'{name}' holds {size} {what} (shape {shape}): choose one with {flag} N, "
                         f"N in 0..{size - 1} (Python: read_volume(..., {flag[2:]}=N))")
    if not 0 <= chosen < size:
        raise InputError(f"'{name}': {flag} {chosen} is out of range: it holds {size} {what} (0..{size - 1})")
    return chosen


def _nifti_header_check(path: Path) -> None:
    """Zero voxel sizes that nibabel would silently turn into 1 mm are an error (negative: warning)."""
    import nibabel as nib
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as f:
            raw = f.read(540)
        hdr = nib.Nifti1Header(raw[:348], check=False)
        if int(hdr["sizeof_hdr"]) != 348:
            hdr = nib.Nifti2Header(raw[:540], check=False)
        ndim = max(1, min(3, int(hdr["dim"][0])))
        pixdim = [float(v) for v in hdr["pixdim"][1 : 1 + ndim]]
        sform = int(hdr["sform_code"])
    except Exception:  # noqa: BLE001 -- not readable as a header: nib.load reports it
        return
    if sform > 0:
        return  # the affine comes from the sform rows; pixdim does not enter it
    if any(v == 0 or not np.isfinite(v) for v in pixdim):
        raise InputError(f"cannot read '{path.name}': its header gives a voxel size of "
                         f"{', '.join(f'{v:g}' for v in pixdim)} mm (pixdim); fix the header, e.g. with nibabel's "
                         "img.header.set_zooms(...)")
    if any(v < 0 for v in pixdim):
        warn(f"'{path.name}': its header gives negative voxel sizes ({', '.join(f'{v:g}' for v in pixdim)} mm); "
             "their absolute values were used, as nibabel does")


def _read_nifti(path: Path, channel: int | None = None, timepoint: int | None = None) -> tuple[np.ndarray, Geometry]:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    _nifti_header_check(path)
    try:
        with _quiet("nibabel.global"):  # header fixes it logs: our checks report what matters
            img = nib.load(str(path))
        proxy, shape = img.dataobj, tuple(img.shape)
        index: tuple = ()
        if len(shape) > 3:
            if len(shape) > 5 and max(shape[5:]) > 1:
                raise InputError(f"cannot read '{path.name}': expected at most 5 axes, got shape {shape}")
            sizes = shape[3:5] + (1,) * (5 - len(shape[:5]))
            axis4 = (timepoint, "time points", "--timepoint")
            if channel is not None and timepoint is None and sizes[1] == 1:  # channels on the 4th axis (MSD)
                axis4, channel = (channel, "channels", "--channel"), None
            picks = (_choose(sizes[0], *axis4, path.name, shape),
                     _choose(sizes[1], channel, "channels", "--channel", path.name, shape))
            index = (slice(None),) * 3 + picks[: len(shape) - 3] + (0,) * max(0, len(shape) - 5)
        elif channel not in (None, 0) or timepoint not in (None, 0):
            raise InputError(f"'{path.name}' is a single 3-D volume: it has no channels or time points to choose")
        array = np.asarray(proxy[index] if index else proxy, dtype=np.float32)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, ImageFileError) as exc:
        raise InputError(f"cannot read '{path.name}': {exc}") from exc
    except Exception as exc:  # noqa: BLE001 -- a damaged header can fail deep inside nibabel or zlib
        raise InputError(f"cannot read '{path.name}': not a readable NIfTI ({type(exc).__name__}: {exc})") from exc
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


def _read_tiff(path: Path, channel: int | None = None, timepoint: int | None = None) -> tuple[np.ndarray, Geometry]:
    import tifffile

    try:
        with _quiet("tifffile"), tifffile.TiffFile(str(path)) as tif:
            array = tif.asarray()
            axes = tif.series[0].axes if tif.series else ""
            spacing = _tiff_spacing(tif, path.name)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a damaged TIFF raises many kinds (KeyError, RuntimeError, ...)
        raise InputError(f"cannot read '{path.name}': not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    spacing = check_spacing(spacing, f"cannot read '{path.name}': the TIFF metadata gives a voxel size")
    if len(axes) == array.ndim:
        for letter, chosen, what, flag in (("T", timepoint, "time points", "--timepoint"),
                                           ("C", channel, "channels", "--channel")):
            if letter in axes:
                axis = axes.index(letter)
                array = np.take(array, _choose(array.shape[axis], chosen, what, flag, path.name, array.shape), axis)
                axes = axes.replace(letter, "")
    array = _as_3d(np.asarray(array, dtype=np.float32), path.name, first_axes_fixed=False)
    return array, Geometry.from_spacing(spacing, array.shape)


def check_output_path(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can be written (creating missing parent folders)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"cannot write '{p}': it is a folder; give a file name such as {p / 'labels.nii.gz'}")
    if _split_ext(p) not in (".nii", ".nii.gz", ".tif", ".tiff"):
        raise InputError(f"cannot write '{p}': unsupported file type (expected .nii.gz, .nii, .tif or .tiff)")
    blocker = next((a for a in reversed(p.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise InputError(f"cannot write '{p}': '{blocker}' is a file, not a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder '{p.parent}' for the output: {exc.strerror or exc}") from None
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"cannot write '{p}': permission denied")
    return p


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
