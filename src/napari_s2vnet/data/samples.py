"""Bundled real sample volumes (TotalSegmentator test files, Apache-2.0) and their class maps.

The files live in ``napari_s2vnet/_resources/samples/``; ``classes.json`` maps each label file name
to its ``{id: name}`` table (the TotalSegmentator "total" map for the CT, "total_mr" for the MR).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from napari_s2vnet.errors import InputError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "_resources" / "samples"

_FILES = {
    "ct": "ct_abdomen.nii.gz",
    "ct_labels": "ct_abdomen_labels.nii.gz",
    "mr": "mr_abdomen.nii.gz",
    "mr_labels": "mr_abdomen_labels.nii.gz",
}


def sample_path(name: str) -> Path:
    """Path of a bundled sample: ``'ct'``, ``'ct_labels'``, ``'mr'`` or ``'mr_labels'``."""
    if name not in _FILES:
        raise InputError(f"unknown sample {name!r}: expected one of {', '.join(_FILES)}")
    return SAMPLES_DIR / _FILES[name]


@lru_cache(maxsize=None)
def _class_table(kind: str) -> tuple[tuple[int, str], ...]:
    if kind not in ("ct", "mr"):
        raise InputError(f"unknown sample kind {kind!r}: expected 'ct' or 'mr'")
    table = json.loads((SAMPLES_DIR / "classes.json").read_text(encoding="utf-8"))
    entries = table[_FILES[f"{kind}_labels"]]
    return tuple(sorted((int(k), str(v)) for k, v in entries.items()))


@lru_cache(maxsize=None)
def _present_ids(kind: str) -> frozenset[int]:
    import nibabel as nib

    data = np.asarray(nib.load(sample_path(f"{kind}_labels")).dataobj)
    return frozenset(int(i) for i in np.unique(data) if i != 0)


def sample_class_names(kind: Literal["ct", "mr"], present_only: bool = False) -> dict[int, str]:
    """``{id: name}`` of the bundled ``kind`` label map, read from ``classes.json``.

    The full map is TotalSegmentator's ("total": 117 classes for CT, "total_mr": 50 for MR);
    ``present_only=True`` keeps the ids that occur in the bundled label volume (reads it once).
    """
    names = dict(_class_table(kind))
    if present_only:
        present = _present_ids(kind)
        names = {i: n for i, n in names.items() if i in present}
    return names


def attribution() -> str:
    """One-paragraph attribution for the bundled TotalSegmentator volumes (from ``SOURCE.md``)."""
    text = (SAMPLES_DIR / "SOURCE.md").read_text(encoding="utf-8")
    paragraph: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if not stripped or stripped.startswith("|"):
            if paragraph:
                break
            continue
        paragraph.append(stripped)
    return " ".join(paragraph).replace("`", "")
