"""Dice and HD95 on hand-made label volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_s2vnet.errors import InputError
from napari_s2vnet.evaluation.metrics import _hd95, dice_per_class, hd95_per_class, summarize


def test_dice_known_values():
    gt = np.zeros((4, 10, 10), np.uint8)
    pred = np.zeros_like(gt)
    gt[:, :5, :] = 1      # 200 voxels
    pred[:, :4, :] = 1    # 160 voxels, all inside gt
    gt[:, 8:, :2] = 2     # class 2 missed entirely
    pred[:, 8:, 8:] = 3   # class 3 only predicted
    dice = dice_per_class(pred, gt)
    assert dice == pytest.approx({1: 2 * 160 / 360, 2: 0.0, 3: 0.0})
    assert dice_per_class(pred, gt, labels=[1, 7]) == pytest.approx({1: 2 * 160 / 360})
    assert dice_per_class(gt, gt) == {1: 1.0, 2: 1.0}


def test_dice_accepts_float_labels_and_rejects_shape_mismatch():
    gt = np.zeros((3, 3, 3), np.float32)
    gt[1, 1, 1] = 5.0
    assert dice_per_class(gt.astype(np.uint16), gt) == {5: 1.0}
    with pytest.raises(InputError):
        dice_per_class(gt[:2], gt)


@pytest.mark.parametrize("axis,shift", [(0, 2), (2, 3)])
def test_hd95_of_shifted_cubes_is_the_shift_in_mm(axis, shift):
    spacing = (3.0, 0.8, 1.5)
    gt = np.zeros((24, 30, 30), np.uint8)
    gt[6:16, 8:18, 8:18] = 4
    pred = np.roll(gt, shift, axis=axis)
    hd = hd95_per_class(pred, gt, spacing)
    assert hd[4] == pytest.approx(shift * spacing[axis])


def test_hd95_identical_and_one_sided():
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    pred = gt.copy()
    pred[6:, 6:, 6:] = 2
    hd = hd95_per_class(pred, gt, (1.0, 1.0, 1.0))
    assert hd[1] == 0.0 and math.isinf(hd[2])
    with pytest.raises(InputError):
        hd95_per_class(pred, gt, (1.0, 1.0))


def test_summarize_means_and_undefined_count():
    s = summarize({1: 0.5, 2: 1.0}, {1: 2.0, 2: float("inf")})
    assert s == {"mean_dice": 0.75, "n_classes": 2, "mean_hd95": 2.0, "n_hd95_undefined": 1}
    assert math.isnan(summarize({})["mean_dice"])


def test_cropping_matches_the_uncropped_computation():
    rng = np.random.default_rng(0)
    gt = np.zeros((20, 24, 24), np.uint8)
    for c in range(1, 6):
        z, y, x = rng.integers(3, 17), rng.integers(3, 21), rng.integers(3, 21)
        gt[z - 3:z + 3, y - 3:y + 2, x - 2:x + 3] = c
    pred = np.roll(gt, (1, -2, 1), axis=(0, 1, 2))
    spacing = (2.0, 1.0, 0.7)
    hd = hd95_per_class(pred, gt, spacing)
    for c, value in hd.items():
        assert value == pytest.approx(_hd95(pred == c, gt == c, spacing))


def test_binary_dice_of_masks():
    from napari_s2vnet.evaluation.metrics import binary_dice

    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert binary_dice(a, b) == 1.0  # both empty
    a[:2] = True
    assert binary_dice(a, b) == 0.0
    b[1:3] = True
    assert binary_dice(a, b) == 0.5  # 2 * 4 / (8 + 8)
