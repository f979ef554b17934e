"""Geometry (file order <-> internal (z, y, x)) and NIfTI/TIFF input/output."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_s2vnet.data.geometry import Geometry
from napari_s2vnet.data.io import read_volume, write_labels, write_volume
from napari_s2vnet.errors import InputError

SAMPLES = Path(__file__).parents[1] / "src" / "napari_s2vnet" / "_resources" / "samples"


def _affine(kind: str) -> np.ndarray:
    if kind == "RAS":
        return np.array([[0.8, 0, 0, -50.5], [0, 1.2, 0, 20.25], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
    if kind == "LPS":
        return np.array([[-0.8, 0, 0, 60.5], [0, -1.2, 0, 70.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
    # oblique: rotation of 20 degrees about z of a PIR-oriented grid, non-unit spacing
    t = np.deg2rad(20.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    axes = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)  # i->P, j->I, k->R
    out = np.eye(4)
    out[:3, :3] = rot @ axes @ np.diag([0.8, 1.2, 2.5])
    out[:3, 3] = [12.5, -30.0, 40.75]
    return out


KINDS = ["RAS", "LPS", "oblique"]
SHAPE = (7, 5, 6)


def _labels(shape=SHAPE) -> np.ndarray:
    return (np.arange(np.prod(shape)) % 251).reshape(shape).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_nifti_round_trip(tmp_path, kind, ext):
    geometry = Geometry(_affine(kind), SHAPE)
    labels = _labels()
    path = tmp_path / f"labels{ext}"
    write_labels(path, labels, geometry)
    volume = read_volume(path)
    assert volume.array.shape == SHAPE
    np.testing.assert_array_equal(volume.array, labels)
    np.testing.assert_allclose(volume.geometry.affine, geometry.affine, atol=1e-5)
    assert volume.geometry == geometry
    header = nib.load(str(path)).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    assert nib.load(str(path)).get_data_dtype() == np.uint8


def test_write_labels_uint16_and_volume_float(tmp_path):
    geometry = Geometry(_affine("RAS"), SHAPE)
    labels = _labels().astype(np.int64) * 3
    write_labels(tmp_path / "l.nii.gz", labels, geometry)
    assert nib.load(str(tmp_path / "l.nii.gz")).get_data_dtype() == np.uint16
    image = np.random.default_rng(0).normal(size=SHAPE) * 100
    write_volume(tmp_path / "v.nii.gz", image, geometry)
    np.testing.assert_allclose(read_volume(tmp_path / "v.nii.gz").array, image, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_internal_order(kind):
    geometry = Geometry(_affine(kind), SHAPE)
    arr = np.random.default_rng(1).normal(size=SHAPE)
    internal = geometry.to_internal(arr)
    assert internal.shape == geometry.internal_shape
    np.testing.assert_array_equal(geometry.from_internal(internal), arr)
    for dtype in (np.uint8, np.int32, bool):
        a = arr.astype(dtype)
        assert geometry.from_internal(geometry.to_internal(a)).dtype == a.dtype
        np.testing.assert_array_equal(geometry.from_internal(geometry.to_internal(a)), a)

    rng = np.random.default_rng(2)
    for _ in range(20):
        zyx = tuple(int(rng.integers(0, n)) for n in geometry.internal_shape)
        ijk = geometry.internal_to_file_index(zyx)
        assert internal[zyx] == arr[ijk]
        assert geometry.file_to_internal_index(ijk) == zyx
        np.testing.assert_allclose(
            geometry.internal_affine @ [*zyx, 1], geometry.affine @ [*ijk, 1], atol=1e-9
        )
        world = geometry.affine[:3] @ [*ijk, 1]
        np.testing.assert_allclose(geometry.world_to_file(world), ijk, atol=1e-9)

    # internal axes point (closest) to S, P and L
    cols = geometry.internal_affine[:3, :3]
    assert np.argmax(np.abs(cols[:, 0])) == 2 and cols[2, 0] > 0  # z -> Superior
    assert np.argmax(np.abs(cols[:, 1])) == 1 and cols[1, 1] < 0  # y -> Posterior
    assert np.argmax(np.abs(cols[:, 2])) == 0 and cols[0, 2] < 0  # x -> Left
    assert sorted(geometry.internal_spacing) == sorted(geometry.spacing)


def test_geometry_spacing_axcodes_and_equality():
    geometry = Geometry(_affine("LPS"), SHAPE)
    assert geometry.axcodes == ("L", "P", "S")
    assert geometry.spacing == pytest.approx((0.8, 1.2, 2.5))
    assert geometry.internal_spacing == pytest.approx((2.5, 1.2, 0.8))
    assert geometry.internal_shape == (6, 5, 7)
    same = Geometry(_affine("LPS") + 1e-12, SHAPE)
    assert same == geometry and hash(same) == hash(geometry)
    assert Geometry(_affine("RAS"), SHAPE) != geometry
    with pytest.raises(InputError):
        Geometry(np.zeros((4, 4)), SHAPE)


def test_from_spacing_is_internal_order():
    geometry = Geometry.from_spacing((2.0, 0.5, 0.75), (4, 5, 6))
    arr = np.arange(120).reshape(4, 5, 6)
    np.testing.assert_array_equal(geometry.to_internal(arr), arr)
    assert geometry.internal_spacing == pytest.approx((2.0, 0.5, 0.75))
    assert geometry.axcodes == ("S", "P", "L")


@pytest.mark.parametrize(
    "name, shape, axcodes, internal_shape",
    [
        ("ct_abdomen.nii.gz", (122, 101, 112), ("R", "A", "S"), (112, 101, 122)),
        ("mr_abdomen.nii.gz", (117, 91, 20), ("L", "P", "S"), (20, 91, 117)),
    ],
)
def test_bundled_samples(name, shape, axcodes, internal_shape):
    volume = read_volume(SAMPLES / name)
    geometry = volume.geometry
    assert volume.array.shape == shape and volume.array.dtype == np.float32
    assert geometry.axcodes == axcodes
    assert geometry.internal_shape == internal_shape
    assert geometry.internal_spacing == pytest.approx((3.0, 3.0, 3.0))
    assert volume.modality == ("CT" if name.startswith("ct") else "MR")

    ijk = np.array([10, 20, 5])
    world = geometry.affine[:3] @ [*ijk, 1]
    np.testing.assert_allclose(geometry.world_to_file(world), ijk, atol=1e-4)
    zyx = geometry.file_to_internal_index(geometry.world_to_file(world))
    np.testing.assert_allclose(geometry.internal_affine[:3] @ [*zyx, 1], world, atol=1e-4)
    internal = geometry.to_internal(volume.array)
    assert internal[zyx] == volume.array[tuple(ijk)]
    # moving up one internal slice moves 3 mm superior
    up = geometry.internal_affine[:3] @ [zyx[0] + 1, zyx[1], zyx[2], 1]
    assert up[2] - world[2] == pytest.approx(3.0, abs=1e-4)


def test_tiff_round_trip_keeps_spacing(tmp_path):
    geometry = Geometry.from_spacing((2.5, 0.5, 0.75), (4, 6, 5))
    labels = _labels((4, 6, 5))
    write_labels(tmp_path / "l.tif", labels, geometry)
    volume = read_volume(tmp_path / "l.tif")
    np.testing.assert_array_equal(volume.array, labels)
    assert volume.geometry.internal_spacing == pytest.approx((2.5, 0.5, 0.75), rel=1e-5)


def test_tiff_written_in_internal_order(tmp_path):
    geometry = Geometry(_affine("RAS"), SHAPE)
    labels = _labels()
    write_labels(tmp_path / "l.tiff", labels, geometry)
    volume = read_volume(tmp_path / "l.tiff")
    np.testing.assert_array_equal(volume.array, geometry.to_internal(labels))
    assert volume.geometry.internal_spacing == pytest.approx(geometry.internal_spacing, rel=1e-5)


def test_tiff_units(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    tifffile.imwrite(
        tmp_path / "um.tif", arr, imagej=True, resolution=(2.0, 4.0),
        metadata={"spacing": 2.0, "unit": "micron", "axes": "ZYX"},
    )
    assert read_volume(tmp_path / "um.tif").geometry.internal_spacing == pytest.approx(
        (0.002, 0.00025, 0.0005)
    )
    tifffile.imwrite(
        tmp_path / "ome.ome.tif", arr, ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "mm",
                  "PhysicalSizeY": 0.7, "PhysicalSizeYUnit": "mm",
                  "PhysicalSizeZ": 3.0, "PhysicalSizeZUnit": "mm"},
    )
    assert read_volume(tmp_path / "ome.ome.tif").geometry.internal_spacing == pytest.approx(
        (3.0, 0.7, 0.5)
    )
    tifffile.imwrite(tmp_path / "plain.tif", arr)
    assert read_volume(tmp_path / "plain.tif").geometry.internal_spacing == (1.0, 1.0, 1.0)


def test_input_errors(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported file type"):
        read_volume(tmp_path / "x.txt")
    with pytest.raises(InputError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match="unsupported file type"):
        write_labels(tmp_path / "l.png", _labels(), Geometry(_affine("RAS"), SHAPE))
    with pytest.raises(InputError, match="unknown modality"):
        read_volume(SAMPLES / "mr_abdomen.nii.gz", modality="PET")

    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.float32), np.eye(4)), str(tmp_path / "t.nii"))
    with pytest.raises(InputError, match="holds 2 time points .* --timepoint N, N in 0..1"):
        read_volume(tmp_path / "t.nii")  # 4-D: choose one (tests/test_robustness.py)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 1), np.float32), np.eye(4)), str(tmp_path / "s.nii"))
    assert read_volume(tmp_path / "s.nii").array.shape == (4, 5, 6)
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((5, 6), np.float32))
    with pytest.raises(InputError, match="single 3-D volume"):
        read_volume(tmp_path / "flat.tif")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="cannot read 'bad.nii.gz'"):
        read_volume(tmp_path / "bad.nii.gz")


def test_modality_override_and_guess(tmp_path):
    geometry = Geometry(_affine("RAS"), SHAPE)
    ct_like = np.full(SHAPE, -1000.0)
    ct_like[2:5, 2:4, 2:5] = 800.0
    write_volume(tmp_path / "ct.nii.gz", ct_like, geometry)
    assert read_volume(tmp_path / "ct.nii.gz").modality == "CT"
    assert read_volume(tmp_path / "ct.nii.gz", modality="mr").modality == "MR"
