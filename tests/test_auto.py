"""Automatic segmentation gives the labels of the straightforward path on the real CT.

The reference here is written the plain way: two decoder calls per slice (propagated centres, then
the learned embeddings), every group map resized to the network grid and then to the input grid,
argmax. The engine fuses the two decodes into one batched call and resizes only what can win
(``inference/auto.py``, ``PreparedImage.labels_on_input``); its labels must stay the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_s2vnet.inference.auto import auto_volume, default_start, outward_order
from napari_s2vnet.inference.prepared import FeatureCache, PreparedImage, prepare_image, slice_scores
from napari_s2vnet.model.s2vnet import Chain


def _straightforward_labels(prepared: PreparedImage, scores: torch.Tensor) -> np.ndarray:
    """``(1, G, H/2, W/2)`` -> ``(Y, X)``: resize every group map twice, then argmax."""
    h, w = prepared.hw
    net = F.interpolate(scores, size=tuple(prepared.net.shape[-2:]), mode="bilinear", align_corners=False)
    full = F.interpolate(net[:, :, :h, :w], size=prepared.shape[1:], mode="bilinear", align_corners=False)
    return full[0].argmax(0).numpy()


@torch.inference_mode()
def _reference_volume(model, prepared: PreparedImage) -> np.ndarray:
    ids = np.array((0,) + model.config.class_ids, dtype=np.uint16)
    cache = FeatureCache(model, prepared, torch.device("cpu"))
    anchors = model.auto_anchors(1)
    g = model.config.num_classes + 1
    labels = np.zeros(prepared.shape, np.uint16)
    start = default_start(prepared)
    first = Chain(model, anchors).step(cache.get(start))
    labels[start] = ids[_straightforward_labels(prepared, slice_scores(first, anchors.groups, anchors.valid, g))]
    for order in outward_order(start, prepared.shape[0]):
        chain = Chain(model, anchors, first)
        for z in order:
            feats = cache.get(z)
            scores = slice_scores(chain.step(feats), anchors.groups, anchors.valid, g)
            fresh = model.decode(feats, anchors.centres, anchors.valid)
            scores = scores + slice_scores(fresh, anchors.groups, anchors.valid, g)
            labels[z] = ids[_straightforward_labels(prepared, scores)]
    return labels


@pytest.mark.parametrize("inplane_mm", [None, 1.5])
def test_auto_labels_equal_the_straightforward_path_on_the_real_ct(predictor, ct_internal, inplane_mm):
    """24 slices of the bundled CT, on its own 3 mm grid and declared at 1.5 mm in-plane (then the
    network grid is half the input grid and the second resize is exercised)."""
    image, _, spacing = ct_internal
    image = image[44:68]
    if inplane_mm is not None:
        spacing = (spacing[0], inplane_mm, inplane_mm)
    model = predictor.model
    prepared = prepare_image(image, spacing, "CT", model.config.pixel_spacing_mm)
    new = auto_volume(model, prepared, FeatureCache(model, prepared, torch.device("cpu")))
    ref = _reference_volume(model, prepared)
    classes = [c for c in np.unique(ref) if c]
    assert len(classes) >= 5
    dice = [2 * np.sum((new == c) & (ref == c)) / (np.sum(new == c) + np.sum(ref == c)) for c in classes]
    assert np.mean(new == ref) >= 0.9999 and min(dice) >= 0.999
