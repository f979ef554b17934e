"""Autosave of an annotation session in a sidecar folder, with atomic writes.

The sidecar folder (default: ``<image name>.s2vnet/`` next to the image; for bundled samples and
read-only folders a per-image folder under the user cache) holds:

* ``labels.nii.gz``: the labels on the source grid (file order, source affine);
* ``state.json``: classes, clicks in effect, model id, image fingerprint, time stamp.

Every file is written to a temporary name in the same folder and renamed (``os.replace``), so a
crash never leaves a half-written file. Nothing here touches Qt: the dock snapshots its state on
the main thread and hands it to :func:`save` (which it runs on a background thread).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
LABELS_FILE = "labels.nii.gz"
FORMAT = "napari-s2vnet-autosave-1"
SIDECAR_SUFFIX = ".s2vnet"


@dataclass
class ClassEntry:
    """One row of the class list."""

    label: int
    name: str
    color: list[float]
    from_model: bool = False


@dataclass
class AutosaveState:
    """Everything but the labels: what ``state.json`` holds."""

    fingerprint: str
    image_name: str = ""
    model_id: str | None = None
    classes: list[ClassEntry] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)  # {z, y, x, label, positive}
    rounds: int = 0
    saved_at: float = 0.0
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> AutosaveState:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ValueError(f"not an autosave of this version: {raw.get('format')!r}")
        raw["classes"] = [ClassEntry(**c) for c in raw.get("classes", [])]
        return cls(**raw)


FULL_HASH_BYTES = 64 << 20


def image_fingerprint(array: np.ndarray, affine: Any = None) -> str:
    """Content hash of an image (shape, dtype, voxel values and the affine), 24 hex digits.

    Volumes up to 64 MB are hashed whole; larger ones through 64 evenly spaced whole slices (so
    selecting a large image does not stall the UI; two images that differ only between those slices
    would share a fingerprint).
    """
    h = hashlib.blake2b(digest_size=12)
    arr = np.asarray(array)
    h.update(repr((arr.shape, str(arr.dtype))).encode())
    if affine is not None:
        h.update(np.round(np.asarray(affine, dtype=np.float64), 4).tobytes())
    if arr.nbytes > FULL_HASH_BYTES and arr.ndim >= 3:
        arr = arr[:: max(1, arr.shape[0] // 64)]
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return h.hexdigest()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "napari-s2vnet" / "autosave"


def _is_writable_dir(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def _inside_package(path: Path) -> bool:
    package_root = Path(__file__).resolve().parent.parent
    try:
        path.resolve().relative_to(package_root)
    except ValueError:
        return False
    return True


def _stem(name: str) -> str:
    for ext in (".nii.gz", ".nii", ".tiff", ".tif", ".dcm"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def default_sidecar(source: str | None, image_name: str, fingerprint: str, root: str | Path | None = None) -> Path:
    """Sidecar folder for an image.

    ``root`` (a user-chosen folder) wins; else ``<image>.s2vnet`` next to the source file/folder when
    that folder is writable and not the package's bundled samples; else the user cache.
    """
    if root:
        return Path(root) / f"{_stem(image_name) or 'image'}-{fingerprint[:12]}{SIDECAR_SUFFIX}"
    if source:
        src = Path(source)
        parent = src.parent
        if _is_writable_dir(parent) and not _inside_package(src):
            return parent / f"{_stem(src.name)}{SIDECAR_SUFFIX}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in _stem(image_name)) or "image"
    return _cache_root() / f"{safe}-{fingerprint[:12]}{SIDECAR_SUFFIX}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(folder: str | Path, labels_zyx: np.ndarray, state: AutosaveState, metadata: dict | None, scale: Any = None) -> Path:
    """Write the labels and ``state.json`` into ``folder`` (labels first, so the state never points
    at labels that were not written)."""
    from napari_s2vnet.widget.writer import atomic_write_labels

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_labels(folder / LABELS_FILE, labels_zyx, metadata, scale)
    state.saved_at = time.time()
    atomic_write_text(folder / STATE_FILE, state.to_json())
    return folder


def find(folder: str | Path, fingerprint: str) -> AutosaveState | None:
    """The autosave in ``folder`` when it exists, is readable and belongs to this image."""
    folder = Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file() or not (folder / LABELS_FILE).is_file():
        return None
    try:
        state = AutosaveState.from_json(state_file.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError, OSError):
        return None
    return state if state.fingerprint == fingerprint else None


def load_labels(folder: str | Path, metadata: dict | None, internal_shape: tuple[int, ...], scale: Any = None) -> np.ndarray:
    """The autosaved labels in internal order (``uint16``), checked against the image grid."""
    import nibabel as nib

    from napari_s2vnet.widget.reader import layer_geometry

    geometry = layer_geometry(tuple(internal_shape), metadata, scale)
    img = nib.load(str(Path(folder) / LABELS_FILE))
    data = np.asarray(img.dataobj)
    if tuple(data.shape) != tuple(geometry.shape):
        raise ValueError(f"autosaved labels have shape {data.shape}, the image grid is {geometry.shape}")
    return geometry.to_internal(data).astype(np.uint16)
