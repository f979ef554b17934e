"""The procedural CT phantom: determinism, anatomy ids/placement and plausible intensities."""

from __future__ import annotations

import numpy as np
import pytest

from napari_s2vnet.data.phantom import PHANTOM_CLASSES, make_phantom, phantom_geometry
from napari_s2vnet.data.samples import sample_class_names

SHAPE = (32, 96, 96)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(3, shape=SHAPE)


def test_deterministic_for_a_seed(phantom):
    again = make_phantom(3, shape=SHAPE)
    np.testing.assert_array_equal(phantom.image, again.image)
    np.testing.assert_array_equal(phantom.labels, again.labels)


def test_seeds_differ(phantom):
    other = make_phantom(4, shape=SHAPE)
    assert not np.array_equal(phantom.labels, other.labels)
    assert np.abs(phantom.image - other.image).mean() > 5.0


def test_types_shapes_and_default_grid():
    p = make_phantom(0)
    assert p.image.shape == p.labels.shape == (48, 128, 128)
    assert p.image.dtype == np.float32 and p.labels.dtype == np.uint8
    assert p.spacing == (3.0, 2.0, 2.0)
    geometry = phantom_geometry(p.spacing, p.image.shape)
    assert geometry.internal_shape == p.image.shape
    assert np.allclose(geometry.internal_spacing, p.spacing)


def test_ids_are_the_totalsegmentator_ct_ids(phantom):
    ct = sample_class_names("ct")
    assert all(ct[i] == name for i, name in PHANTOM_CLASSES.items())
    present = set(np.unique(phantom.labels).tolist()) - {0}
    assert present == set(phantom.class_names)
    organs = {"liver", "spleen", "kidney_left", "kidney_right", "stomach", "pancreas", "gallbladder",
              "aorta", "inferior_vena_cava", "urinary_bladder"}
    assert organs <= set(phantom.class_names.values())
    assert len(present) >= 8


def _centroid(p, name):
    i = {n: k for k, n in p.class_names.items()}[name]
    return np.argwhere(p.labels == i).mean(axis=0)


@pytest.mark.parametrize("seed", [0, 11])
def test_anatomical_placement(seed):
    p = make_phantom(seed, shape=SHAPE)
    Z, Y, X = SHAPE
    liver, spleen = _centroid(p, "liver"), _centroid(p, "spleen")
    kid_r, kid_l = _centroid(p, "kidney_right"), _centroid(p, "kidney_left")
    aorta, ivc = _centroid(p, "aorta"), _centroid(p, "inferior_vena_cava")
    spine, bladder = _centroid(p, "vertebrae_L3"), _centroid(p, "urinary_bladder")
    assert liver[2] < X / 2 < spleen[2]  # x grows towards patient left
    assert spleen[1] > Y / 2 and spleen[0] > Z / 2  # posterior, superior
    assert kid_r[2] < spine[2] < kid_l[2] and min(kid_r[1], kid_l[1]) > Y / 2
    assert ivc[2] < aorta[2] and aorta[1] < spine[1]  # aorta anterior to the vertebra
    assert bladder[0] < Z / 4 and liver[0] > Z / 2


def test_organs_appear_and_vanish_along_z(phantom):
    inner = 0
    for i in phantom.class_names:
        z = np.flatnonzero((phantom.labels == i).any(axis=(1, 2)))
        inner += bool(z.min() > 0 and z.max() < SHAPE[0] - 1)
    assert inner >= 4


def test_intensities_are_plausible_hu(phantom):
    img, lab = phantom.image, phantom.labels
    ids = {n: k for k, n in phantom.class_names.items()}
    assert np.median(img[:, :3, :3]) < -900  # air in the corners
    assert 30 < np.median(img[lab == ids["liver"]]) < 100
    assert np.median(img[lab == ids["aorta"]]) > 100
    assert np.median(img[lab == ids["vertebrae_L3"]]) > 250
    assert -100 < np.median(img[lab == ids["urinary_bladder"]]) < 60
    assert img.min() > -1200 and img.max() < 1000
