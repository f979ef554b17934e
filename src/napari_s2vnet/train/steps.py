"""One training step of each kind: automatic episodes and simulated-click episodes.

Both run the same network over ``T`` consecutive slices with propagation; only the initial
centres differ. Interactive episodes: 1-3 classes present on the first slice get a first click deep
inside; with probability ``second_round_fraction`` the first slice is decoded, a correction click is
placed in the largest error (positive or negative) and the slice is decoded again from the updated
click centres (a refinement round, which is what adaptive sampling weighs); the last round's
centres are then propagated through the remaining slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_s2vnet.evaluation.clicks import correction_click, first_click
from napari_s2vnet.model.clicks import ClickBatch
from napari_s2vnet.model.s2vnet import S2VNet, group_probabilities
from napari_s2vnet.train.episodes import EpisodeBatch
from napari_s2vnet.train.losses import slice_losses


def class_lut(model: S2VNet, max_id: int = 1024) -> torch.Tensor:
    """User id -> automatic slot (1..N), 0 for ids the model does not know."""
    lut = torch.zeros(max_id + 1, dtype=torch.long)
    for slot, cid in enumerate(model.config.class_ids, start=1):
        if cid <= max_id:
            lut[cid] = slot
    return lut


def _add(acc: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    for k, v in new.items():
        acc[k] = acc.get(k, 0) + v


def _split_feats(feats: dict[int, torch.Tensor], b: int, t: int) -> list[dict[int, torch.Tensor]]:
    return [{s: f.view(b, t, *f.shape[1:])[:, i] for s, f in feats.items()} for i in range(t)]


def auto_step(model: S2VNet, batch: EpisodeBatch, lut: torch.Tensor) -> dict[str, torch.Tensor]:
    b, t = batch.labels.shape[:2]
    device = batch.images.device
    feats = _split_feats(model.encode(batch.images.flatten(0, 1)), b, t)
    anchors = model.auto_anchors(b)
    num_groups = model.config.num_classes + 1
    slots = lut.to(device)[batch.labels.clamp(0, len(lut) - 1)]
    acc: dict[str, torch.Tensor] = {}
    for i, out in enumerate(model.run_chain(feats, anchors)):
        target = slots[:, i]
        present = F.one_hot(target.flatten(1), num_groups).amax(1).bool()  # (B, G)
        class_target = torch.where(present.gather(1, anchors.groups), anchors.groups, 0)
        _add(acc, slice_losses(out, anchors.groups, anchors.valid, target, num_groups, class_target))
    return {k: v / t for k, v in acc.items()}


@dataclass
class _Clicks:
    pos: list[list[tuple[float, float, int, int]]]  # per episode: (y, x, group index, round)
    neg: list[list[tuple[float, float]]]
    classes: list[list[int]]  # per episode: user ids of the groups 1..n


def _simulate_first(labels0: np.ndarray, rng: np.random.Generator, min_area: int = 8) -> _Clicks:
    clicks = _Clicks([], [], [])
    for lab in labels0:
        ids, counts = np.unique(lab[lab > 0], return_counts=True)
        ids = ids[counts >= min_area]
        chosen = list(rng.choice(ids, size=min(len(ids), int(rng.integers(1, 4))), replace=False)) if len(ids) else []
        pos = []
        for g, cid in enumerate(chosen):
            c = first_click(lab == cid, rng=rng, jitter=0.3)
            pos.append((float(c.point[0]), float(c.point[1]), g, 0))
        clicks.pos.append(pos)
        clicks.neg.append([])
        clicks.classes.append([int(c) for c in chosen])
    return clicks


def _click_batch(model: S2VNet, feats: dict[int, torch.Tensor], clicks: _Clicks, hw: tuple[int, int]) -> ClickBatch:
    b = len(clicks.pos)
    device = feats[2].device
    p = max(1, max(len(x) for x in clicks.pos))
    q = max(1, max(len(x) for x in clicks.neg))
    kc = max(1, max(len(x) for x in clicks.classes))
    pts = torch.zeros(b, p, 2)
    grp = torch.zeros(b, p, dtype=torch.long)
    rnd = torch.zeros(b, p, dtype=torch.long)
    pval = torch.zeros(b, p, dtype=torch.bool)
    npts = torch.zeros(b, q, 2)
    nval = torch.zeros(b, q, dtype=torch.bool)
    cval = torch.zeros(b, kc, dtype=torch.bool)
    for i in range(b):
        for j, (y, x, g, r) in enumerate(clicks.pos[i]):
            pts[i, j] = torch.tensor([y, x]); grp[i, j] = g; rnd[i, j] = r; pval[i, j] = True
        for j, (y, x) in enumerate(clicks.neg[i]):
            npts[i, j] = torch.tensor([y, x]); nval[i, j] = True
        cval[i, : len(clicks.classes[i])] = True
    pos_feats = model.sample_clicks(feats, pts.to(device), hw)
    neg_feats = model.sample_clicks(feats, npts.to(device), hw)
    return ClickBatch(pos_feats, grp.to(device), rnd.to(device), pval.to(device), neg_feats, nval.to(device), cval.to(device))


def interactive_step(
    model: S2VNet, batch: EpisodeBatch, lut: torch.Tensor, rng: np.random.Generator, second_round_fraction: float
) -> dict[str, torch.Tensor]:
    b, t, _, s, _ = batch.images.shape
    device = batch.images.device
    feats = _split_feats(model.encode(batch.images.flatten(0, 1)), b, t)
    labels_np = batch.labels.cpu().numpy()
    clicks = _simulate_first(labels_np[:, 0], rng)
    kc = max(1, max(len(c) for c in clicks.classes))
    num_groups = kc + 1
    group_lut = torch.zeros(b, int(batch.labels.max()) + 1, dtype=torch.long)
    for i, ids in enumerate(clicks.classes):
        for g, cid in enumerate(ids, start=1):
            group_lut[i, cid] = g
    targets = torch.gather(group_lut, 1, batch.labels.cpu().flatten(1)).view(b, t, s, s).to(device)
    slot_of_class = torch.full((b, kc), -100, dtype=torch.long)
    for i, ids in enumerate(clicks.classes):
        for g, cid in enumerate(ids):
            if batch.auto[i] and cid < len(lut) and lut[cid] > 0:
                slot_of_class[i, g] = lut[cid]

    def decode_first(cl: _Clicks):
        anchors = model.click_anchors(_click_batch(model, feats[0], cl, (s, s)))
        out = model.decode(feats[0], anchors.centres, anchors.valid)
        return anchors, out

    def class_target(anchors) -> torch.Tensor:
        nb, m = model.config.num_background, model.config.centres_per_class
        q = anchors.groups.shape[1] - nb - kc * m
        return torch.cat([torch.zeros(b, nb, dtype=torch.long), slot_of_class.repeat_interleave(m, dim=1),
                          torch.full((b, q), -100, dtype=torch.long)], 1).to(device)

    acc: dict[str, torch.Tensor] = {}
    anchors, out = decode_first(clicks)
    _add(acc, slice_losses(out, anchors.groups, anchors.valid, targets[:, 0], num_groups, class_target(anchors)))
    n_terms = 1
    if rng.random() < second_round_fraction:
        with torch.no_grad():
            logits = F.interpolate(out.mask_logits.float(), size=(s, s), mode="bilinear", align_corners=False)
            pred = group_probabilities(logits, anchors.groups, anchors.valid, num_groups).argmax(1).cpu().numpy()
        tgt0 = targets[:, 0].cpu().numpy()
        for i, ids in enumerate(clicks.classes):
            if not ids:
                continue
            g = int(rng.integers(1, len(ids) + 1))
            c = correction_click(pred[i] == g, tgt0[i] == g)
            if c is None:
                continue
            if c.positive:
                clicks.pos[i].append((float(c.point[0]), float(c.point[1]), g - 1, 1))
            else:
                clicks.neg[i].append((float(c.point[0]), float(c.point[1])))
        anchors, out = decode_first(clicks)
        _add(acc, slice_losses(out, anchors.groups, anchors.valid, targets[:, 0], num_groups, class_target(anchors)))
        n_terms += 1
    history = [out.centres]
    for i in range(1, t):
        init = model.next_init(anchors.centres, history)
        out = model.decode(feats[i], init, anchors.valid)
        history = (history + [out.centres])[-model.config.history :]
        _add(acc, slice_losses(out, anchors.groups, anchors.valid, targets[:, i], num_groups, class_target(anchors)))
        n_terms += 1
    return {k: v / n_terms for k, v in acc.items()}
