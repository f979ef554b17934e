"""npe2 readers: NIfTI files and DICOM series folders as napari layers in internal ``(z, y, x)`` order.

Layers are displayed in the internal order of ``docs/architecture.md`` (axial slices, anterior at
the top, patient right on the left) with ``scale`` = the internal voxel spacing in mm. The source
grid (file-order affine and shape) is kept in ``layer.metadata["s2vnet"]`` so that the writer
(:mod:`napari_s2vnet.widget.writer`) and the dock can write labels back on exactly that grid.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from napari_s2vnet.data.geometry import Geometry
from napari_s2vnet.errors import InputError, InputWarning

#: key of the plugin's entry in ``layer.metadata``
META_KEY = "s2vnet"
NIFTI_PATTERNS = ("*.nii", "*.nii.gz")
_LABEL_HINTS = ("label", "seg", "mask", "annotation")
#: a 4-D / 5-D file opens as at most this many 3-D layers
MAX_VOLUME_LAYERS = 8

LayerData = tuple[Any, dict[str, Any], str]


def geometry_metadata(
    geometry: Geometry, modality: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """The ``layer.metadata["s2vnet"]`` entry describing a source grid (JSON-serialisable)."""
    return {
        "affine": np.asarray(geometry.affine, dtype=float).tolist(),
        "shape": [int(s) for s in geometry.shape],
        "modality": modality,
        "source": source,
    }


def geometry_from_metadata(metadata: dict[str, Any] | None) -> Geometry | None:
    """Rebuild the source :class:`Geometry` from layer metadata, or ``None`` if it holds none."""
    entry = (metadata or {}).get(META_KEY)
    if not entry or "affine" not in entry or "shape" not in entry:
        return None
    return Geometry(affine=np.asarray(entry["affine"], dtype=float), shape=tuple(entry["shape"]))


def layer_geometry(data_shape: tuple[int, ...], metadata: dict | None, scale: Any = None) -> Geometry:
    """Source geometry of a layer: from metadata when it matches ``data_shape``, else a plain grid.

    A layer without plugin metadata (e.g. opened by another reader) is taken to be in internal order
    already, with ``scale`` as its spacing.
    """
    geometry = geometry_from_metadata(metadata)
    if geometry is not None and tuple(geometry.internal_shape) == tuple(data_shape):
        return geometry
    spacing = tuple(float(s) for s in (scale if scale is not None else (1.0, 1.0, 1.0)))[-3:]
    return Geometry.from_spacing(spacing, tuple(int(s) for s in data_shape))


def _looks_like_labels(path: Path, on_disk_dtype: np.dtype | None) -> bool:
    name = path.name.lower()
    integer = on_disk_dtype is not None and np.issubdtype(on_disk_dtype, np.integer)
    return integer and any(h in name for h in _LABEL_HINTS)


def _layer_name(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def volume_to_layer_data(volume: Any, name: str, as_labels: bool = False) -> LayerData:
    """``data.io.Volume`` (file order) -> napari layer tuple in internal order."""
    geometry: Geometry = volume.geometry
    array = geometry.to_internal(volume.array)
    meta = geometry_metadata(geometry, volume.modality, volume.path)
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": tuple(geometry.internal_spacing),
        "metadata": {META_KEY: meta},
    }
    if as_labels:
        meta["kind"] = "labels"
        return (np.rint(array).astype(_label_dtype(array)), kwargs, "labels")
    meta["kind"] = "image"
    if volume.modality == "CT":
        kwargs["contrast_limits"] = (-160.0, 240.0)  # soft-tissue window
    else:
        lo, hi = np.percentile(array[:: max(1, array.shape[0] // 8)], (0.5, 99.5))
        kwargs["contrast_limits"] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    kwargs["colormap"] = "gray"
    return (array, kwargs, "image")


def _label_dtype(array: np.ndarray) -> type:
    return np.uint8 if array.size == 0 or float(array.max()) < 256 else np.uint16


def read_nifti(path: str | os.PathLike) -> list[LayerData]:
    """Read one NIfTI file as an Image layer (or a Labels layer for an integer ``*label*`` file).

    A 4-D or 5-D file becomes one 3-D layer per time point / channel (``name [t=1]``, at most
    ``MAX_VOLUME_LAYERS``, with a warning naming the rest), so the dock's image choice picks one.
    """
    import nibabel as nib

    from napari_s2vnet.data.io import read_volume, volume_choices

    p = Path(path)
    choices = volume_choices(p)
    if len(choices) > MAX_VOLUME_LAYERS:
        warnings.warn(f"'{p.name}' holds {len(choices)} volumes: opened the first {MAX_VOLUME_LAYERS} as layers; "
                      "segment another with napari-s2vnet segment --timepoint N / --channel N", InputWarning,
                      stacklevel=2)
    try:
        on_disk = np.dtype(nib.load(str(p)).get_data_dtype())
    except Exception:  # the volume is read below; the dtype is only a hint
        on_disk = None
    layers = []
    for choice in choices[:MAX_VOLUME_LAYERS] or [{}]:
        suffix = ", ".join(f"{key[0]}={i}" for key, i in choice.items())
        name = f"{_layer_name(p)} [{suffix}]" if suffix else _layer_name(p)
        layers.append(volume_to_layer_data(read_volume(p, **choice), name, _looks_like_labels(p, on_disk)))
    return layers


def read_dicom(path: str | os.PathLike) -> list[LayerData]:
    """Read a DICOM series (a folder, or one ``.dcm`` file of it) as an Image layer."""
    from napari_s2vnet.data.io import read_volume

    p = Path(path)
    volume = read_volume(p)
    folder = p if p.is_dir() else p.parent
    return [volume_to_layer_data(volume, folder.name or "DICOM")]


def _has_pydicom() -> bool:
    import importlib.util

    return importlib.util.find_spec("pydicom") is not None


def _folder_has_dicom(folder: Path, limit: int = 200) -> bool:
    """True when the folder (searched recursively, up to ``limit`` files) holds a DICOM file."""
    seen = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            seen += 1
            if seen > limit:
                return False
            if name.lower().endswith(".dcm"):
                return True
            try:
                with open(os.path.join(root, name), "rb") as fh:
                    head = fh.read(132)
            except OSError:
                continue
            if head[128:132] == b"DICM":
                return True
    return False


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: a reader function for a NIfTI file or a DICOM folder/file, else ``None``."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(os.fspath(path))
    name = p.name.lower()
    if name.endswith(".nii") or name.endswith(".nii.gz"):
        return _wrap(read_nifti)
    if (p.is_dir() or name.endswith(".dcm")) and _has_pydicom():
        folder = p if p.is_dir() else p.parent
        if _folder_has_dicom(folder):
            return _wrap(read_dicom)
    return None


def _wrap(func: Callable[[Any], list[LayerData]]) -> Callable[[Any], list[LayerData]]:
    """Accept a path or a one-element list of paths; turn unreadable input into an ``InputError``."""

    def reader(path: Any) -> list[LayerData]:
        if isinstance(path, list):
            path = path[0]
        try:
            return func(path)
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read '{path}': {exc}") from exc

    return reader
