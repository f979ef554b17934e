"""Automatic segmentation: learned class centres propagated through the volume from a start slice.

The start slice (a well-filled slice near the middle of the scan) is decoded from the learned class
embeddings; its refined centres then initialise the neighbours, outward in both directions, with
recurrent centroid aggregation (classes absent on the last slice restart from their embedding).

``fuse_anchor`` (default on, our choice): every slice is also decoded from the learned embeddings
alone, and the two sets of class probabilities are averaged before the argmax. Only the propagated
centres travel to the next slice. On the bundled CT this keeps the benefit of propagation for small
structures while stopping a propagated centre (e.g. colon) from drifting onto an organ that appears
later in the chain (e.g. the bladder); docs/benchmarks.md reports all three variants. The two
decodes of a slice run as one decoder call on a batch of two centre sets (propagated, embeddings)
that share the slice's pixel projections: same result, less work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.prepared import FeatureCache, PreparedImage, slice_scores
from napari_s2vnet.model.cluster_decoder import DecoderOutput
from napari_s2vnet.model.s2vnet import Chain, S2VNet


def default_start(prepared: PreparedImage) -> int:
    """A central, well-filled slice: the slice closest to the middle among the 50% largest bodies."""
    body = (prepared.net[:, 1] > 0.05).flatten(1).sum(1).numpy()
    z_count = len(body)
    candidates = np.flatnonzero(body >= np.median(body))
    return int(candidates[np.argmin(np.abs(candidates - (z_count - 1) / 2))]) if len(candidates) else z_count // 2


def outward_order(start: int, z_count: int, z_step: int = 1) -> tuple[list[int], list[int]]:
    """Slices decoded above and below ``start``, nearest first: every ``z_step``-th, and the last."""
    up, down = list(range(start + z_step, z_count, z_step)), list(range(start - z_step, -1, -z_step))
    if start < z_count - 1 and (not up or up[-1] != z_count - 1):
        up.append(z_count - 1)
    if start > 0 and (not down or down[-1] != 0):
        down.append(0)
    return up, down


def z_step_for(model: S2VNet, spacing_z: float, z_mm: float | None = None) -> int:
    """How many input slices apart automatic mode decodes: the most that keeps decoded slices at most
    ``z_mm`` apart. ``None``: the model's in-plane spacing (``config.pixel_spacing_mm``), so thin
    slices are decoded on a grid about as coarse in z as in-plane (as nnU-Net resamples its 3D grid);
    0: every slice."""
    mm = model.config.pixel_spacing_mm if checked_z_mm(z_mm) is None else float(z_mm)
    return max(1, int(mm / spacing_z + 1e-6)) if mm > 0 else 1


def checked_z_mm(z_mm: float | None) -> float | None:
    """``z_mm`` unchanged, or an ``InputError`` if it is negative (the CLI checks it before any work)."""
    if z_mm is not None and z_mm < 0:
        raise InputError(f"--z-mm {z_mm:g} (z_mm): give a spacing in mm, or 0 to decode every slice")
    return z_mm


@torch.inference_mode()
def auto_slices(
    model: S2VNet, prepared: PreparedImage, cache: FeatureCache, classes: Iterable[int] | None = None,
    start: int | None = None, fuse_anchor: bool = True, on_scores: Callable[[int, torch.Tensor], None] | None = None,
    z_step: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z, labels (Y, X) uint16)`` in propagation order: start, then up, then down.

    ``on_scores(z, scores (1, G, h, w))`` sees each slice's group scores (groups = background and
    ``model.config.class_ids``) before its labels are yielded (the session's review scores).
    ``z_step > 1`` decodes every ``z_step``-th slice (:func:`outward_order`); the chain steps from one
    decoded slice to the next, and the slices between get the linear interpolation of their two
    decoded neighbours' scores (a slice's labels come after the farther neighbour's decode).
    """
    ids = np.array((0,) + model.config.class_ids, dtype=np.uint16)
    anchors = model.auto_anchors(1)
    valid = anchors.valid.clone()
    if classes is not None:
        wanted = set(int(c) for c in classes)
        unknown = wanted - set(model.config.class_ids)
        if unknown:
            raise ValueError(f"the model has no class {sorted(unknown)}")
        keep = torch.tensor([g == 0 or model.config.class_ids[g - 1] in wanted for g in anchors.groups[0].tolist()])
        valid &= keep.to(valid.device)
    z_count = prepared.shape[0]
    start = default_start(prepared) if start is None else start
    num_groups = model.config.num_classes + 1
    up, down = outward_order(start, z_count, z_step)

    fuse = fuse_anchor and model.config.use_propagation
    pair_groups, pair_valid = anchors.groups.expand(2, -1), valid.expand(2, -1)

    def labels_of(z: int, scores: torch.Tensor) -> np.ndarray:
        if on_scores is not None:
            on_scores(z, scores)
        return ids[prepared.labels_on_input(scores)]

    def fused_step(chain: Chain, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        """Advance ``chain`` by one slice; -> the scores ``(1, G, h, w)`` of the propagated centres
        plus those of the learned embeddings (one decoder call on a batch of two)."""
        out = model.decode(feats, torch.cat([chain.init(), anchors.centres]), pair_valid)  # features shared
        chain.push(DecoderOutput(out.centres[:1], out.mask_logits[:1], out.class_logits[:1], out.objectness[:1], []))
        return slice_scores(out, pair_groups, pair_valid, num_groups).sum(0, keepdim=True)

    feats = cache.get(start, up[:4] + down[:4])
    first = Chain(model, anchors).step(feats, valid)
    first_scores = slice_scores(first, anchors.groups, valid, num_groups)  # from the embeddings already
    yield start, labels_of(start, first_scores)
    for order in (up, down):
        chain = Chain(model, anchors, first)
        last_z, last_scores = start, first_scores
        for i, z in enumerate(order):
            feats = cache.get(z, order[i + 1 : i + 16])
            if fuse:
                scores = fused_step(chain, feats)
            else:
                scores = slice_scores(chain.step(feats, valid), anchors.groups, valid, num_groups)
            step = 1 if z > last_z else -1
            for zz in range(last_z + step, z, step):  # skipped slices: between their decoded neighbours
                t = (zz - last_z) / (z - last_z)
                yield zz, labels_of(zz, torch.lerp(last_scores, scores, t))
            yield z, labels_of(z, scores)
            last_z, last_scores = z, scores


def auto_volume(model: S2VNet, prepared: PreparedImage, cache: FeatureCache, classes=None, start=None,
                fuse_anchor: bool = True, z_step: int = 1) -> np.ndarray:
    labels = np.zeros(prepared.shape, np.uint16)
    for z, lab in auto_slices(model, prepared, cache, classes, start, fuse_anchor, z_step=z_step):
        labels[z] = lab
    return labels
