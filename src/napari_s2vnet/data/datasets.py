"""Discovery of training/evaluation cases (image + label pairs) in user folders.

Recognised layouts (checked in this order by :func:`discover`):

* ``nnunet_v2``: ``dataset.json`` (``"labels": {name: id}``, ``"file_ending"``) with
  ``imagesTr/<case>_0000<ending>`` and ``labelsTr/<case><ending>``; only channel ``_0000`` is used.
* ``msd`` / ``nnunet_v1``: ``dataset.json`` with ``"labels": {id: name}`` and optionally
  ``"training": [{"image", "label"}]``; images are ``imagesTr/<case>.nii.gz`` (MSD) or
  ``imagesTr/<case>_0000.nii.gz`` (nnU-Net v1).
* ``totalsegmentator``: ``<case>/ct.nii.gz`` + ``<case>/segmentations/<class name>.nii.gz`` binary
  masks (or a single such case folder). ``Case.label`` is the ``segmentations`` folder; the masks
  are merged by :func:`load_case_labels`. Class ids are TotalSegmentator's "total" ids when the
  name matches, else sequential ids after the largest "total" id (in name order).
* ``pairs``: ``images/`` + ``labels/`` with identical file names, or ``<case>_image<ext>`` beside
  ``<case>_label<ext>`` (or ``_labels``). Class names come from a ``classes.json``
  (``{id: name}``) in the folder, else every label file is read and ids are named ``class_<id>``.

Hidden files (``.*``, e.g. macOS ``._`` files in MSD archives) are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_s2vnet.data.io import read_volume
from napari_s2vnet.data.samples import sample_class_names, sample_path
from napari_s2vnet.errors import InputError

_EXTS = (".nii.gz", ".nii", ".tiff", ".tif")


@dataclass(frozen=True)
class Case:
    """One image and its labels (a label file, or a TotalSegmentator ``segmentations`` folder)."""

    image: Path
    label: Path
    name: str


@dataclass
class DatasetSpec:
    """Cases of one dataset, its foreground classes ``{id: name}`` and the detected layout."""

    cases: list[Case]
    class_names: dict[int, str]
    layout: str


def discover(root: Path | str) -> DatasetSpec:
    """Find the cases under ``root``; :class:`InputError` when no known layout matches."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"cannot use '{root}' as a dataset: not a folder")
    for finder in (_find_nnunet, _find_totalsegmentator, _find_pairs):
        spec = finder(root)
        if spec is not None and spec.cases:
            return spec
    raise InputError(
        f"no training cases found in {root}: expected nnU-Net raw (dataset.json, imagesTr, labelsTr), "
        "MSD, TotalSegmentator (sXXXX/ct.nii.gz + segmentations/) or images/ + labels/ folders"
    )


def load_case_labels(case: Case, class_names: dict[int, str]) -> np.ndarray:
    """Integer labels of ``case`` in file order (the image's voxel grid), uint8 or uint16.

    A label file is read as is; a folder of binary masks is merged, mask ``<name>.nii.gz`` painting
    the id of ``name`` in ascending id order (a later id wins where masks overlap). Ids not in
    ``class_names`` (and masks whose name is not in it) become background 0.
    """
    ids = np.array(sorted(class_names), dtype=np.int64)
    dtype = np.uint8 if ids.size == 0 or ids.max() < 256 else np.uint16
    if not case.label.is_dir():
        labels = np.rint(read_volume(case.label).array).astype(np.int32)
        labels[~np.isin(labels, ids)] = 0
        return labels.astype(dtype)
    import nibabel as nib

    shape = tuple(nib.load(str(case.image)).shape[:3])
    labels = np.zeros(shape, dtype)
    by_name = {name: i for i, name in class_names.items()}
    for path in sorted(_mask_files(case.label), key=lambda p: by_name.get(_stem(p), -1)):
        if _stem(path) not in by_name:
            continue
        try:
            mask = np.asarray(nib.load(str(path)).dataobj)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"cannot read mask '{path}': {exc}") from exc
        if mask.shape[:3] != shape:
            raise InputError(f"mask '{path}' has shape {mask.shape}, but the image has {shape}")
        labels[mask.reshape(shape) > 0] = by_name[_stem(path)]
    return labels


def bundled_cases(include_mr: bool = True) -> list[DatasetSpec]:
    """The bundled real CT (and MR) as one-case datasets with the classes present in their labels."""
    kinds = ("ct", "mr") if include_mr else ("ct",)
    return [
        DatasetSpec(
            [Case(sample_path(kind), sample_path(f"{kind}_labels"), f"{kind}_abdomen")],
            sample_class_names(kind, present_only=True),
            "bundled",
        )
        for kind in kinds
    ]


