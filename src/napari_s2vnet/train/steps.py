"""One training step of each kind: automatic episodes and simulated-click episodes.

Both run the same network over ``T`` consecutive slices with :class:`~napari_s2vnet.model.s2vnet.Chain`
(the propagation stepper inference uses); only the initial centres differ.

Interactive episodes follow the evaluation protocol (and what a user does), RITM-style:

1. 1-3 targets of any kind (:mod:`napari_s2vnet.train.targets`: a class, a union, a part, a
   supervoxel, a synthetic lesion) get a first click deep inside on the first slice; that slice is
   decoded and the centres propagate through the episode (loss on every slice).
2. With probability ``second_round_fraction``, 1-3 correction rounds follow: each places one click
   at the deepest point of the largest 3D error region of the current prediction over the episode's
   slices (positive for a miss, negative for a leak), on whatever slice it lies, then decodes that
   slice from all clicks so far and propagates both ways from it, as ``Session`` does. Intermediate
   rounds run without gradient; the last one is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_s2vnet.evaluation.clicks import deepest_point, first_click, largest_error
from napari_s2vnet.model.clicks import ClickBatch
from napari_s2vnet.model.s2vnet import Anchors, Chain, S2VNet, group_probabilities
from napari_s2vnet.train.episodes import EpisodeBatch
from napari_s2vnet.train.losses import slice_losses
from napari_s2vnet.train.targets import KIND_WEIGHTS, episode_targets


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
    """Automatic episode: learned class centres on the first slice, propagated through the rest."""
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


@dataclass(frozen=True)
class _SimClick:
    z: int
    y: float
    x: float
    group: int  # 0-based target index
    round: int
    positive: bool


def _click_batch(model: S2VNet, feats: list[dict[int, torch.Tensor]], clicks: list[list[_SimClick]], kc: int,
                 hw: tuple[int, int]) -> ClickBatch:
    """Padded clicks of every episode, features sampled on each click's own slice."""
    b = len(clicks)
    device = feats[0][model.config.embed_stride].device
    pos = [[c for c in cl if c.positive] for cl in clicks]
    neg = [[c for c in cl if not c.positive] for cl in clicks]
    p, q = max(1, max(map(len, pos))), max(1, max(map(len, neg)))
    dim = 4 * feats[0][model.config.embed_stride].shape[1]
    pos_feats, neg_feats = torch.zeros(b, p, dim, device=device), torch.zeros(b, q, dim, device=device)
    grp = torch.zeros(b, p, dtype=torch.long)
    rnd = torch.zeros(b, p, dtype=torch.long)
    pval = torch.zeros(b, p, dtype=torch.bool)
    nval = torch.zeros(b, q, dtype=torch.bool)
    cval = torch.zeros(b, kc, dtype=torch.bool)
    for i in range(b):
        for out, items, valid in ((pos_feats, pos[i], pval), (neg_feats, neg[i], nval)):
            for j, c in enumerate(items):
                pt = torch.tensor([[[c.y, c.x]]], dtype=torch.float32, device=device)
                out[i, j] = model.sample_clicks({s: f[i : i + 1] for s, f in feats[c.z].items()}, pt, hw)[0, 0]
                valid[i, j] = True
        for j, c in enumerate(pos[i]):
            grp[i, j], rnd[i, j] = c.group, c.round
            cval[i, c.group] = True
    return ClickBatch(pos_feats, grp.to(device), rnd.to(device), pval.to(device), neg_feats, nval.to(device), cval.to(device))


def _class_target(model: S2VNet, anchors: Anchors, slot_of_group: torch.Tensor) -> torch.Tensor:
    """Class-head target per centre: 0 for the learned background, the target's model slot for its
    click centres (-100 = ignored: not a model class), -100 for negative-click centres."""
    table = torch.cat([torch.zeros_like(slot_of_group[:, :1]), slot_of_group], 1)  # (B, 1 + kc)
    target = table.gather(1, anchors.groups)
    index = torch.arange(anchors.groups.shape[1], device=target.device)
    return target.masked_fill((anchors.groups == 0) & (index >= model.config.num_background), -100)


