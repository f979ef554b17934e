"""Decoding passes and their propagation through the volume (a mixin of :class:`Session`).

A *pass* (:class:`_Pass`) holds the centres of the classes clicked on one slice in one round, after
that slice was decoded. :meth:`PassRunner.propagate` carries every pending pass outward, both
directions, slice by slice (:meth:`PassRunner._direction`), each class only inside its region and
within what its round's clicks allow (:func:`_effect`, :func:`~napari_s2vnet.inference.masks.local_change`). Zoomed classes are
decoded on a second, finer view (:class:`_View`) and only in a window that follows the object.
Everything is in internal order ``(z, y, x)``; masks are ``(Y, X)`` booleans on the input grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.masks import connected_to, grown, local_change
from napari_s2vnet.inference.prepared import FeatureCache, PreparedImage, slice_scores
from napari_s2vnet.inference.state import Click, ClickRecord
from napari_s2vnet.model.clicks import ClickBatch
from napari_s2vnet.model.s2vnet import Chain

OBJECTNESS_STOP = 0.5
WINDOW_PX = 96  # zoomed passes decode this window around the object (fine-view pixels: 144 mm)
GROWTH_MM = 3.0  # a zoomed object's outline moves at most max(this, slice spacing) from one slice to the next
STOP_AFTER = 2  # consecutive empty slices after which a propagated class stops

@dataclass
class _View:
    """The image at one in-plane working spacing, and its encoder features."""

    prepared: PreparedImage
    cache: FeatureCache

    def click_feats(self, model, c: Click, device) -> torch.Tensor:
        """Raw click features ``(4 D,)`` at click ``c``."""
        pt = torch.tensor([[self.prepared.to_net(c.y, c.x)]], dtype=torch.float32, device=device)
        return model.sample_clicks(self.cache.get(c.z), pt, tuple(self.prepared.net.shape[-2:]))[0, 0].clone()

    def window(self, centre_yx: tuple[float, float] | None) -> tuple[int, int, int, int] | None:
        """A ``WINDOW_PX`` square of network pixels around input pixel ``centre_yx`` (multiples of 16,
        inside the padded slice): ``(y0, x0, y1, x1)``; None = the whole slice."""
        pad_h, pad_w = self.prepared.net.shape[-2:]
        if centre_yx is None or (pad_h <= WINDOW_PX and pad_w <= WINDOW_PX):
            return None
        cy, cx = self.prepared.to_net(*centre_yx)
        y0 = int(np.clip(round((cy - WINDOW_PX / 2) / 16) * 16, 0, max(0, pad_h - WINDOW_PX)))
        x0 = int(np.clip(round((cx - WINDOW_PX / 2) / 16) * 16, 0, max(0, pad_w - WINDOW_PX)))
        return y0, x0, min(pad_h, y0 + WINDOW_PX), min(pad_w, x0 + WINDOW_PX)

    def features(self, z: int, ahead, window) -> dict[int, torch.Tensor]:
        feats = self.cache.get(z, ahead)
        if window is None:
            return feats
        y0, x0, y1, x1 = window
        return {s: f[..., y0 // s : y1 // s, x0 // s : x1 // s] for s, f in feats.items()}


@dataclass
class _Pass:
    """Centres of the classes clicked on one slice in one round."""

    start: int
    labels: list[int]  # class label of group g = labels[g - 1]
    chain: Chain  # after the start slice; each direction continues a copy of it
    fine: bool  # decoded on the zoomed view
    regions: dict[int, tuple[int, int]]  # label -> inclusive slice range it may rewrite
    effects: dict[int, str]  # label -> "add", "remove" or "replace" (:func:`_effect`)
    changes: dict[int, np.ndarray]  # label -> what a correction changed on the start slice (its seed)


def _effect(clicks: list[Click], label: int, has_voxels: bool) -> str:
    """What a round may do to ``label``, a class that ``has_voxels`` already (a correction): only
    positive clicks -> ``add`` (it never loses voxels), only negative clicks -> ``remove`` (it never
    gains voxels); both signs, or a class not yet in the labels -> ``replace``."""
    signs = {c.positive for c in clicks if c.label == label}
    if not has_voxels:
        return "replace"
    return "add" if signs == {True} else "remove" if signs == {False} else "replace"


class PassRunner:
    """Decoding and propagation of :class:`Session` (uses its labels, clicks, views and rounds)."""
    def _feats(self, record: ClickRecord, fine: bool) -> torch.Tensor:
        if not fine:
            return record.feats
        if record not in self._fine_feats:
            self._fine_feats[record] = self._view(True).click_feats(self.model, record.click, self.device)
        return self._fine_feats[record]

    def _anchors(self, labels: list[int], fine: bool = False):
        """Anchors (centres, groups, valid) for ``labels`` from all their clicks in effect."""
        model, dev = self.model, self.device
        keep = model.config.max_clicks  # per class and sign, the newest clicks become centres

        def newest(label: int, positive: bool) -> list[ClickRecord]:
            return [r for r in self._clicks if r.click.label == label and r.click.positive == positive][-keep:]

        pos = [(r, g) for g, label in enumerate(labels) for r in newest(label, True)]
        neg = [r for label in labels for r in newest(label, False)]
        feat_dim = self._clicks[0].feats.shape[0]
        p, q, kc = max(1, len(pos)), max(1, len(neg)), len(labels)
        batch = ClickBatch(
            pos_feats=torch.zeros(1, p, feat_dim, device=dev), pos_group=torch.zeros(1, p, dtype=torch.long, device=dev),
            pos_round=torch.zeros(1, p, dtype=torch.long, device=dev), pos_valid=torch.zeros(1, p, dtype=torch.bool, device=dev),
            neg_feats=torch.zeros(1, q, feat_dim, device=dev), neg_valid=torch.zeros(1, q, dtype=torch.bool, device=dev),
            class_valid=torch.zeros(1, kc, dtype=torch.bool, device=dev),
        )
        for j, (r, g) in enumerate(pos):
            batch.pos_feats[0, j], batch.pos_group[0, j] = self._feats(r, fine), g
            batch.pos_round[0, j], batch.pos_valid[0, j] = r.round, True
            batch.class_valid[0, g] = True
        for j, r in enumerate(neg):
            batch.neg_feats[0, j], batch.neg_valid[0, j] = self._feats(r, fine), True
        anchors = model.click_anchors(batch)
        # classes without a positive click fall back to their learned automatic embedding
        slots = {cid: i for i, cid in enumerate(model.config.class_ids)}
        for g, label in enumerate(labels, start=1):
            if not batch.class_valid[0, g - 1] and label in slots:
                anchors = anchors.appended(model.slot_embeddings(slots[label]).unsqueeze(0), g)
        return anchors

    def _region(self, label: int, start: int) -> tuple[int, int]:
        """The slices a pass from ``start`` may rewrite ``label`` on: those nearer to ``start`` than to
        the class's other clicked slices, inside ``z_range``; only ``start`` with ``slice_only`` or when
        ``start`` is outside ``z_range``."""
        others = sorted({r.click.z for r in self._clicks if r.click.label == label and r.click.z != start})
        below = [z for z in others if z < start]
        above = [z for z in others if z > start]
        lo = (below[-1] + start) // 2 + 1 if below else 0
        hi = (above[0] + start + 1) // 2 - 1 if above else self.shape[0] - 1
        limit = self.z_range
        if self.slice_only or (limit is not None and not limit[0] <= start <= limit[1]):
            return start, start
        return (lo, hi) if limit is None else (max(lo, limit[0]), min(hi, limit[1]))

    def _decode(self, view: _View, chain: Chain, z: int, ahead, n_groups: int, centre=None):
        """Decode slice ``z`` (zoomed: only the window around ``centre``) and advance ``chain``.

        -> group scores ``(1, G, H/s, W/s)`` (``s = config.embed_stride``) on the whole slice
        (background outside a window), group index on the input slice, objectness per centre.
        """
        window = view.window(centre)
        out = chain.step(view.features(z, ahead, window))
        scores = slice_scores(out, chain.anchors.groups, chain.anchors.valid, n_groups)
        if window is not None:
            s = self.model.config.embed_stride
            pad_h, pad_w = view.prepared.net.shape[-2:]
            full = scores.new_zeros((1, n_groups, pad_h // s, pad_w // s))
            full[:, 0] = 1.0
            y0, x0, y1, x1 = window
            full[:, :, y0 // s : y1 // s, x0 // s : x1 // s] = scores
            scores = full
        return scores, view.prepared.labels_on_input(scores), torch.sigmoid(out.objectness[0]).cpu().numpy()

    def _paint(self, z: int, writes: dict[int, np.ndarray | None]) -> np.ndarray:
        """Rewrite classes on slice ``z``: ``label -> mask`` (None = remove the class there)."""
        new = self._labels[z].copy()
        protected = np.isin(new, list(self.locked)) if self.locked else np.zeros(new.shape, bool)
        for label in writes:
            new[(new == label) & ~protected] = 0
        for label, mask in writes.items():
            if mask is not None:
                new[mask & ~protected] = label
        return self._write(z, new)

    def _centre(self, label: int, z: int) -> tuple[float, float] | None:
        """Where a zoomed class is on slice ``z``: its positive clicks there, else its labels there."""
        points = [(r.click.y, r.click.x) for r in self._clicks if r.click.label == label and r.click.z == z
                  and r.click.positive]
        if not points:
            points = [tuple(p) for p in np.argwhere(self._labels[z] == label)]
        return tuple(np.mean(points, axis=0)) if points else None

    def _score_on_input(self, scores: torch.Tensor, group: int, prepared: PreparedImage) -> np.ndarray:
        """Bilinear score of one group on the input slice grid ``(Y, X)``."""
        h, w = prepared.hw
        net = F.interpolate(scores[:, group : group + 1].float(), size=tuple(prepared.net.shape[-2:]),
                            mode="bilinear", align_corners=False)[:, :, :h, :w]
        return F.interpolate(net, size=self.shape[1:], mode="bilinear", align_corners=False)[0, 0].cpu().numpy()


    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def _direction(self, p: _Pass, step: int) -> Iterator[tuple[int, np.ndarray]]:
        """Carry one pass outward in one direction, inside each class's region.

        A class is painted where its objectness is at least 0.5 and its mask is not empty; once it
        has been seen, only the parts of its mask that touch its mask on the previous slice are
        kept (:func:`connected_to`), so it cannot jump to a distant look-alike structure. Once it
        has been seen in this direction and then missed on ``STOP_AFTER`` consecutive slices, it
        stops and the rest of its region is cleared of it. A class absent on the last slice restarts
        from its click anchor (as in automatic mode), so a pass that starts beside an organ (a
        negative click just past its end, say) still finds it.
        """
        view = self._view(p.fine)
        chain = Chain(self.model, p.chain.anchors)
        chain.history = list(p.chain.history)
        groups_of = chain.anchors.groups[0]
        start_labels = self._labels[p.start]
        previous = {label: start_labels == label for label in p.labels}
        seeds = dict(p.changes)  # corrections: the change kept on the last slice
        seen = {label: bool(previous[label].any()) for label in p.labels}
        misses = dict.fromkeys(p.labels, 0)
        chain.present = torch.ones_like(chain.anchors.valid)
        for g, label in enumerate(p.labels, start=1):
            chain.present[:, groups_of == g] = seen[label]
        growth = tuple(max(GROWTH_MM, self.spacing[0]) / s for s in self.spacing[1:])
        z = p.start + step
        active = {label for label in p.labels if p.regions[label][0] <= z <= p.regions[label][1]}
        while active and 0 <= z < self.shape[0]:
            ahead = tuple(range(z + step, z + 8 * step, step))
            centre = None
            if p.fine:  # the window follows the object (one class per zoomed pass)
                last = previous[p.labels[0]]
                centre = tuple(np.argwhere(last).mean(0)) if last.any() else self._centre(p.labels[0], p.start)
            scores, groups, obj = self._decode(view, chain, z, ahead, len(p.labels) + 1, centre)
            self._note_doubt(view, z, scores, p.labels, active)
            writes: dict[int, np.ndarray | None] = {}
            for g, label in enumerate(p.labels, start=1):
                if label not in active:
                    continue
                mask = connected_to(groups == g, previous[label])
                if p.fine and previous[label].any():  # a small object grows by at most GROWTH_MM per slice
                    mask &= grown(previous[label], growth)
                found = obj[(groups_of == g).cpu().numpy()].max() >= OBJECTNESS_STOP and mask.any()
                if found:
                    previous[label] = mask
                chain.present[:, groups_of == g] = bool(found)
                if p.effects[label] != "replace":  # a correction goes on while it changes something
                    new, seeds[label] = local_change(mask if found else np.zeros_like(mask),
                                                     self._labels[z] == label, p.effects[label], seeds[label])
                    if seeds[label].any():
                        writes[label] = new
                    else:
                        active.discard(label)
                    continue
                writes[label] = mask if found else None
                seen[label] |= bool(found)
                misses[label] = 0 if found else misses[label] + 1
                if seen[label] and misses[label] >= STOP_AFTER:
                    active.discard(label)
                    lo, hi = p.regions[label]
                    rest = range(z + step, hi + 1) if step > 0 else range(z + step, lo - 1, -1)
                    for zz in rest:  # the class ended: clear it from the rest of its region
                        self._doubt.clear(zz, [label])
                        if (self._labels[zz] == label).any():
                            yield zz, self._paint(zz, {label: None})
            yield z, self._paint(z, writes)
            z += step
            active = {label for label in active if p.regions[label][0] <= z <= p.regions[label][1]}

    def propagate(self, start: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(z, new slice labels)`` while the last round spreads outward (both directions).

        With ``start``, every class clicked on slice ``start`` is re-propagated from it. When
        ``focus`` is set, the direction whose next slice is nearest to it goes first.
        """
        if start is not None:
            self._restart(int(start))
        # each head: [next slice, step, generator, pass]; a pass stays pending until both its
        # directions are done, so clicks that cut this generator short can finish it (add_clicks)
        heads: list[list] = [[p.start + s, s, self._direction(p, s), p] for p in self._pending for s in (1, -1)]
        while heads:
            target = self.focus
            idx = 0 if target is None else min(range(len(heads)), key=lambda i: abs(heads[i][0] - target))
            item = next(heads[idx][2], None)
            if item is None:
                done = heads.pop(idx)[3]
                if not any(h[3] is done for h in heads) and done in self._pending:
                    self._pending.remove(done)
                continue
            heads[idx][0] = item[0] + heads[idx][1]
            yield item
            if target is None:  # plain alternation between directions
                heads.append(heads.pop(idx))
        self._close_round()  # fully propagated: its undo record is compressed now, not on the next click

    def _restart(self, start: int) -> np.ndarray:
        """A new round that decodes slice ``start`` again for every class clicked there (its pass queued)."""
        labels = sorted({r.click.label for r in self._clicks if r.click.z == start})
        if not labels:
            raise InputError(f"no clicks on slice {start} to propagate from")
        self._new_round("clicks")
        self._pending = []
        return self._start_pass(start, labels)

    def repropagate(self) -> Iterator[tuple[int, np.ndarray]]:
        """The Propagate button: finish the pending passes; with none, decode and propagate again from
        each slice clicked in the last round of clicks (one round per slice; slices whose clicks were
        undone or removed since are skipped). Yields ``(z, new slice labels)``, the restarted slices too."""
        if self._pending:
            yield from self.propagate()
            return
        for z in list(self._last_starts):
            if not any(r.click.z == z for r in self._clicks):
                continue
            yield z, self._restart(z)
            yield from self.propagate()
