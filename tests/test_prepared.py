"""Mapping class scores back to the input grid: exact, and the same as resizing every class map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_s2vnet.inference.prepared import bilinear_argmax, prepare_image


@pytest.mark.parametrize("k,h,w,out", [(12, 40, 50, (512, 512)), (5, 37, 45, (300, 128)), (3, 64, 64, (50, 70))])
def test_bilinear_argmax_equals_resize_then_argmax(k, h, w, out):
    torch.manual_seed(k)
    scores = F.interpolate(torch.randn(1, k, h // 4 + 1, w // 4 + 1), size=(h, w), mode="bilinear")[0] * 3
    reference = F.interpolate(scores[None], size=out, mode="bilinear", align_corners=False)[0].argmax(0)
    assert (bilinear_argmax(scores, out) == reference).float().mean() > 0.9999


def test_prepared_image_grid_and_padding():
    image = np.random.default_rng(0).normal(0, 100, size=(5, 101, 122)).astype(np.float32)
    prep = prepare_image(image, (3.0, 1.5, 1.5), "CT", 3.0)
    assert prep.hw == (50, 61) and prep.net.shape == (5, 2, 64, 64)
    assert float(prep.net[:, :, 50:].abs().max()) == 0.0  # padding is zero
    y, x = prep.to_net(100, 121)
    assert abs(y - 49.5 * 1.0) < 0.3 and abs(x - 60.5) < 0.3  # the last input pixel maps to the last net pixel


@pytest.mark.parametrize("shape,hw", [((1, 101, 122), (50, 61)), ((1, 50, 61), (50, 61))])
def test_labels_on_input_equals_resizing_every_group(shape, hw):
    """The same labels as the straightforward path: every group map to the network grid, crop, to
    the input grid, argmax (``hw`` = input grid: the second resize is the identity)."""
    from napari_s2vnet.inference.prepared import PreparedImage

    torch.manual_seed(1)
    logits = F.interpolate(torch.randn(1, 20, 8, 8) * 4, size=(32, 32), mode="bilinear")
    scores = torch.softmax(logits, 1)
    prep = PreparedImage(torch.zeros(1, 2, 64, 64), shape, hw)
    net = F.interpolate(scores, size=(64, 64), mode="bilinear", align_corners=False)[:, :, : hw[0], : hw[1]]
    reference = F.interpolate(net, size=shape[1:], mode="bilinear", align_corners=False)[0].argmax(0).numpy()
    labels = prep.labels_on_input(scores)
    assert labels.dtype == np.uint8 and len(np.unique(reference)) > 5
    np.testing.assert_array_equal(labels, reference)