def _round(model: S2VNet, feats, clicks, kc, hw, start: int, targets: torch.Tensor, slot: torch.Tensor,
           num_groups: int, train: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Decode slice ``start`` from the clicks, propagate both ways; -> (mean losses, group map (B,T,S,S))."""
    t = len(feats)
    with torch.set_grad_enabled(train and torch.is_grad_enabled()):
        anchors = model.click_anchors(_click_batch(model, feats, clicks, kc, hw))
        cls_target = _class_target(model, anchors, slot)
        chain = Chain(model, anchors)
        first = chain.step(feats[start])
        outs = {start: first}
        for step in (1, -1):
            branch = Chain(model, anchors, first)
            for z in range(start + step, t if step > 0 else -1, step):
                outs[z] = branch.step(feats[z])
        acc: dict[str, torch.Tensor] = {}
        preds = []
        for z in range(t):
            if train:
                _add(acc, slice_losses(outs[z], anchors.groups, anchors.valid, targets[:, z], num_groups, cls_target))
            with torch.no_grad():
                logits = F.interpolate(outs[z].mask_logits.float(), size=targets.shape[-2:], mode="bilinear",
                                       align_corners=False)
                preds.append(group_probabilities(logits, anchors.groups, anchors.valid, num_groups).argmax(1))
    return {k: v / t for k, v in acc.items()}, torch.stack(preds, 1)


def _correction(pred: np.ndarray, target: np.ndarray, n_groups: int) -> tuple[int, tuple[int, int, int], bool] | None:
    """The largest 3D error region over all targets of one episode -> (group, (z, y, x), positive)."""
    best = None
    for g in range(1, n_groups + 1):
        found = largest_error(pred == g, target == g)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], g, found[1], found[2])
    if best is None:
        return None
    point = deepest_point(best[2], (3.0, 1.0, 1.0))
    return best[1] - 1, point, best[3]


def interactive_step(
    model: S2VNet, batch: EpisodeBatch, lut: torch.Tensor, rng: np.random.Generator, second_round_fraction: float,
    max_corrections: int = 3, mix: tuple[float, ...] = KIND_WEIGHTS, lesion_donor: float = 0.0,
) -> dict[str, torch.Tensor]:
    b, t, _, s, _ = batch.images.shape
    device = batch.images.device
    made = [episode_targets(batch.images[i].cpu().numpy(), batch.labels[i].cpu().numpy(), rng, mix=mix,
                            lesion_donor=lesion_donor) for i in range(b)]
    images = torch.from_numpy(np.stack([m.images for m in made])).to(device)
    targets_np = np.stack([m.targets for m in made])
    targets = torch.from_numpy(targets_np).to(device)
    kc = max(1, max(len(m.kinds) for m in made))
    num_groups = kc + 1
    slot = torch.full((b, kc), -100, dtype=torch.long)
    for i, m in enumerate(made):
        for g, cid in enumerate(m.class_ids):
            if batch.auto[i] and 0 < cid < len(lut) and lut[cid] > 0:
                slot[i, g] = lut[cid]
    slot = slot.to(device)
    feats = _split_feats(model.encode(images.flatten(0, 1)), b, t)
    clicks: list[list[_SimClick]] = []
    for i, m in enumerate(made):
        first = [first_click(m.targets[0] == g, rng=rng, jitter=0.3) for g in range(1, len(m.kinds) + 1)]
        clicks.append([_SimClick(0, float(c.point[0]), float(c.point[1]), g, 0, True) for g, c in enumerate(first)])
    corrections = int(rng.integers(1, max_corrections + 1)) if rng.random() < second_round_fraction else 0
    losses, pred = _round(model, feats, clicks, kc, (s, s), 0, targets, slot, num_groups, train=True)
    for r in range(1, corrections + 1):
        starts = []
        pred_np = pred.cpu().numpy()
        for i, m in enumerate(made):
            found = _correction(pred_np[i], targets_np[i], len(m.kinds)) if m.kinds else None
            if found is not None:
                g, (z, y, x), positive = found
                clicks[i] = clicks[i] + [_SimClick(z, float(y), float(x), g, r, positive)]
                starts.append(z)
        if not starts:
            break
        start = int(rng.choice(starts))  # one start slice per step: the episodes share the chain
        last = r == corrections
        new, pred = _round(model, feats, clicks, kc, (s, s), start, targets, slot, num_groups, train=last)
        if last:
            losses = {k: (losses[k] + new[k]) / 2 for k in losses}
    return losses
