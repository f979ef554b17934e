"""npe2 writers: a Labels layer -> NIfTI on the source grid, or a TIFF stack.

The layer data is in internal ``(z, y, x)`` order. For NIfTI the source grid is rebuilt from
``layer.metadata["s2vnet"]`` (affine + file-order shape, see :mod:`.reader`), the labels are put
back in file order and written with that exact affine, so the file overlays the source image in any
viewer. A layer without that metadata is written on a plain grid with its ``scale`` as spacing.
Writes are atomic and durable: a temporary file in the target folder, ``fsync``, a rename
(``os.replace``), then an ``fsync`` of the folder, so a crash (even SIGKILL or a power cut after
the call returned) leaves either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from napari_s2vnet.widget.reader import layer_geometry

NIFTI_EXTENSIONS = (".nii", ".nii.gz")
TIFF_EXTENSIONS = (".tif", ".tiff")


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in NIFTI_EXTENSIONS[::-1] + TIFF_EXTENSIONS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_labels(path: str | os.PathLike, labels_zyx: np.ndarray, metadata: dict | None, scale: Any = None) -> Path:
    """Write internal-order labels to ``path`` (``.nii``, ``.nii.gz``, ``.tif``, ``.tiff``) atomically."""
    from napari_s2vnet.data.io import write_labels

    target = Path(path)
    ext = _extension(target)
    if ext not in NIFTI_EXTENSIONS + TIFF_EXTENSIONS:
        target = target.with_name(target.name + ".nii.gz")
        ext = ".nii.gz"
    labels_zyx = np.asarray(labels_zyx)
    geometry = layer_geometry(labels_zyx.shape, metadata, scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=ext, dir=target.parent)
    os.close(fd)
    try:
        write_labels(tmp_name, geometry.from_internal(labels_zyx), geometry)
        fsync_file(tmp_name)
        os.replace(tmp_name, target)
        fsync_dir(target.parent)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _write(path: str, data: Any, meta: dict, extensions: tuple[str, ...], default: str) -> list[str]:
    p = Path(path)
    if _extension(p) not in extensions:
        p = p.with_name(p.name + default)
    return [str(atomic_write_labels(p, np.asarray(data), meta.get("metadata"), meta.get("scale")))]


def write_labels_nifti(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: Labels -> ``.nii``/``.nii.gz`` on the source grid."""
    return _write(path, data, meta, NIFTI_EXTENSIONS, ".nii.gz")


def write_labels_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: Labels -> ``.tif``/``.tiff`` (internal order, spacing in mm)."""
    return _write(path, data, meta, TIFF_EXTENSIONS, ".tif")
