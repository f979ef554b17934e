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
* **A correction does what its sign says, where it was made** (:func:`_effect`,
  :func:`~napari_s2vnet.inference.masks.local_change`): for a class that has voxels already, a round
  whose clicks of it are all positive only adds to it, one of only negative clicks only removes, and
  only the change connected to the click (on later slices: to the change kept on the slice before)
  is kept; the correction stops at the first slice where it changes nothing. A round with both
  signs, a class's first round and ``propagate(start)`` rewrite freely (docs/method.md says why).
* Newest wins where classes overlap, except voxels of ``locked`` labels, which are never written.
* Boxes and scribbles become clicks that remember their prompt (``prompts.py``); removing or moving
  prompts recomputes their classes from what is left (``edits.py``). ``slice_only`` and ``z_range``
  narrow where new rounds write (``PassRunner._region``).
* **Zoom for objects the model's grid cannot see** (as nnInteractive's auto-zoom): when a class's
  first pass on the model's view *misses one of its positive clicks* (the network's own mask does not
  contain it, so :func:`honour_clicks` had to add it) and the object found is small on the clicked
  slice (under ``SMALL_MM2``), and the image is fine enough, the class is
  decoded from then on at ``config.zoom_mm`` in-plane (models trained with ``--fine-mm``) instead of the model's spacing (a second view of the
  image with its own feature cache, made on first use; the model is also trained on that spacing),
  and its outline may move by at most ``max(GROWTH_MM, slice spacing)`` from one slice to the next, so
  a lesion cannot leak into the organ around it as it propagates.
* ``auto_steps`` (Auto-segment) decodes thin slices on a coarser z grid, as ``Predictor.segment``
  does (``z_mm``, :func:`~napari_s2vnet.inference.auto.z_step_for`); propagation decodes every slice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.auto import auto_slices, z_step_for
from napari_s2vnet.inference.edits import PromptEdits
from napari_s2vnet.inference.masks import honour_clicks, keep_clicked, local_change
from napari_s2vnet.inference.passes import (  # noqa: F401 (re-exported: the session's settings and rules)
    GROWTH_MM, OBJECTNESS_STOP, STOP_AFTER, WINDOW_PX, PassRunner, _effect, _Pass, _View)
from napari_s2vnet.inference.prepared import FeatureCache, checked_image, prepare_image
from napari_s2vnet.inference.prompts import (Box, Prompt, Scribble, as_clicks, box_candidates, box_mask, box_outside,
                                             deepest_candidate,
                                             normalised)
from napari_s2vnet.inference.review import SliceDoubt, doubt_by_label
from napari_s2vnet.inference.state import Click, ClickRecord, Round, SessionState
from napari_s2vnet.model.s2vnet import Chain

HONOUR_RADIUS_MM = 6.0  # how far a missed positive click may grow its class (honour_clicks)
SMALL_MM2 = 700.0  # a missed object smaller than this on its first clicked slice is zoomed (~30 mm across)



