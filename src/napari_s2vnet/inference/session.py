"""Interactive session (sam2 spirit): load once, click many times, propagate as a generator, undo.

Everything is in internal order ``(z, y, x)``. Per-slice encoder features are cached
(:class:`FeatureCache`), so a click costs one cluster-decoder pass on its slice.

How a round of clicks becomes labels:

* Every class keeps all its clicks (any slice, any round). Each positive click is a centre of its
  class, weighted by recency (adaptive sampling, :mod:`napari_s2vnet.model.clicks`); its negative
  clicks are background centres. A class that has no positive click but is one of the model's
  classes (e.g. after Auto-segment) uses its learned class embedding, so a negative click can trim an
  automatic result.
* On a clicked slice the result always agrees with the clicks there (:func:`honour_clicks`): a
  positive click's pixel is in its class, a negative click's pixel is not.
* ``add_clicks`` decodes each clicked slice at once with the centres of the classes clicked on it
  (several classes in one pass) and returns the new slices.
* ``propagate`` carries those centres outward, both directions, with recurrent centroid aggregation.
  A class is rewritten only inside its *region*: the slices for which this round's slice is the
  nearest slice clicked for that class (ties go to the newer click), so corrections elsewhere are
  kept. A slice gets the class where its objectness is at least 0.5 and its mask is not empty; in
  a direction the class stops after 2 consecutive empty slices, and the rest of its region is
  cleared of it.
* **A correction does what its sign says** (:func:`_effect`): a round whose clicks of a class are all
  positive only adds voxels to that class (new mask ∪ old, and a class that stops keeps what it had
  beyond), a round of only negative clicks only removes (new mask ∩ old); a round with both, and
  ``propagate(start)``, rewrite freely. Measured before this rule, a positive click on a missed part
  of an organ often moved its centres so that the organ lost more than the click gained, and a
  negative click past an organ's end could start a pass that found a look-alike far away.
* Newest wins where classes overlap, except voxels of ``locked`` labels, which are never written.
* **Zoom for small objects** (as nnInteractive's auto-zoom): when a class's first pass finds a small
  object on the clicked slice (under ``SMALL_MM2``) and the image is fine enough, the class is
  decoded from then on at ``config.zoom_mm`` in-plane (models trained with ``--fine-mm``) instead of the model's spacing (a second view of the
  image with its own feature cache, made on first use; the model is also trained on that spacing),
  and its outline may move by at most ``max(GROWTH_MM, slice spacing)`` from one slice to the next, so
  a lesion cannot leak into the organ around it as it propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.auto import auto_slices
from napari_s2vnet.inference.prepared import FeatureCache, PreparedImage, checked_image, prepare_image, slice_scores
from napari_s2vnet.inference.state import Click, ClickRecord, Round, SessionState
from napari_s2vnet.inference.masks import connected_to, grown, honour_clicks, keep_clicked
from napari_s2vnet.model.clicks import ClickBatch
from napari_s2vnet.model.s2vnet import Chain

OBJECTNESS_STOP = 0.5
HONOUR_RADIUS_MM = 6.0  # how far a missed positive click may grow its class (honour_clicks)
SMALL_MM2 = 700.0  # an object smaller than this on its first clicked slice is zoomed (~30 mm across)
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


def _effect(clicks: list[Click], label: int) -> str:
    """What a round may do to ``label``: only positive clicks -> ``add`` (it never loses voxels), only
    negative clicks -> ``remove`` (it never gains voxels), both -> ``replace``."""
    signs = {c.positive for c in clicks if c.label == label}
    return "add" if signs == {True} else "remove" if signs == {False} else "replace"


def _constrained(mask: np.ndarray, old: np.ndarray, effect: str) -> np.ndarray:
    """A round's new mask of a class on one slice, within what the round's clicks allow."""
    return mask | old if effect == "add" else mask & old if effect == "remove" else mask


class Session:
    def __init__(self, predictor, image_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], modality: str,
                 cache_bytes: int = 1 << 30, undo_bytes: int = 512 << 20) -> None:
        if np.ndim(image_zyx) != 3:
            raise InputError(f"a session needs a 3-D image, got shape {np.shape(image_zyx)}")
        image_zyx, spacing_zyx = checked_image(image_zyx, spacing_zyx, predictor.model.config.pixel_spacing_mm)
        self.predictor = predictor
        self.model = predictor.model
        self.device = predictor.device
        self.prepared = prepare_image(np.asarray(image_zyx), spacing_zyx, modality, self.model.config.pixel_spacing_mm)
        self.cache = FeatureCache(self.model, self.prepared, self.device, max_bytes=cache_bytes)
        self.shape: tuple[int, int, int] = tuple(int(s) for s in image_zyx.shape)
        self.spacing = tuple(float(s) for s in spacing_zyx)
        self._image, self._modality, self._cache_bytes = image_zyx, modality, cache_bytes
        fine_mm = self.model.config.zoom_mm
        self.zoom = 0 < fine_mm and min(self.spacing[1:]) <= 1.25 * fine_mm < self.model.config.pixel_spacing_mm
        self._fine: _View | None = None
        self._fine_feats: dict[ClickRecord, torch.Tensor] = {}
        self._zoomed: dict[int, bool] = {}  # label -> decoded on the zoomed view (decided at its first pass)
        self._labels = np.zeros(self.shape, np.uint16)
        self._clicks: list[ClickRecord] = []
        self._undo: list[Round] = []
        self._redo: list[Round] = []
        self._open: Round | None = None
        self._pending: list[_Pass] = []
        self._round_counter = 0
        self._dropped = 0
        self._undo_bytes = undo_bytes
        self.focus: int | None = None
        self.locked: set[int] = set()

    # ------------------------------------------------------------------ read-only views
    def labels(self) -> np.ndarray:
        view = self._labels.view()
        view.flags.writeable = False
        return view

    @property
    def pending(self) -> list[tuple[int, list[int]]]:
        """Passes not yet fully propagated: ``(start slice, labels)``."""
        return [(p.start, list(p.labels)) for p in self._pending]

    def clicks(self) -> list[Click]:
        return [r.click for r in self._clicks]

    @property
    def state(self) -> SessionState:
        per: dict[int, list[int]] = {}
        for r in self._clicks:
            per.setdefault(r.click.label, [0, 0])[0 if r.click.positive else 1] += 1
        return SessionState(self.shape, len(self._undo) + (self._open is not None), len(self._redo), self._dropped,
                            {k: (v[0], v[1]) for k, v in per.items()}, len(self.cache), self.cache.nbytes,
                            sum(r.nbytes for r in self._undo))

    # ------------------------------------------------------------------ features
    def _view(self, fine: bool) -> _View:
        if not fine:
            return _View(self.prepared, self.cache)
        if self._fine is None:
            prepared = prepare_image(np.asarray(self._image), self.spacing, self._modality, self.model.config.zoom_mm)
            self._fine = _View(prepared, FeatureCache(self.model, prepared, self.device, max_bytes=self._cache_bytes // 2))
        return self._fine

    def prepare_features(self, progress: Callable[[int, int], None] | None = None,
                         cancel: Callable[[], bool] | None = None) -> bool:
        """Encode every slice (focus first); ``False`` if ``cancel()`` said stop."""
        z_count = self.shape[0]
        centre = self.focus if self.focus is not None else z_count // 2
        order = sorted(range(z_count), key=lambda z: abs(z - centre))
        step = self.cache.batch
        for i in range(0, z_count, step):
            if cancel is not None and cancel():
                return False
            self.cache.compute(order[i : i + step])
            if progress is not None:
                progress(min(i + step, z_count), z_count)
        return True

    # ------------------------------------------------------------------ rounds
    def _new_round(self, kind: str) -> Round:
        self._close_round()
        self._redo.clear()
        self._round_counter += 1
        self._open = Round(self._round_counter, kind)
        return self._open

    def _close_round(self) -> None:
        if self._open is None:
            return
        self._open.close(self._labels)
        self._undo.append(self._open)
        self._open = None
        while len(self._undo) > 1 and sum(r.nbytes for r in self._undo) > self._undo_bytes:
            self._undo.pop(0)
            self._dropped += 1

    def _write(self, z: int, new_slice: np.ndarray) -> np.ndarray:
        assert self._open is not None
        self._open.remember(z, self._labels[z])
        self._labels[z] = new_slice
        return new_slice.copy()

    def undo(self) -> bool:
        self._pending = []
        self._close_round()
        if not self._undo:
            return False
        rnd = self._undo.pop()
        for z, ch in rnd.changes.items():
            self._labels[z].ravel()[ch.index] = ch.old
        added = {id(r) for r in rnd.clicks_added}
        self._clicks = [r for r in self._clicks if id(r) not in added] + list(rnd.clicks_removed)
        self._redo.append(rnd)
        return True

    def redo(self) -> bool:
        self._pending = []
        self._close_round()
        if not self._redo:
            return False
        rnd = self._redo.pop()
        for z, ch in rnd.changes.items():
            self._labels[z].ravel()[ch.index] = ch.new
        removed = {id(r) for r in rnd.clicks_removed}
        self._clicks = [r for r in self._clicks if id(r) not in removed] + list(rnd.clicks_added)
        self._undo.append(rnd)
        return True

    # ------------------------------------------------------------------ clicks
    def add_click(self, z: int, y: int, x: int, label: int, positive: bool = True) -> np.ndarray:
        return self.add_clicks([Click(z, y, x, label, positive)])[int(z)]

    def _check(self, c: Click) -> Click:
        z, y, x = (int(round(v)) for v in (c.z, c.y, c.x))
        if not (0 <= z < self.shape[0] and 0 <= y < self.shape[1] and 0 <= x < self.shape[2]):
            raise InputError(f"click {(c.z, c.y, c.x)} is outside the volume of shape {self.shape}")
        if int(c.label) <= 0:
            raise InputError(f"click {(c.z, c.y, c.x)} has label {c.label}: labels must be positive integers")
        return Click(z, y, x, int(c.label), bool(c.positive))

    @torch.inference_mode()
    def add_clicks(self, clicks: Iterable[Click]) -> dict[int, np.ndarray]:
        """One round: record the clicks, decode each clicked slice now; ``propagate()`` does the rest."""
        clicks = [self._check(c) for c in clicks]
        if not clicks:
            return {}
        known = set(self.model.config.class_ids)
        for c in clicks:
            has_positive = c.positive or any(r.click.label == c.label and r.click.positive for r in self._clicks) \
                or any(o.label == c.label and o.positive for o in clicks)
            if not has_positive and c.label not in known:
                raise InputError(f"negative click {(c.z, c.y, c.x)} for label {c.label}, which has no positive click yet")
        rnd = self._new_round("clicks")
        view = self._view(False)
        for c in clicks:
            record = ClickRecord(c, rnd.index, view.click_feats(self.model, c, self.device))
            rnd.clicks_added.append(record)
            self._clicks.append(record)
        unfinished, self._pending = self._pending, []
        out: dict[int, np.ndarray] = {}
        effects = {label: _effect(clicks, label) for label in {c.label for c in clicks}}
        for z in sorted({c.z for c in clicks}):
            labels = sorted({c.label for c in clicks if c.z == z})
            out[z] = self._start_pass(z, labels, effects)
        for p in unfinished:  # a propagation cut short by these clicks finishes inside this round
            labels = [label for label in p.labels if not any(c.z == p.start and c.label == label for c in clicks)]
            if labels:
                self._start_pass(p.start, labels, p.effects)
        return out

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
        others = sorted({r.click.z for r in self._clicks if r.click.label == label and r.click.z != start})
        below = [z for z in others if z < start]
        above = [z for z in others if z > start]
        lo = (below[-1] + start) // 2 + 1 if below else 0
        hi = (above[0] + start + 1) // 2 - 1 if above else self.shape[0] - 1
        return lo, hi

    def _decode(self, view: _View, chain: Chain, z: int, ahead, n_groups: int, centre=None):
        """Decode slice ``z`` (zoomed: only the window around ``centre``) and advance ``chain``.

        -> group scores ``(1, G, H/2, W/2)`` on the whole slice (background outside a window), group
        index on the input slice, objectness per centre.
        """
        window = view.window(centre)
        out = chain.step(view.features(z, ahead, window))
        scores = slice_scores(out, chain.anchors.groups, chain.anchors.valid, n_groups)
        if window is not None:
            pad_h, pad_w = view.prepared.net.shape[-2:]
            full = scores.new_zeros((1, n_groups, pad_h // 2, pad_w // 2))
            full[:, 0] = 1.0
            y0, x0, y1, x1 = window
            full[:, :, y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = scores
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

    @torch.inference_mode()
    def _start_pass(self, z: int, labels: list[int], effects: dict[int, str] | None = None) -> np.ndarray:
        """Decode slice ``z`` for ``labels`` (zoomed ones on the fine view) and queue their propagation.

        A label's first pass runs on the model's view; if it then finds a small object, the label is
        zoomed from now on and decoded again on the fine view (its coarse pass stays queued without it).
        """
        fine = [label for label in labels if self._zoomed.get(label)]
        coarse = [label for label in labels if not self._zoomed.get(label)]
        effects = effects or {}
        new = self._decode_pass(z, coarse, False, effects) if coarse else None
        area = self.spacing[1] * self.spacing[2]
        small = [label for label in coarse
                 if self.zoom and label not in self._zoomed and (new == label).sum() * area < SMALL_MM2]
        for label in coarse:
            self._zoomed.setdefault(label, label in small)
        if small:
            self._pending[-1].regions.update({label: (1, 0) for label in small})  # never active
            fine += small
        for label in fine:  # one pass per zoomed class: each has its own window
            new = self._decode_pass(z, [label], True, effects)
        return new

    def _decode_pass(self, z: int, labels: list[int], fine: bool, effects: dict[int, str]) -> np.ndarray:
        view = self._view(fine)
        anchors = self._anchors(labels, fine)
        chain = Chain(self.model, anchors)
        centre = self._centre(labels[0], z) if fine else None
        scores, groups, _ = self._decode(view, chain, z, (z + 1, z - 1), len(labels) + 1, centre)
        radius = tuple(HONOUR_RADIUS_MM / s for s in self.spacing[1:])
        writes = {}
        for g, label in enumerate(labels, start=1):
            here = [r.click for r in self._clicks if r.click.label == label and r.click.z == z]
            points = [(c.y, c.x) for c in here if c.positive]
            negatives = [(c.y, c.x) for c in here if not c.positive]
            mask = groups == g
            if any(not mask[p] for p in points) or any(mask[p] for p in negatives):
                mask = honour_clicks(mask, self._score_on_input(scores, g, view.prepared), points, negatives, radius)
            writes[label] = _constrained(keep_clicked(mask, points), self._labels[z] == label,
                                         effects.get(label, "replace"))
        new = self._paint(z, writes)
        self._pending.append(_Pass(z, labels, chain, fine, {label: self._region(label, z) for label in labels},
                                   {label: effects.get(label, "replace") for label in labels}))
        return new

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
            _, groups, obj = self._decode(view, chain, z, ahead, len(p.labels) + 1, centre)
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
                adding = p.effects[label] == "add"
                old = self._labels[z] == label
                writes[label] = _constrained(mask, old, p.effects[label]) if found else (old if adding else None)
                seen[label] |= bool(found)
                misses[label] = 0 if found else misses[label] + 1
                if seen[label] and misses[label] >= STOP_AFTER:
                    active.discard(label)
                    if adding:  # an additive round keeps what the class had beyond its end
                        continue
                    lo, hi = p.regions[label]
                    rest = range(z + step, hi + 1) if step > 0 else range(z + step, lo - 1, -1)
                    for zz in rest:  # the class ended: clear it from the rest of its region
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
            labels = sorted({r.click.label for r in self._clicks if r.click.z == int(start)})
            if not labels:
                raise InputError(f"no clicks on slice {start} to propagate from")
            self._new_round("clicks")
            self._pending = []
            self._start_pass(int(start), labels)
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

    # ------------------------------------------------------------------ automatic, removal, edits
    def auto_steps(self, classes: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Automatic segmentation as a new round, slice by slice (classes with clicks are kept)."""
        wanted = list(self.model.config.class_ids) if classes is None else [int(c) for c in classes]
        self._new_round("auto")
        self._pending = []
        keep = self.locked | {r.click.label for r in self._clicks}
        for z, auto in auto_slices(self.model, self.prepared, self.cache, wanted):
            new = self._labels[z].copy()
            protected = np.isin(new, list(keep)) if keep else np.zeros(new.shape, bool)
            new[np.isin(new, wanted) & ~protected] = 0
            fill = (auto > 0) & ~protected & ~np.isin(auto, list(keep))
            new[fill] = auto[fill]
            yield z, self._write(z, new)

    def auto(self, classes: Iterable[int] | None = None) -> np.ndarray:
        for _ in self.auto_steps(classes):
            pass
        self._close_round()
        return self.labels()

    def remove_class(self, label: int) -> None:
        rnd = self._new_round("remove")
        self._pending = []
        removed = [r for r in self._clicks if r.click.label == label]
        rnd.clicks_removed.extend(removed)
        self._zoomed.pop(label, None)
        self._clicks = [r for r in self._clicks if r.click.label != label]
        for z in np.flatnonzero((self._labels == label).reshape(self.shape[0], -1).any(1)):
            self._paint(int(z), {label: None})
        self._close_round()

    @torch.inference_mode()
    def restore(self, labels_zyx: np.ndarray, clicks: Iterable[Click], rounds: Iterable[int] | None = None) -> None:
        """Put saved work back (e.g. an autosave) as one round: labels as they were, clicks in effect.

        The clicks' features are sampled again on this image; nothing is decoded or propagated.
        """
        clicks = [self._check(c) for c in clicks]
        rounds = list(rounds) if rounds is not None else [0] * len(clicks)
        self.set_labels(labels_zyx)  # closes an "edit" round; the clicks join it
        rnd = self._undo[-1]
        view = self._view(False)
        for c, r in zip(clicks, rounds):
            record = ClickRecord(c, int(r), view.click_feats(self.model, c, self.device))
            rnd.clicks_added.append(record)
            self._clicks.append(record)
        self._round_counter = max([self._round_counter, *rounds])

    def set_labels(self, labels_zyx: np.ndarray) -> None:
        """Import labels edited elsewhere (e.g. painted by hand) as one undoable round."""
        if labels_zyx.shape != self.shape:
            raise InputError(f"labels of shape {labels_zyx.shape} do not match the image {self.shape}")
        self._new_round("edit")
        self._pending = []
        new = np.asarray(labels_zyx).astype(np.uint16)
        for z in np.flatnonzero((new != self._labels).reshape(self.shape[0], -1).any(1)):
            self._write(int(z), new[z])
        self._close_round()
