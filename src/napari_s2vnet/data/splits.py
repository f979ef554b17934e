"""Train/validation split files for ``napari-s2vnet train --split``.

Two formats are read, both JSON, naming cases as the dataset readers name them (the image file's
stem without nnU-Net's ``_0000`` channel suffix, or the TotalSegmentator subject folder):

* ``{"train": ["case_a", ...], "val": ["case_b", ...]}``
* nnU-Net's ``splits_final.json``: a list of folds ``[{"train": [...], "val": [...]}, ...]``; ``fold``
  picks one.

A split must be disjoint and name at least one validation case; :func:`check_split` then checks it
against the cases actually found, so a typo fails before training starts instead of silently
training on everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from napari_s2vnet.errors import InputError


@dataclass(frozen=True)
class Split:
    """Case names used for training and for validation (disjoint)."""

    train: frozenset[str]
    val: frozenset[str]

    def role(self, name: str) -> str:
        """``"train"``, ``"val"`` or ``"skip"`` (a case the split does not name)."""
        return "train" if name in self.train else "val" if name in self.val else "skip"

    def to_dict(self) -> dict[str, list[str]]:
        return {"train": sorted(self.train), "val": sorted(self.val)}


def read_split(path: Path | str, fold: int = 0) -> Split:
    """Read a split file (either format above); :class:`InputError` on anything malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--split: no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"--split: {path} is not a JSON split file ({e})") from None
    if isinstance(data, list):  # nnU-Net splits_final.json
        if not 0 <= fold < len(data):
            raise InputError(f"--fold {fold}: {path} has {len(data)} fold(s) (0..{len(data) - 1})")
        data = data[fold]
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("train", "val")):
        raise InputError(f"--split: {path} must hold {{\"train\": [...], \"val\": [...]}} "
                         "or a list of such folds (nnU-Net's splits_final.json)")
    train, val = (frozenset(str(n) for n in data[k]) for k in ("train", "val"))
    if not val:
        raise InputError(f"--split: {path} names no validation case")
    if train & val:
        raise InputError(f"--split: {path} lists {', '.join(sorted(train & val))} in both train and val")
    return Split(train, val)


def check_split(split: Split, found: set[str]) -> None:
    """Every case the split names must be one of the ``found`` case names."""
    unknown = sorted((split.train | split.val) - found)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise InputError(f"--split names cases not found in the --data folders: {shown}; "
                         f"found: {', '.join(sorted(found)[:8])}{' ...' if len(found) > 8 else ''}")
