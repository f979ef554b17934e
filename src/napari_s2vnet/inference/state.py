"""Typed state of an interactive session: clicks, rounds (the unit of undo) and a summary.

A *round* is one user interaction (a batch of clicks and the propagation it triggers, an automatic
segmentation, a class removal, or imported hand edits). While a round is open its writes keep a copy
of each slice as it was before the round's first write; when the round closes, that is compressed to
the changed voxels only (flat indices + old + new values), so undo and redo are exact and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Click:
    """A click in internal order ``(z, y, x)``; ``label`` is the user's class id (> 0)."""

    z: int
    y: int
    x: int
    label: int
    positive: bool = True

    def to_dict(self) -> dict[str, int | bool]:
        """Plain JSON data (autosave, CLI clicks in voxels, the dock's Points layers)."""
        return {"z": int(self.z), "y": int(self.y), "x": int(self.x), "label": int(self.label),
                "positive": bool(self.positive)}

    @classmethod
    def from_dict(cls, d: dict) -> Click:
        """From ``{z, y, x, label, positive=True}`` (extra keys are ignored)."""
        return cls(int(d["z"]), int(d["y"]), int(d["x"]), int(d["label"]), bool(d.get("positive", True)))


@dataclass(frozen=True, eq=False)
class ClickRecord:
    click: Click
    round: int  # interaction round, for adaptive sampling
    feats: torch.Tensor  # (4 D,) pixel features sampled at the click
    prompt: object = None  # the Box or Scribble (inference/prompts.py) it came from; None: the click itself

    @property
    def source(self) -> object:
        """The prompt the user gave: the click itself, or its box / scribble."""
        return self.click if self.prompt is None else self.prompt


@dataclass
class SliceChange:
    index: np.ndarray  # flat indices into the slice (int32)
    old: np.ndarray  # previous values (uint16)
    new: np.ndarray  # new values (uint16)

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.old.nbytes + self.new.nbytes


@dataclass
class Round:
    index: int
    kind: str  # "clicks" | "auto" | "remove" | "edit" | "prompts" (prompts removed or moved)
    clicks_added: list[ClickRecord] = field(default_factory=list)
    clicks_removed: list[ClickRecord] = field(default_factory=list)
    before: dict[int, np.ndarray] = field(default_factory=dict)  # open round: slice before first write
    changes: dict[int, SliceChange] = field(default_factory=dict)  # closed round
    doubt_before: dict[int, np.ndarray] = field(default_factory=dict)  # review scores (label -> (Z,)) before
    doubt_after: dict[int, np.ndarray] = field(default_factory=dict)  # ... and after the round

    def remember(self, z: int, current: np.ndarray) -> None:
        if z not in self.before and z not in self.changes:
            self.before[z] = current.copy()

    def close(self, labels: np.ndarray) -> None:
        for z, old_slice in self.before.items():
            flat_old, flat_new = old_slice.ravel(), labels[z].ravel()
            idx = np.flatnonzero(flat_old != flat_new).astype(np.int32)
            if idx.size:
                self.changes[z] = SliceChange(idx, flat_old[idx].copy(), flat_new[idx].copy())
        self.before.clear()

    @property
    def nbytes(self) -> int:
        doubt = sum(v.nbytes for v in self.doubt_before.values()) + sum(v.nbytes for v in self.doubt_after.values())
        return sum(c.nbytes for c in self.changes.values()) + sum(b.nbytes for b in self.before.values()) + doubt


@dataclass(frozen=True)
class SessionState:
    """A read-only summary for UIs and logs."""

    shape: tuple[int, int, int]
    rounds: int  # rounds that can be undone
    redo: int  # rounds that can be redone
    dropped_rounds: int  # oldest rounds forgotten to respect the undo memory bound
    clicks: dict[int, tuple[int, int]]  # label -> (positive clicks, negative clicks)
    cached_slices: int
    cache_bytes: int
    undo_bytes: int
