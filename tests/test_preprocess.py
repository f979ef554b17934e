"""Intensity normalisation and in-plane resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_s2vnet.data.preprocess import (
    inplane_zoom,
    normalize_intensity,
    resample_inplane,
    target_hw,
)
from napari_s2vnet.errors import InputError


def test_normalize_ct():
    hu = np.array([-2000, -1000, -160, 40, 240, 1000, 3000], np.float32).reshape(1, 1, 7)
    out = normalize_intensity(hu, "CT")
    assert out.shape == (2, 1, 1, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [0, 0, 0, 0.5, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(out[1, 0, 0], [0, 0, 0.42, 0.52, 0.62, 1, 1], atol=1e-6)


def test_normalize_mr_ignores_zero_background():
    rng = np.random.default_rng(0)
    vol = np.zeros((4, 20, 20), np.float32)
    vol[:, 5:15, 5:15] = rng.uniform(100, 500, size=(4, 10, 10))
    out = normalize_intensity(vol, "mr")
    assert out.shape == (2, 4, 20, 20) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    inside = out[0, :, 5:15, 5:15]
    assert inside.min() == 0 and inside.max() == 1 and 0.4 < inside.mean() < 0.6
    np.testing.assert_allclose(out[1], np.sqrt(out[0]), atol=1e-6)
    constant = normalize_intensity(np.full((2, 3, 3), 7.0), "MR")
    assert np.isfinite(constant).all()


def test_normalize_unknown_modality():
    with pytest.raises(InputError):
        normalize_intensity(np.zeros((2, 3, 3)), "PET")


def test_target_hw_and_zoom():
    assert inplane_zoom((0.75, 1.5), 1.5) == (0.5, 1.0)
    assert target_hw((101, 122), (3.0, 3.0), 6.0) == (50, 61)
    assert target_hw((512, 512), (0.7, 0.7), 1.5) == (239, 239)


def test_resample_round_trip_shapes():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(10, 101, 122)).astype(np.float32)
    small = resample_inplane(image, (50, 61), "linear")
    assert small.shape == (10, 50, 61) and small.dtype == np.float32
    back = resample_inplane(small, (101, 122), "linear")
    assert back.shape == (10, 101, 122)

    channels = rng.normal(size=(2, 10, 101, 122)).astype(np.float32)
    assert resample_inplane(channels, (50, 61)).shape == (2, 10, 50, 61)

    smooth = np.broadcast_to(np.linspace(0, 1, 122, dtype=np.float32), (3, 101, 122))
    there = resample_inplane(smooth, (50, 61))
    np.testing.assert_allclose(resample_inplane(there, (101, 122)), smooth, atol=0.02)


def test_resample_nearest_keeps_labels():
    labels = np.zeros((5, 101, 122), np.uint16)
    labels[:, 10:60, 20:90] = 3
    labels[:, 40:80, 50:100] = 517
    small = resample_inplane(labels, (50, 61), "nearest")
    assert small.dtype == np.uint16 and set(np.unique(small)) == {0, 3, 517}
    back = resample_inplane(small, (101, 122), "nearest")
    assert back.shape == labels.shape and set(np.unique(back)) == {0, 3, 517}
    assert (back == labels).mean() > 0.95
    same = resample_inplane(labels, (101, 122), "nearest")
    np.testing.assert_array_equal(same, labels)


def test_resample_tensor_stays_tensor():
    logits = torch.randn(3, 4, 20, 30)
    out = resample_inplane(logits, (40, 60), "linear")
    assert isinstance(out, torch.Tensor) and out.shape == (3, 4, 40, 60)
    labels = torch.randint(0, 5, (4, 20, 30))
    out = resample_inplane(labels, (10, 15), "nearest")
    assert out.dtype == labels.dtype and out.shape == (4, 10, 15)
    with pytest.raises(ValueError):
        resample_inplane(np.zeros((4, 5)), (2, 2))
