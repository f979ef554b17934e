"""Interactive training targets (any structure, supervoxels, synthetic lesions) and the click protocol."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_s2vnet.data.phantom import make_phantom
from napari_s2vnet.evaluation.protocol import dsc_auc, noc, steps_without_drop, summarize
from napari_s2vnet.inference.masks import grown, honour_clicks
from napari_s2vnet.train.targets import (KINDS, MIN_AREA, donor_tissue, episode_targets, lesion_mask, paint_lesion,
                                        parse_mix)
from napari_s2vnet.train.volumes import prepare


@pytest.fixture(scope="module")
def episode():
    ph = make_phantom(7, shape=(12, 96, 96))
    vol = prepare(ph.image, ph.labels.astype(np.int32), ph.spacing, "CT", 3.0, "ph", auto=True)
    z = int(np.argmax((vol.labels > 0).reshape(vol.labels.shape[0], -1).sum(1)))
    zs = slice(max(0, z - 2), max(0, z - 2) + 4)
    return np.ascontiguousarray(vol.image[:, zs].transpose(1, 0, 2, 3)), vol.labels[zs].astype(np.int64)


def test_targets_are_on_the_first_slice_and_reproducible(episode):
    images, labels = episode
    kinds = set()
    for seed in range(40):
        made = episode_targets(images, labels, np.random.default_rng(seed))
        again = episode_targets(images, labels, np.random.default_rng(seed))
        assert np.array_equal(made.targets, again.targets) and np.array_equal(made.images, again.images)
        assert made.targets.shape == labels.shape and made.images.shape == images.shape
        assert 1 <= len(made.kinds) <= 3 and len(made.class_ids) == len(made.kinds)
        for g, kind in enumerate(made.kinds, start=1):
            assert (made.targets[0] == g).sum() >= MIN_AREA  # the first click has somewhere to go
            if kind == "class":
                assert np.array_equal(made.targets == g, (labels == made.class_ids[g - 1]) & (made.targets == g))
            if kind != "lesion":
                assert made.class_ids[g - 1] == 0 or kind == "class"
        if "lesion" not in made.kinds:
            assert np.array_equal(made.images, images)  # only lesions change the image
        kinds.update(made.kinds)
    assert kinds == set(KINDS)


def test_lesion_changes_the_image_inside_its_mask():
    rng = np.random.default_rng(3)
    mask = lesion_mask((5, 48, 48), (0.0, 24.0, 24.0), 8.0, 1.0, rng)
    assert mask[0].sum() > 50 and mask.sum() > mask[0].sum()  # a 3D blob, present beyond the first slice
    assert not mask[:, :4].any()  # bounded
    host = np.zeros_like(mask)
    host[:, 8:40, 8:40] = True
    images = np.full((5, 2, 48, 48), 0.5, np.float32) + 0.01 * rng.standard_normal((5, 2, 48, 48)).astype(np.float32)
    out = paint_lesion(images, mask, host, np.random.default_rng(0))
    change = np.abs(out - images)[:, 0]
    assert change[mask].mean() > 5 * change[~host].mean() + 1e-3
    assert out.min() >= 0 and out.max() <= 1
    raw = paint_lesion(images[:, :1] * 1000, mask, host, np.random.default_rng(0), value_range=None)
    assert np.abs(raw - images[:, :1] * 1000)[:, 0][mask].mean() > 5  # raw intensities: not clipped to [0, 1]


def _lung_and_tissue():
    """A dark host (lung, 0.1) beside a bright tissue (0.6) and a tissue as dark as the host."""
    rng = np.random.default_rng(5)
    images = np.full((4, 2, 48, 48), 0.1, np.float32) + 0.01 * rng.standard_normal((4, 2, 48, 48)).astype(np.float32)
    labels = np.zeros((4, 48, 48), np.int64)
    labels[:, 4:44, 4:24] = 1  # host
    labels[:, 4:44, 28:44] = 2  # bright donor
    images[:, :, 4:44, 28:44] += 0.5
    labels[:, 44:48, 4:44] = 3  # iso-intense with the host: no visible lesion can be made of it
    return images, labels


def test_donor_lesion_takes_the_tissue_of_another_class():
    images, labels = _lung_and_tissue()
    host = labels == 1
    donor = donor_tissue(images, labels, 1, host, np.random.default_rng(0))
    assert donor is not None and np.array_equal(donor, labels == 2)  # class 3 is as dark as the host
    mask = lesion_mask(labels.shape, (0.0, 24.0, 14.0), 6.0, 1.0, np.random.default_rng(1)) & host
    out = paint_lesion(images, mask, host, np.random.default_rng(2), donor=donor)
    core = ndimage.binary_erosion(mask, structure=np.ones((1, 3, 3)), iterations=2)  # in-plane
    assert core.any() and abs(float(np.median(out[:, 0][core])) - 0.6) < 0.05  # the donor's level, not the host's
    far = ~ndimage.binary_dilation(mask.any(0), iterations=6)
    assert np.array_equal(out[:, :, far], images[:, :, far])  # nothing changes away from the lesion
    again = paint_lesion(images, mask, host, np.random.default_rng(2), donor=donor)
    assert np.array_equal(out, again)
    alone = np.where(labels == 2, 0, labels)  # only the iso-intense class is left
    assert donor_tissue(images, alone, 1, host, np.random.default_rng(0)) is None


def test_episode_lesions_use_donors_only_when_asked():
    images, labels = _lung_and_tissue()
    mix, checked = parse_mix("lesion:1"), 0
    for seed in range(6):
        plain = episode_targets(images, labels, np.random.default_rng(seed), max_targets=1, mix=mix)
        donor = episode_targets(images, labels, np.random.default_rng(seed), max_targets=1, mix=mix, lesion_donor=1.0)
        assert plain.kinds == donor.kinds == ["lesion"]
        inside = (donor.targets == 1) & (labels == 1)
        if inside.sum() < 20:
            continue
        # a lesion in the dark host: the donor's tissue (0.6) vs a relative contrast of at most 5 host spreads
        assert np.median(donor.images[:, 0][inside]) > 0.3
        assert np.median(plain.images[:, 0][inside]) < 0.3
        checked += 1
    assert checked >= 2  # lesions in the host were drawn (seeds 0, 1, 4)


def test_honour_clicks_labels_positive_and_clears_negative():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True
    prob = np.zeros((40, 40), np.float32)
    prob[25:35, 25:35] = 0.3
    prob[30, 30] = 0.32
    out = honour_clicks(mask, prob, positives=[(30, 30)], negatives=[(10, 10)], radius_px=(4.0, 4.0))
    assert out[30, 30] and out[28:33, 28:33].all() and not out[20, 20]  # grown where the class is likely
    assert not out[10, 10] and out[5, 5]  # the negative click's pixel and its neighbourhood are cleared
    lone = honour_clicks(np.zeros((9, 9), bool), np.zeros((9, 9)), [(4, 4)], [], (2.0, 2.0))
    assert lone[4, 4]


def test_protocol_scores():
    assert dsc_auc([0.5, 0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert dsc_auc([0.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx((0.5 + 3) / 4)
    assert noc([0.5, 0.86, 0.91], 0.85) == 2 and noc([0.5, 0.86, 0.91], 0.95) == 4
    assert noc([0.5, 0.86, 0.91], 0.90, max_clicks=2) == 3
    assert steps_without_drop([0.5, 0.6, 0.595, 0.4]) == (2, 3)
    s = summarize({"a": [0.5, 0.6, 0.7, 0.8, 0.9, 0.9], "b": [0.9, 0.8, 0.9, 0.9, 0.9, 0.95]}, max_clicks=6)
    assert s["dice_1"] == pytest.approx(0.7) and s["dsc_final"] == pytest.approx(0.9)
    assert s["no_drop_steps"] == [9, 10] and s["noc90"] == pytest.approx((5 + 1) / 2)


def test_grown_is_an_elliptic_dilation():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    out = grown(mask, (3.0, 1.0))
    assert out[7, 10] and out[13, 10] and not out[6, 10]  # 3 px along y
    assert out[10, 9] and out[10, 11] and not out[10, 12]  # 1 px along x


def test_target_mix_selects_the_kinds(episode):
    from napari_s2vnet.train.targets import parse_mix

    images, labels = episode
    mix = parse_mix("class:1")
    assert mix == (1.0, 0.0, 0.0, 0.0, 0.0)
    kinds = {k for seed in range(10) for k in episode_targets(images, labels, np.random.default_rng(seed), mix=mix).kinds}
    assert kinds == {"class"}
    with pytest.raises(ValueError):
        parse_mix("organ:1")