class Session(PromptEdits, PassRunner):
    def __init__(self, predictor, image_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], modality: str,
                 cache_bytes: int = 1 << 30, undo_bytes: int = 512 << 20, z_mm: float | None = None) -> None:
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
        # automatic mode (auto_steps) decodes every z_step-th slice; propagation decodes every slice
        # (decoding thin slices on the coarse grid lost Dice there: docs/training.md, eighth run)
        self.z_step = z_step_for(self.model, self.spacing[0], z_mm)
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
        self.slice_only = False  # rounds of clicks decode their slices and do not propagate
        self._z_range: tuple[int, int] | None = None
        self._doubt = SliceDoubt(self.shape[0])  # review scores (inference/review.py)
        self._last_starts: list[int] = []  # clicked slices of the last round of clicks (rerun())

    # ------------------------------------------------------------------ options
    @property
    def z_range(self) -> tuple[int, int] | None:
        """Slices ``(first, last)`` (inclusive) that rounds may write beyond their clicked slices (e.g.
        where an organ ends); None: the whole volume. Labels outside it are kept as they are."""
        return self._z_range

    @z_range.setter
    def z_range(self, value: tuple[int, int] | None) -> None:
        if value is not None:
            lo, hi = (int(v) for v in value)
            if not 0 <= lo <= hi < self.shape[0]:
                raise InputError(f"slice range {value} must be first <= last inside 0..{self.shape[0] - 1}")
            value = (lo, hi)
        self._z_range = value

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
        self._open = Round(self._round_counter, kind, doubt_before=self._doubt.snapshot())
        return self._open

    def _close_round(self) -> None:
        if self._open is None:
            return
        self._open.close(self._labels)
        self._open.doubt_after = self._doubt.snapshot()
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

    def undo(self) -> dict[int, np.ndarray] | None:
        """Undo the newest round: ``{z: new slice labels}`` of the slices it changed (``{}`` if it changed
        no voxel), ``None`` if there is nothing to undo."""
        self._pending = []
        self._close_round()
        if not self._undo:
            return None
        rnd = self._undo.pop()
        for z, ch in rnd.changes.items():
            self._labels[z].ravel()[ch.index] = ch.old
        added = {id(r) for r in rnd.clicks_added}
        self._clicks = [r for r in self._clicks if id(r) not in added] + list(rnd.clicks_removed)
        self._doubt.restore(rnd.doubt_before)
        self._redo.append(rnd)
        return {z: self._labels[z].copy() for z in sorted(rnd.changes)}

    def redo(self) -> dict[int, np.ndarray] | None:
        """Redo the newest undone round; returns as :meth:`undo` does."""
        self._pending = []
        self._close_round()
        if not self._redo:
            return None
        rnd = self._redo.pop()
        for z, ch in rnd.changes.items():
            self._labels[z].ravel()[ch.index] = ch.new
        removed = {id(r) for r in rnd.clicks_removed}
        self._clicks = [r for r in self._clicks if id(r) not in removed] + list(rnd.clicks_added)
        self._doubt.restore(rnd.doubt_after)
        self._undo.append(rnd)
        return {z: self._labels[z].copy() for z in sorted(rnd.changes)}

    # ------------------------------------------------------------------ review guidance
    def slice_doubt(self) -> np.ndarray:
        """``(Z,)`` float32: how unsure the model was about the labels it wrote on each slice (mm² of
        doubtful pixels, :mod:`napari_s2vnet.inference.review`); 0 where it wrote nothing."""
        return self._doubt.per_slice()

    def uncertain_slices(self, k: int | None = None, skip: Iterable[int] = ()) -> list[int]:
        """The ``k`` most doubtful slices (all with some doubt when ``k`` is None), most doubtful first,
        leaving out ``skip`` (e.g. the slices already checked since the last round)."""
        return self._doubt.ranked(k, skip)

    def _note_doubt(self, view: _View, z: int, scores: torch.Tensor, labels: list[int], keep=None) -> None:
        """Record the doubt of a decode of slice ``z`` for ``labels`` (only those in ``keep`` if given)."""
        h, w = view.prepared.hw
        stride = float(self.model.config.embed_stride)  # the scores' pixel: stride x stride network pixels
        mm2 = stride**2 * (self.spacing[1] * self.shape[1] / h) * (self.spacing[2] * self.shape[2] / w)
        values = doubt_by_label(scores, labels, mm2)
        self._doubt.set(z, {k: v for k, v in values.items() if keep is None or k in keep})

    # ------------------------------------------------------------------ clicks
    def add_click(self, z: int, y: int, x: int, label: int, positive: bool = True) -> np.ndarray:
        return self.add_clicks([Click(z, y, x, label, positive)])[int(z)]

    def add_box(self, z: int, y0: int, x0: int, y1: int, x1: int, label: int) -> dict[int, np.ndarray]:
        """One round from a rectangle on slice ``z`` (``inference/prompts.py``); ``propagate()`` does the rest."""
        return self.add_prompts([Box(z, y0, x0, y1, x1, label)])

    def add_scribble(self, z: int, points, label: int, positive: bool = True) -> dict[int, np.ndarray]:
        """One round from a stroke on slice ``z`` (``(y, x)`` vertices), sampled as clicks."""
        return self.add_prompts([Scribble(z, tuple((int(y), int(x)) for y, x in points), label, positive)])

    def add_prompts(self, prompts: Iterable[Prompt]) -> dict[int, np.ndarray]:
        """One round of clicks, boxes and scribbles: as :meth:`add_clicks`, then each box's class is
        kept only inside the box on its slice. Each click remembers its prompt (:meth:`prompts`)."""
        clicks, sources = self._expand(prompts)
        out = self._add_round(clicks, sources)
        self._clip_boxes([p for p in sources if isinstance(p, Box)], out)
        return out

    def _expand(self, prompts: Iterable[Prompt]) -> tuple[list[Click], list[Prompt]]:
        """Every prompt as checked clicks, each with the prompt it came from (a click: itself)."""
        clicks: list[Click] = []
        sources: list[Prompt] = []
        for p in prompts:
            p = normalised(p)
            if isinstance(p, Click):
                p = self._check(p)
            for c in as_clicks([p], self.shape, self._box_inside):
                c = self._check(c)
                clicks.append(c)
                sources.append(c if isinstance(p, Click) else p)
        return clicks, sources

    def _clip_boxes(self, boxes: Iterable[Box], out: dict[int, np.ndarray]) -> None:
        """Keep each box's class only inside the box on its slice (``out``: the changed slices, updated)."""
        for b in dict.fromkeys(boxes):
            inside = box_mask(b, self.shape[1:])
            out[int(b.z)] = self._paint(int(b.z), {b.label: (self._labels[b.z] == b.label) & inside})

    @torch.inference_mode()
    def _box_inside(self, b: Box) -> tuple[int, int]:
        """Where a box's positive click goes: deep in the candidates least like the outside (``prompts.py``)."""
        b = self._check(Click(b.z, b.y0, b.x0, b.label)) and b.ordered()
        self._check(Click(b.z, b.y1, b.x1, b.label))
        view = self._view(False)

        def feats(points):
            f = torch.stack([view.click_feats(self.model, Click(b.z, y, x, b.label), self.device) for y, x in points])
            return torch.nn.functional.normalize(f.float(), dim=1)

        candidates, outside = box_candidates(b), box_outside(b, self.shape)
        if not outside:
            return candidates[len(candidates) // 2]
        inner = feats(candidates)
        score = ((inner @ inner.T).mean(1) - (inner @ feats(outside).T).amax(1)).cpu().numpy()  # like the box, unlike outside
        return deepest_candidate(candidates, score)

    def _check(self, c: Click) -> Click:
        z, y, x = (int(round(v)) for v in (c.z, c.y, c.x))
        if not (0 <= z < self.shape[0] and 0 <= y < self.shape[1] and 0 <= x < self.shape[2]):
            raise InputError(f"click {(c.z, c.y, c.x)} is outside the volume of shape {self.shape}")
        if int(c.label) <= 0:
            raise InputError(f"click {(c.z, c.y, c.x)} has label {c.label}: labels must be positive integers")
        return Click(z, y, x, int(c.label), bool(c.positive))

    def add_clicks(self, clicks: Iterable[Click]) -> dict[int, np.ndarray]:
        """One round: record the clicks, decode each clicked slice now; ``propagate()`` does the rest."""
        clicks = [self._check(c) for c in clicks]
        return self._add_round(clicks, list(clicks))

    @torch.inference_mode()
    def _add_round(self, clicks: list[Click], sources: list[Prompt]) -> dict[int, np.ndarray]:
        """:meth:`add_clicks` of checked clicks, each recorded with its prompt (``sources[i]``)."""
        if not clicks:
            return {}
        known = set(self.model.config.class_ids)
        for c in clicks:
            has_positive = c.positive or any(r.click.label == c.label and r.click.positive for r in self._clicks) \
                or any(o.label == c.label and o.positive for o in clicks)
            if not has_positive and c.label not in known:
                raise InputError(f"negative click {(c.z, c.y, c.x)} for label {c.label}, which has no positive click yet")
        rnd = self._new_round("clicks")
        self._record(rnd, clicks, sources)
        unfinished, self._pending = self._pending, []
        out: dict[int, np.ndarray] = {}
        effects = {label: _effect(clicks, label, self._has_voxels(label, next(c.z for c in clicks if c.label == label)))
                   for label in {c.label for c in clicks}}
        self._last_starts = sorted({c.z for c in clicks})
        for z in sorted({c.z for c in clicks}):
            labels = sorted({c.label for c in clicks if c.z == z})
            out[z] = self._start_pass(z, labels, effects)
        # a propagation cut short by these clicks finishes inside this round
        self._resume(unfinished, lambda p, label: not any(c.z == p.start and c.label == label for c in clicks))
        return out

    def _resume(self, unfinished: list[_Pass], keep) -> None:
        """Queue again the passes a new round cut short, for their labels that ``keep(pass, label)``."""
        for p in unfinished:
            labels = [label for label in p.labels if keep(p, label)]
            if labels:
                self._start_pass(p.start, labels, p.effects)

    def _record(self, rnd: Round, clicks: list[Click], sources: list[Prompt], rounds: list[int] | None = None) -> None:
        """Put the clicks in effect as part of round ``rnd`` (features sampled now), with their prompts;
        ``rounds``: each click's interaction round (default: ``rnd``'s)."""
        view = self._view(False)
        for i, (c, source) in enumerate(zip(clicks, sources)):
            index = rnd.index if rounds is None else rounds[i]
            record = ClickRecord(c, index, view.click_feats(self.model, c, self.device), None if source is c else source)
            rnd.clicks_added.append(record)
            self._clicks.append(record)

    def _has_voxels(self, label: int, near: int, chunk: int = 8) -> bool:
        """Whether ``label`` is anywhere in the labels, searched outward from slice ``near`` in chunks
        (a correction's class is found within a chunk or two, not after a whole-volume compare)."""
        starts = sorted(range(0, self.shape[0], chunk), key=lambda s: abs(s + chunk // 2 - near))
        return any(bool((self._labels[s : s + chunk] == label).any()) for s in starts)

    @torch.inference_mode()
    def _start_pass(self, z: int, labels: list[int], effects: dict[int, str] | None = None) -> np.ndarray:
        """Decode slice ``z`` for ``labels`` (zoomed ones on the fine view) and queue their propagation.

        A label's first pass runs on the model's view; if it then finds a small object, the label is
        zoomed from now on and decoded again on the fine view (its coarse pass stays queued without it).
        """
        fine = [label for label in labels if self._zoomed.get(label)]
        coarse = [label for label in labels if not self._zoomed.get(label)]
        effects = effects or {}
        new, missed = self._decode_pass(z, coarse, False, effects) if coarse else (None, set())
        area = self.spacing[1] * self.spacing[2]
        small = [label for label in coarse if self.zoom and label not in self._zoomed and label in missed
                 and (new == label).sum() * area < SMALL_MM2]
        for label in coarse:
            self._zoomed.setdefault(label, label in small)
        if small:
            self._pending[-1].regions.update({label: (1, 0) for label in small})  # never active
            fine += small
        for label in fine:  # one pass per zoomed class: each has its own window
            new, _ = self._decode_pass(z, [label], True, effects)
        return new

    def _decode_pass(self, z: int, labels: list[int], fine: bool,
                     effects: dict[int, str]) -> tuple[np.ndarray, set[int]]:
        """Decode ``labels`` on slice ``z``, paint them and queue their pass: -> ``(new slice labels,
        the labels whose network mask missed one of their positive clicks here)``."""
        view = self._view(fine)
        anchors = self._anchors(labels, fine)
        chain = Chain(self.model, anchors)
        centre = self._centre(labels[0], z) if fine else None
        scores, groups, _ = self._decode(view, chain, z, (z + 1, z - 1), len(labels) + 1, centre)
        self._note_doubt(view, z, scores, labels)
        radius = tuple(HONOUR_RADIUS_MM / s for s in self.spacing[1:])
        writes, changes, missed = {}, {}, set()
        for g, label in enumerate(labels, start=1):
            here = [r.click for r in self._clicks if r.click.label == label and r.click.z == z]
            points = [(c.y, c.x) for c in here if c.positive]
            negatives = [(c.y, c.x) for c in here if not c.positive]
            mask = groups == g
            if any(not mask[p] for p in points):
                missed.add(label)
            if label in missed or any(mask[p] for p in negatives):
                mask = honour_clicks(mask, self._score_on_input(scores, g, view.prepared), points, negatives, radius)
            effect, old = effects.get(label, "replace"), self._labels[z] == label
            seed = np.zeros_like(old)
            for y, x in (points if effect == "add" else negatives):
                seed[y, x] = True
            writes[label], change = local_change(keep_clicked(mask, points), old, effect, seed)
            # a correction that changes nothing here (a click inside what is already right) may
            # still carry on from the class on this slice, e.g. to push it past where it stopped
            changes[label] = change if change.any() else writes[label]
        new = self._paint(z, writes)
        self._pending.append(_Pass(z, labels, chain, fine, {label: self._region(label, z) for label in labels},
                                   {label: effects.get(label, "replace") for label in labels}, changes))
        return new, missed

    # ------------------------------------------------------------------ automatic, removal, edits
    def auto_steps(self, classes: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Automatic segmentation as a new round, slice by slice (classes with clicks are kept)."""
        wanted = list(self.model.config.class_ids) if classes is None else [int(c) for c in classes]
        self._new_round("auto")
        self._pending = []
        keep = self.locked | {r.click.label for r in self._clicks}
        ids, fresh = list(self.model.config.class_ids), set(wanted) - keep
        view = self._view(False)

        def note(z: int, scores: torch.Tensor) -> None:
            self._note_doubt(view, z, scores, ids, fresh)

        for z, auto in auto_slices(self.model, self.prepared, self.cache, wanted, on_scores=note, z_step=self.z_step):
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

    def remove_class(self, label: int) -> dict[int, np.ndarray]:
        """Remove a class's clicks and voxels as one round: ``{z: new slice labels}`` of the changed slices."""
        rnd = self._new_round("remove")
        self._pending = []
        removed = [r for r in self._clicks if r.click.label == label]
        rnd.clicks_removed.extend(removed)
        self._zoomed.pop(label, None)
        self._clicks = [r for r in self._clicks if r.click.label != label]
        for z in np.flatnonzero((self._labels == label).reshape(self.shape[0], -1).any(1)):
            self._paint(int(z), {label: None})
        self._doubt.drop(label)
        self._close_round()
        return {z: self._labels[z].copy() for z in sorted(rnd.changes)}

    @torch.inference_mode()
    def restore(self, labels_zyx: np.ndarray, clicks: Iterable[Prompt], rounds: Iterable[int] | None = None) -> None:
        """Put saved work back (e.g. an autosave) as one round: labels as they were, prompts in effect.

        ``clicks``: clicks, boxes and scribbles (``rounds``: one per item). Their clicks' features are
        sampled again on this image (a box's clicks found again); nothing is decoded or propagated.
        """
        items = list(clicks)
        rounds = [int(r) for r in rounds] if rounds is not None else [0] * len(items)
        expanded = [(c, s, r) for p, r in zip(items, rounds) for c, s in zip(*self._expand([p]))]
        self.set_labels(labels_zyx)  # closes an "edit" round; the clicks join it
        if expanded:
            clicks, sources, click_rounds = (list(v) for v in zip(*expanded))
            self._record(self._undo[-1], clicks, sources, click_rounds)
        self._round_counter = max([self._round_counter, *rounds])

    def set_labels(self, labels_zyx: np.ndarray) -> None:
        """Import labels edited elsewhere (e.g. painted by hand) as one undoable round."""
        if labels_zyx.shape != self.shape:
            raise InputError(f"labels of shape {labels_zyx.shape} do not match the image {self.shape}")
        self._new_round("edit")
        self._pending = []
        new = np.asarray(labels_zyx).astype(np.uint16)
        edited = np.flatnonzero((new != self._labels).reshape(self.shape[0], -1).any(1))
        for z in edited:
            self._write(int(z), new[z])
        self._doubt.clear_slices(edited)  # edited by hand: the user has looked there
        self._close_round()
