"""Autosave of an annotation session in a sidecar folder, crash-safe.

The sidecar folder (default: ``<image name>.s2vnet/`` next to the image; for bundled samples and
read-only folders a per-image folder under the user cache) holds:

* ``labels-<generation>.nii.gz``: the labels of one round on the source grid (file order, source
  affine); a new file (generation + 1) for every save;
* ``state.json``: classes, clicks in effect, model id, image fingerprint, time stamp, and the name
  and digest of the labels file of the same round.

Every file is written to a temporary name in the same folder, ``fsync``-ed and renamed
(``os.replace``), so a crash never leaves a half-written file under a name that is read. The labels
are written first under a new name, then ``state.json`` is replaced (the commit point), and only
then are older labels files deleted. So a process killed at any moment (SIGKILL in the middle of a
save or of a propagation) leaves ``state.json`` pointing at the complete labels of the last round
whose save finished: :func:`find` restores exactly that round, and refuses a labels file whose
digest differs from the one recorded. Temporary files left by a killed writer are never read and are
removed by a later save. Autosaves of the first format (one ``labels.nii.gz``) are still read.

Nothing here touches Qt: the dock snapshots its state on the main thread and hands it to
:func:`save` (which it runs on a background thread).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
LABELS_FILE = "labels.nii.gz"  # the labels file of first-format autosaves (no generation number)
LABELS_NAME = re.compile(r"^labels-(\d{1,12})\.nii\.gz$")
#: temporary files of a writer are removed by a later save once they are this old (a live writer in
#: another process may still be renaming a younger one)
STALE_TEMP_S = 30.0
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
    clicks: list[dict[str, Any]] = field(default_factory=list)  # {z, y, x, label, positive}, or a box / scribble
    # (inference.prompts.prompt_to_dict)
    rounds: int = 0
    saved_at: float = 0.0
    labels_file: str = LABELS_FILE  # the labels of this round, in the same folder
    labels_digest: str = ""  # blake2b of that file's bytes ("" in first-format autosaves: not checked)
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
    """Write ``text`` to ``path`` through a temporary file in the same folder, fsync and a rename."""
    from napari_s2vnet.widget.writer import fsync_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_digest(path: str | Path) -> str:
    """blake2b (24 hex digits) of a file's bytes."""
    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _generation(name: str) -> int:
    match = LABELS_NAME.match(name)
    return int(match.group(1)) if match else 0


def _remove_stale_temps(folder: Path, keep: str | None = None) -> None:
    """Delete what killed writers left: old temporary files, and labels files no state points at."""
    now = time.time()
    for p in folder.iterdir():
        try:
            if p.name.startswith((f".{STATE_FILE}.", ".labels")) and now - p.stat().st_mtime >= STALE_TEMP_S:
                p.unlink()
            elif keep is not None and p.name != keep and (p.name == LABELS_FILE or LABELS_NAME.match(p.name)):
                p.unlink()
        except OSError:
            pass


def save(folder: str | Path, labels_zyx: np.ndarray, state: AutosaveState, metadata: dict | None, scale: Any = None) -> Path:
    """Write the labels, then ``state.json`` pointing at them, into ``folder``; then delete older labels.

    ``state.json`` is replaced last: until then a crash leaves the previous round's state and labels
    intact (the new labels file is an orphan that the next save deletes).
    """
    from napari_s2vnet.widget.writer import atomic_write_labels

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(folder)
    generation = 1 + max((_generation(p.name) for p in folder.iterdir()), default=0)
    name = f"labels-{generation:06d}.nii.gz"
    atomic_write_labels(folder / name, labels_zyx, metadata, scale)
    state.labels_file, state.labels_digest = name, file_digest(folder / name)
    state.saved_at = time.time()
    atomic_write_text(folder / STATE_FILE, state.to_json())  # the commit point
    _remove_stale_temps(folder, keep=name)
    return folder


def _read_state(folder: Path) -> AutosaveState | None:
    try:
        state = AutosaveState.from_json((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError, AttributeError, OSError):
        return None
    name = state.labels_file
    if not isinstance(name, str) or not (name == LABELS_FILE or LABELS_NAME.match(name)):
        return None  # never a path outside the folder
    return state


def find(folder: str | Path, fingerprint: str) -> AutosaveState | None:
    """The autosave in ``folder`` when it exists, is complete (its labels file is there with the
    recorded digest) and belongs to this image."""
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        return None
    state = _read_state(folder)
    if state is None or state.fingerprint != fingerprint:
        return None
    labels = folder / state.labels_file
    try:
        if not labels.is_file() or (state.labels_digest and file_digest(labels) != state.labels_digest):
            return None
    except OSError:
        return None
    return state


def load_labels(folder: str | Path, metadata: dict | None, internal_shape: tuple[int, ...], scale: Any = None,
                state: AutosaveState | None = None) -> np.ndarray:
    """The autosaved labels of ``state`` (default: the folder's current state) in internal order
    (``uint16``), checked against the image grid and the recorded digest."""
    import nibabel as nib

    from napari_s2vnet.widget.reader import layer_geometry

    folder = Path(folder)
    state = state if state is not None else _read_state(folder)
    if state is None:
        raise ValueError(f"no readable autosave in {folder}")
    path = folder / state.labels_file
    if state.labels_digest and file_digest(path) != state.labels_digest:
        raise ValueError(f"{path} is not the file this autosave recorded (digest differs)")
    geometry = layer_geometry(tuple(internal_shape), metadata, scale)
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    if tuple(data.shape) != tuple(geometry.shape):
        raise ValueError(f"autosaved labels have shape {data.shape}, the image grid is {geometry.shape}")
    return geometry.to_internal(data).astype(np.uint16)
