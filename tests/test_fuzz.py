"""Property and fuzz tests (hypothesis): IO round-trips over random orientations, spacings and
dtypes, and the CLI / clicks parser on randomly corrupted input: a clear error or a result, never a
traceback, in bounded time (each example has a deadline)."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from napari_s2vnet.cli import main  # noqa: E402
from napari_s2vnet.data.geometry import Geometry  # noqa: E402
from napari_s2vnet.data.io import read_volume, write_labels, write_volume  # noqa: E402
from napari_s2vnet.errors import InputError, InputWarning  # noqa: E402
from napari_s2vnet.inference.click_file import parse_clicks  # noqa: E402

FUZZ = settings(max_examples=40, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
SHAPE = (7, 6, 5)


@st.composite
def affines(draw) -> np.ndarray:
    """Any axis permutation and flips, positive spacings, a small rotation and an offset."""
    perm = draw(st.permutations([0, 1, 2]))
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3))
    spacing = draw(st.lists(st.floats(0.2, 8.0), min_size=3, max_size=3))
    angle = draw(st.floats(-0.3, 0.3))
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.eye(3)[:, perm] @ np.diag(np.array(signs) * spacing)
    affine[:3, 3] = draw(st.lists(st.floats(-500, 500), min_size=3, max_size=3))
    return affine


@FUZZ
@given(affine=affines(), dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.float32, np.float64]),
       ext=st.sampled_from([".nii.gz", ".nii", ".tif"]), seed=st.integers(0, 2**16))
def test_io_round_trip(tmp_path, affine, dtype, ext, seed):
    g = Geometry(affine, SHAPE)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 200, SHAPE).astype(dtype)
    path = tmp_path / f"l{seed}{ext}"
    write_labels(path, labels, g)
    back = read_volume(path)
    if ext == ".tif":  # TIFFs hold the internal order with the internal spacing
        np.testing.assert_array_equal(back.array, g.to_internal(labels))
        assert back.geometry.internal_spacing == pytest.approx(g.internal_spacing, rel=1e-5)
    else:
        np.testing.assert_array_equal(back.array, labels)
        np.testing.assert_allclose(back.geometry.affine, g.affine, atol=1e-4)
    np.testing.assert_array_equal(g.from_internal(g.to_internal(labels)), labels)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    g = Geometry(np.diag([2.0, 2.0, 3.0, 1.0]), SHAPE)
    image = np.random.default_rng(0).normal(0, 300, SHAPE).astype(np.float32)
    for ext in (".nii", ".nii.gz", ".tif"):
        write_volume(folder / f"v{ext}", image, g)
    return {ext: (folder / f"v{ext}").read_bytes() for ext in (".nii", ".nii.gz", ".tif")}


@st.composite
def corruptions(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, min(len(out) - 1, 400)))  # mostly the header
        out[where] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


@FUZZ
@given(data=st.data(), ext=st.sampled_from([".nii", ".nii.gz", ".tif"]))
def test_cli_on_corrupted_files(tmp_path, capsys, valid_files, data, ext):
    corrupted = data.draw(corruptions(valid_files[ext]))
    path = tmp_path / f"c{ext}"
    path.write_bytes(corrupted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["evaluate", str(path), str(path)])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("napari-s2vnet evaluate: error: "), err


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["world", "voxel", "label", "positive", "round", "x", "box", "scribble"]), inner, max_size=5),
    max_leaves=12)


@FUZZ
@given(clicks=st.lists(json_values, max_size=5))
def test_clicks_parser_on_random_json(clicks):
    g = Geometry(np.diag([2.0, 2.0, 3.0, 1.0]), SHAPE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)
            parsed = parse_clicks(json.loads(json.dumps({"clicks": clicks})), g, {5: "liver"})
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(c.label > 0 for _, c in parsed)