def _stem(path: Path) -> str:
    name = path.name
    for ext in _EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _visible_files(folder: Path, exts: tuple[str, ...] = _EXTS) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(exts)
    )


def _mask_files(folder: Path) -> list[Path]:
    return _visible_files(folder, (".nii.gz", ".nii"))


def _find_nnunet(root: Path) -> DatasetSpec | None:
    meta_path = root / "dataset.json"
    if not meta_path.is_file() or not (root / "labelsTr").is_dir():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        raw_labels = dict(meta["labels"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read '{meta_path}': {exc}") from exc
    if all(str(k).isdigit() for k in raw_labels):  # v1 / MSD: {"0": "background", "1": "liver"}
        class_names = {int(k): str(v) for k, v in raw_labels.items() if int(k) != 0}
        ending, v2 = ".nii.gz", False
    else:  # v2: {"background": 0, "liver": 1}
        if any(not isinstance(v, int) for v in raw_labels.values()):
            raise InputError(f"{meta_path}: region-based labels (lists of ids) are not supported")
        class_names = {int(v): str(k) for k, v in raw_labels.items() if int(v) != 0}
        ending, v2 = str(meta.get("file_ending", ".nii.gz")), True
    if v2 or "training" not in meta:
        pairs = [(root / "imagesTr" / p.name, p) for p in _visible_files(root / "labelsTr", (ending,))]
    else:
        pairs = [(root / e["image"], root / e["label"]) for e in meta["training"]]
    cases, plain = [], 0
    for image, label in pairs:
        name = label.name[: -len(ending)] if label.name.endswith(ending) else _stem(label)
        channel0 = image.parent / f"{name}_0000{ending}"
        if not v2 and image.is_file():
            plain += 1
        elif channel0.is_file():
            image = channel0
        else:
            raise InputError(f"{root}: case '{name}' has no image {channel0.name} in {image.parent}")
        if not label.is_file():
            raise InputError(f"{root}: case '{name}' has no label file {label}")
        cases.append(Case(image, label, name))
    layout = "nnunet_v2" if v2 else ("msd" if plain else "nnunet_v1")
    return DatasetSpec(sorted(cases, key=lambda c: c.name), dict(sorted(class_names.items())), layout)


def _find_totalsegmentator(root: Path) -> DatasetSpec | None:
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    cases = [
        Case(f / "ct.nii.gz", f / "segmentations", f.name)
        for f in folders
        if (f / "ct.nii.gz").is_file() and (f / "segmentations").is_dir()
    ]
    if not cases:
        return None
    names = sorted({_stem(p) for c in cases for p in _mask_files(c.label)})
    total = {name: i for i, name in sample_class_names("ct").items()}
    class_names = {total[n]: n for n in names if n in total}
    extra = [n for n in names if n not in total]
    start = max(total.values()) + 1
    class_names.update({start + k: n for k, n in enumerate(extra)})
    return DatasetSpec(cases, dict(sorted(class_names.items())), "totalsegmentator")


def _find_pairs(root: Path) -> DatasetSpec | None:
    cases = []
    labels_dir = root / "labels"
    for image in _visible_files(root / "images"):
        if (labels_dir / image.name).is_file():
            cases.append(Case(image, labels_dir / image.name, _stem(image)))
    for image in _visible_files(root):
        stem = _stem(image)
        if not stem.endswith("_image"):
            continue
        base = stem[: -len("_image")]
        for suffix in ("_label", "_labels"):
            label = image.with_name(base + suffix + image.name[len(stem):])
            if label.is_file():
                cases.append(Case(image, label, base))
                break
    if not cases:
        return None
    return DatasetSpec(sorted(cases, key=lambda c: c.name), _pair_class_names(root, cases), "pairs")


def _pair_class_names(root: Path, cases: list[Case]) -> dict[int, str]:
    table = root / "classes.json"
    if table.is_file():
        try:
            entries = json.loads(table.read_text(encoding="utf-8")).items()
            return {int(k): str(v) for k, v in entries if int(k) != 0}
        except (ValueError, AttributeError) as exc:
            raise InputError(f"cannot read '{table}': expected {{id: name}} ({exc})") from exc
    ids: set[int] = set()
    for case in cases:
        ids.update(int(i) for i in np.unique(np.rint(read_volume(case.label).array)) if i > 0)
    return {i: f"class_{i}" for i in sorted(ids)}
