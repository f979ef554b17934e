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


def test_outward_order_with_a_z_step_visits_every_other_slice_and_both_ends():
    up, down = outward_order(5, 12, 2)
    assert up == [7, 9, 11] and down == [3, 1, 0]
    up, down = outward_order(5, 11, 2)
    assert up == [7, 9, 10] and down == [3, 1, 0]
    assert outward_order(0, 3, 4) == ([2], [])
    assert outward_order(4, 12, 1) == (list(range(5, 12)), [3, 2, 1, 0])


def test_z_step_keeps_decoded_slices_at_most_z_mm_apart(predictor):
    from napari_s2vnet.inference.auto import z_step_for

    model = predictor.model
    assert model.config.pixel_spacing_mm == 3.0
    assert [z_step_for(model, sz) for sz in (3.0, 2.5, 1.5, 1.0, 0.7, 5.0)] == [1, 1, 2, 3, 4, 1]
    assert z_step_for(model, 0.5, z_mm=0) == 1 and z_step_for(model, 0.5, z_mm=1.0) == 2
    with pytest.raises(ValueError):
        z_step_for(model, 1.0, z_mm=-1)


def test_z_step_decodes_the_slices_of_the_coarse_grid_and_interpolates_between(predictor, ct_internal):
    """The real CT with every slice doubled (3 mm -> 1.5 mm, the copies identical): decoding every
    second slice from an even start meets exactly the images of the 3 mm run, so those slices get its
    labels; each copy between two decoded slices gets the interpolation of their scores, and every
    slice is yielded once, outward from the start."""
    from napari_s2vnet.inference.auto import auto_slices

    image, _, spacing = ct_internal
    image = image[44:60]
    model = predictor.model
    coarse = prepare_image(image, spacing, "CT", model.config.pixel_spacing_mm)
    fine = prepare_image(np.repeat(image, 2, axis=0), (spacing[0] / 2, *spacing[1:]), "CT", model.config.pixel_spacing_mm)
    ref = auto_volume(model, coarse, FeatureCache(model, coarse, torch.device("cpu")), start=7)
    seen, scores = [], {}
    new = np.zeros(fine.shape, np.uint16)
    for z, lab in auto_slices(model, fine, FeatureCache(model, fine, torch.device("cpu")), start=14, z_step=2,
                              on_scores=lambda z, s: scores.__setitem__(z, s.clone())):
        seen.append(z)
        new[z] = lab
    assert seen == [14] + list(range(15, 32)) + list(range(13, -1, -1))
    assert (new[0:31:2] == ref).all()  # 0, 2, ..., 30: the coarse run's slices (31, the last, is decoded too)
    assert torch.allclose(scores[15], (scores[14] + scores[16]) / 2, atol=1e-6)
