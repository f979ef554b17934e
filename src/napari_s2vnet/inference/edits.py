"""Editing prompts after the fact (a mixin of :class:`~napari_s2vnet.inference.session.Session`).

Every click the session holds remembers the prompt the user gave (a :class:`Click`, or the
:class:`~napari_s2vnet.inference.prompts.Box` / :class:`~napari_s2vnet.inference.prompts.Scribble` it
came from; :meth:`PromptEdits.prompts`). Removing or moving prompts (:meth:`PromptEdits.edit_prompts`)
is one new undoable round of kind ``"prompts"`` that **recomputes each class it touches from the
class's remaining prompts**:

1. the class is cleared from every slice (voxels of ``locked`` labels, e.g. painted by hand, stay:
   :meth:`PassRunner._paint`);
2. if prompts of it remain, every slice that holds one is decoded again with the centres of all of
   them and queued for propagation (``propagate()`` then spreads it, each slice rewriting only its
   region, as in a first round); each remaining box keeps the class inside it on its slice;
3. a class with no prompt left keeps nothing the model wrote. A class of yours with only negative
   clicks left has nothing to grow from: it is cleared too and its negative clicks stay in effect
   (they act once a positive prompt comes back).

The *slice only* option (:attr:`Session.slice_only`) is ignored by this recompute (it would leave
the class only on its clicked slices); the slice range (:attr:`Session.z_range`) is honoured.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.prompts import Box, Prompt, normalised


class PromptEdits:
    """Prompt listing, removal and moves of :class:`Session` (uses its clicks, rounds and passes)."""

    def prompts(self) -> list[Prompt]:
        """The prompts in effect, oldest first: clicks, boxes and scribbles as the user gave them."""
        out: dict[Prompt, None] = {}
        for r in self._clicks:
            out.setdefault(r.source, None)
        return list(out)

    def remove_prompt(self, prompt: Prompt) -> dict[int, np.ndarray]:
        """Remove one prompt (all its clicks) and recompute its class: see :meth:`edit_prompts`."""
        return self.edit_prompts([prompt])

    def move_prompt(self, old: Prompt, new: Prompt) -> dict[int, np.ndarray]:
        """Replace prompt ``old`` by ``new`` (moved, or its sign changed) as one round."""
        return self.edit_prompts([old], [new])

    @torch.inference_mode()
    def edit_prompts(self, remove: Iterable[Prompt], add: Iterable[Prompt] = ()) -> dict[int, np.ndarray]:
        """One round: drop the prompts ``remove``, add ``add``, and recompute every class they belong
        to from its remaining prompts (module docstring). Returns ``{z: new slice labels}`` of the slices
        changed so far; ``propagate()`` does the rest. A prompt not in effect is an :class:`InputError`."""
        remove = [normalised(p) for p in remove]
        in_effect = set(self.prompts())
        missing = [p for p in remove if p not in in_effect]
        if missing:
            raise InputError(f"{missing[0]} is not a prompt in effect (already removed or undone?)")
        clicks, sources = self._expand(add)
        gone = [r for r in self._clicks if r.source in set(remove)]
        labels = sorted({r.click.label for r in gone} | {c.label for c in clicks})
        if not labels:
            return {}
        rnd = self._new_round("prompts")
        unfinished, self._pending = self._pending, []
        gone_ids = {id(r) for r in gone}
        rnd.clicks_removed.extend(gone)
        self._clicks = [r for r in self._clicks if id(r) not in gone_ids]
        self._record(rnd, clicks, sources)
        for label in labels:  # 1. the class's voxels go (locked ones stay)
            for z in np.flatnonzero((self._labels == label).reshape(self.shape[0], -1).any(1)):
                self._paint(int(z), {label: None})
        known = set(self.model.config.class_ids)
        starts: dict[int, list[int]] = {}
        for label in labels:  # 2. decoded again from every slice that holds one of its prompts
            left = [r for r in self._clicks if r.click.label == label]
            if any(r.click.positive for r in left) or (left and label in known):
                for z in {r.click.z for r in left}:
                    starts.setdefault(z, []).append(label)
            else:  # 3. nothing left to grow from
                self._zoomed.pop(label, None)
            self._doubt.drop(label)  # its review scores come back as it propagates
        only, self.slice_only = self.slice_only, False
        try:
            for z in sorted(starts):
                self._start_pass(z, sorted(starts[z]))
            # a propagation cut short by this edit finishes inside this round
            self._resume(unfinished, lambda p, label: label not in labels)
        finally:
            self.slice_only = only
        self._last_starts = sorted(starts)
        out = {z: self._labels[z].copy() for z in sorted(rnd.before)}
        self._clip_boxes([p for p in self.prompts() if isinstance(p, Box) and p.label in labels], out)
        return out
