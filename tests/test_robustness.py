"""Bad input (issue 11, section 1): each gets one clear line, through the CLI and the Python API.

CLI: stderr, exit 2, no traceback; API: ``InputError`` (or ``WeightsError``) for what cannot be used,
``InputWarning`` for what was used but changed or is doubtful. ``docs/robustness.md`` is the table.
"""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_s2vnet.cli import main
from napari_s2vnet.data.io import read_volume
from napari_s2vnet.errors import InputError, InputWarning
from napari_s2vnet.model.weights import WeightsError

SHAPE = (48, 40, 12)  # file order (x, y, z): axial slices of 48 x 40 voxels


def _ct(shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full(shape, -1000.0, np.float32)
    block = tuple(slice(s // 6, s - s // 6) for s in shape[:2])
    image[block] = rng.normal(40, 30, image[block].shape)  # a soft-tissue block in air ...
    image[shape[0] // 2, shape[1] // 2] = 900.0  # ... with a bone: it reads as CT
    return image


def _nii(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0]) if affine is None else affine), str(path))
    return path


def _segment(capsys, *args) -> tuple[int, str, str]:
    rc = main(["segment", *map(str, args), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def _refused(capsys, *args, needle: str) -> str:
    rc, _, err = _segment(capsys, *args)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    return err


# ---- voxel values -----------------------------------------------------------------------------

def test_nan_and_inf_voxels_are_replaced_with_a_warning(tmp_path, capsys):
    image = _ct()
    image[0, 0, 0], image[1, 0, 0], image[2, 0, 0] = np.nan, np.inf, -np.inf
    path = _nii(tmp_path / "nan.nii.gz", image)
    with pytest.warns(InputWarning, match="1 NaN and 2 infinite voxels"):
        volume = read_volume(path)
    assert np.isfinite(volume.array).all() and volume.modality == "CT"
    finite = image[np.isfinite(image)]
    assert volume.array[0, 0, 0] == finite.min() and volume.array[1, 0, 0] == finite.max()
    rc, _, err = _segment(capsys, path, "-o", tmp_path / "o.nii.gz")
    assert rc == 0 and "warning: 'nan.nii.gz' has 1 NaN and 2 infinite voxels" in err


def test_all_nan_is_refused(tmp_path, capsys, predictor):
    path = _nii(tmp_path / "nan.nii.gz", np.full(SHAPE, np.nan, np.float32))
    _refused(capsys, path, "-o", tmp_path / "o.nii.gz", needle="no finite voxel")
    with pytest.raises(InputError, match="no finite voxel"):
        predictor.segment_internal(np.full((4, 32, 32), np.nan), (3.0, 3.0, 3.0), "CT")
    with pytest.warns(InputWarning, match="NaN"):  # arrays given to the API directly are checked too
        predictor.session(np.where(np.eye(32)[None] > 0, np.nan, 0.0) + np.arange(4)[:, None, None],
                          (3.0, 3.0, 3.0), "CT")


def test_constant_image(tmp_path, capsys, predictor):
    path = _nii(tmp_path / "flat.nii.gz", np.full(SHAPE, 7.0, np.float32))
    _refused(capsys, path, "-o", tmp_path / "o.nii.gz", needle="is constant (every voxel is 7)")
    with pytest.warns(InputWarning, match="constant"):
        predictor.session(np.zeros((4, 32, 32)), (3.0, 3.0, 3.0), "CT")


def test_int16_with_slope_and_intercept_reads_as_hounsfield(tmp_path, capsys):
    stored = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) % 1500
    img = nib.Nifti1Image(stored, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_slope_inter(2.0, -1024.0)
    nib.save(img, str(tmp_path / "i16.nii.gz"))
    volume = read_volume(tmp_path / "i16.nii.gz")
    assert volume.array.dtype == np.float32 and volume.modality == "CT"
    np.testing.assert_array_equal(volume.array, stored * 2.0 - 1024.0)
    img = nib.Nifti1Image(stored.astype(np.uint16), np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "u16.nii.gz"))
    np.testing.assert_array_equal(read_volume(tmp_path / "u16.nii.gz").array, stored - 1024.0)
    assert _segment(capsys, tmp_path / "u16.nii.gz", "-o", tmp_path / "o.nii.gz")[0] == 0


def test_float64_input(tmp_path, capsys):
    image = _ct().astype(np.float64)
    volume = read_volume(_nii(tmp_path / "f64.nii.gz", image))
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, image, rtol=1e-6)
    assert _segment(capsys, tmp_path / "f64.nii.gz", "-o", tmp_path / "o.nii.gz")[0] == 0


# ---- voxel sizes and axes ---------------------------------------------------------------------

def _nifti_pixdim(path, zooms):
    """A NIfTI file without sform/qform (its affine comes from pixdim) whose pixdim is ``zooms``,
    patched into the bytes (nibabel would fix the header on save)."""
    header = nib.Nifti1Header()
    header.set_data_shape(SHAPE)
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(_ct(), None, header), str(path))
    data = bytearray(path.read_bytes())
    data[80:92] = np.asarray(zooms, "<f4").tobytes()  # pixdim[1:4] (pixdim starts at byte 76)
    path.write_bytes(bytes(data))
    return path


def test_zero_voxel_size_is_refused(tmp_path, capsys, predictor):
    path = _nifti_pixdim(tmp_path / "zero.nii", [0.0, 3.0, 3.0])
    with pytest.raises(InputError, match="voxel size of 0, 3, 3 mm"):
        read_volume(path)
    _refused(capsys, path, "-o", tmp_path / "o.nii.gz", needle="fix the header")
    tifffile.imwrite(tmp_path / "z.tif", _ct().T.copy(), imagej=True, metadata={"spacing": 0.0, "axes": "ZYX"})
    with pytest.raises(InputError, match="voxel size"):
        read_volume(tmp_path / "z.tif")
    for spacing in [(0.0, 3.0, 3.0), (3.0, -1.0, 3.0), (3.0, float("nan"), 3.0)]:
        with pytest.raises(InputError, match="every voxel size must be a positive number"):
            predictor.session(np.zeros((4, 32, 32)), spacing, "CT")
        with pytest.raises(InputError, match="positive number"):
            predictor.segment_internal(np.zeros((4, 32, 32)), spacing, "CT")


def test_negative_voxel_size_uses_its_absolute_value(tmp_path):
    with pytest.warns(InputWarning, match="negative voxel sizes .* absolute values"):
        volume = read_volume(_nifti_pixdim(tmp_path / "neg.nii", [-2.0, 3.0, 3.0]))
    assert volume.geometry.spacing == pytest.approx((2.0, 3.0, 3.0))


def test_sheared_affine_is_used_as_it_is_with_a_warning(tmp_path, capsys):
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[0, 1] = 1.0  # the y axis leans towards x: 18 degrees of shear
    path = _nii(tmp_path / "shear.nii.gz", _ct(), affine)
    with pytest.warns(InputWarning, match="not orthogonal .sheared by 18.4 degrees"):
        read_volume(path)
    rotated = np.eye(4)
    rotated[:3, :3] = 3.0 * np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # oblique but orthogonal: nothing to say
        read_volume(_nii(tmp_path / "oblique.nii.gz", _ct(), rotated))
    rc, _, err = _segment(capsys, path, "-o", tmp_path / "o.nii.gz")
    assert rc == 0 and "not orthogonal" in err
    out = nib.load(tmp_path / "o.nii.gz")
    assert out.shape == SHAPE and np.allclose(out.affine, affine)  # overlays the input exactly


def test_one_voxel_thick_volumes(tmp_path, capsys):
    axial = _nii(tmp_path / "axial.nii.gz", _ct((48, 40, 1)))  # one axial slice: fine, no warning
    rc, _, err = _segment(capsys, axial, "-o", tmp_path / "a.nii.gz")
    assert rc == 0 and "warning" not in err and nib.load(tmp_path / "a.nii.gz").shape == (48, 40, 1)
    sagittal = _nii(tmp_path / "sagittal.nii.gz", _ct((1, 40, 12)))  # one sagittal slice: 1-px axial slices
    rc, _, err = _segment(capsys, sagittal, "-o", tmp_path / "s.nii.gz")
    assert rc == 0 and "axial slices are only 40 x 1 voxels" in err
    assert nib.load(tmp_path / "s.nii.gz").shape == (1, 40, 12)


def test_anisotropic_spacing(tmp_path, capsys, predictor):
    image = np.random.default_rng(0).normal(0, 300, (6, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # thick slices only: harmless, nothing said
        predictor.segment_internal(image, (10.0, 0.7, 0.7), "CT")
    with pytest.warns(InputWarning, match="in-plane voxels are 0.5 x 5 mm"):
        predictor.segment_internal(image, (1.0, 0.5, 5.0), "CT")
    with pytest.raises(InputError, match="wrong unit"):
        predictor.session(image, (1.0, 500.0, 500.0), "CT")  # micrometres written as mm
    path = _nii(tmp_path / "um.nii.gz", _ct(), np.diag([300.0, 300.0, 3.0, 1.0]))
    _refused(capsys, path, "-o", tmp_path / "o.nii.gz", needle="wrong unit")


# ---- 4-D input --------------------------------------------------------------------------------

def test_4d_nifti_choose_a_time_point_or_channel(tmp_path, capsys):
    frames = np.stack([_ct(seed=k) + 100 * k for k in range(3)], axis=-1)  # (x, y, z, 3)
    path = _nii(tmp_path / "t.nii.gz", frames)
    with pytest.raises(InputError, match=r"holds 3 time points .*--timepoint N, N in 0..2"):
        read_volume(path)
    np.testing.assert_array_equal(read_volume(path, timepoint=2).array, frames[..., 2])
    np.testing.assert_array_equal(read_volume(path, channel=1).array, frames[..., 1])  # MSD: channels on axis 4
    with pytest.raises(InputError, match="--timepoint 3 is out of range"):
        read_volume(path, timepoint=3)
    five = _nii(tmp_path / "c.nii.gz", frames[..., None, :])  # (x, y, z, 1, 3): 3 channels
    np.testing.assert_array_equal(read_volume(five, channel=2).array, frames[..., 2])
    with pytest.raises(InputError, match="holds 3 channels"):
        read_volume(five)
    with pytest.raises(InputError, match="no channels or time points"):
        read_volume(_nii(tmp_path / "3d.nii.gz", _ct()), channel=1)
    _refused(capsys, path, "-o", tmp_path / "o.nii.gz", needle="--timepoint")
    assert _segment(capsys, path, "-o", tmp_path / "o.nii.gz", "--timepoint", "1")[0] == 0


def test_4d_tiff_choose_a_channel_and_time_point(tmp_path):
    zyx = _ct().T.copy()  # (z, y, x)
    stack = np.stack([np.stack([zyx + 10 * t + c for c in range(2)], axis=1) for t in range(3)])  # TZCYX
    tifffile.imwrite(tmp_path / "h.tif", stack, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(InputError, match="holds 3 time points"):
        read_volume(tmp_path / "h.tif", channel=0)
    with pytest.raises(InputError, match="holds 2 channels"):
        read_volume(tmp_path / "h.tif", timepoint=0)
    np.testing.assert_array_equal(read_volume(tmp_path / "h.tif", channel=1, timepoint=2).array, zyx + 21)


# ---- clicks files -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    return _nii(folder / "scan.nii.gz", _ct())


def _clicks(tmp_path, *clicks) -> str:
    (tmp_path / "c.json").write_text(json.dumps({"clicks": list(clicks)}))
    return str(tmp_path / "c.json")


def test_empty_clicks_file(tmp_path, capsys, scan):
    empty = _clicks(tmp_path)
    _refused(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", empty, needle="has no clicks: add some")
    rc, out, err = _segment(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", empty, "--auto")
    assert rc == 0 and "automatic segmentation only" in err and "(automatic," in out


def test_class_names_as_labels(tmp_path, capsys, scan):
    clicks = _clicks(tmp_path, {"voxel": [24, 20, 6], "label": "Liver"})
    rc, out, _ = _segment(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", clicks)
    assert rc == 0 and "liver" in out
    assert set(np.unique(np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj))) == {0, 5}  # the model's id
    clicks = _clicks(tmp_path, {"voxel": [24, 20, 6], "label": "livr"})
    _refused(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", clicks,
             needle="click #0 {\"voxel\": [24, 20, 6], \"label\": \"livr\"}: unknown class name 'livr' (did you mean 'liver'")


def test_duplicate_clicks(tmp_path, capsys, scan):
    same = {"voxel": [24, 20, 6], "label": 5}
    rc, _, err = _segment(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", _clicks(tmp_path, same, same))
    assert rc == 0 and "warning: click #1" in err and "repeats click #0: ignored" in err
    clash = _clicks(tmp_path, same, {**same, "label": 6})
    _refused(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", clash, needle="same voxel in the same round")
    later = _clicks(tmp_path, same, {**same, "label": 6, "round": 1})  # a later round may relabel
    assert _segment(capsys, scan, "-o", tmp_path / "o.nii.gz", "--clicks", later)[0] == 0


def test_clicks_on_a_one_slice_volume(tmp_path, capsys):
    one = _nii(tmp_path / "one.nii.gz", _ct((48, 40, 1)))
    clicks = _clicks(tmp_path, {"voxel": [24, 20, 0], "label": 5}, {"voxel": [10, 10, 0], "label": 5, "positive": False})
    rc, _, err = _segment(capsys, one, "-o", tmp_path / "o.nii.gz", "--clicks", clicks)
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert rc == 0 and out.shape == (48, 40, 1) and out[24, 20, 0] == 5
    outside = _clicks(tmp_path, {"voxel": [24, 20, 1], "label": 5})
    _refused(capsys, one, "-o", tmp_path / "o.nii.gz", "--clicks", outside, needle="outside the volume")


# ---- weights ----------------------------------------------------------------------------------

def _weights_variants(folder, bundled):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    data = bundled.read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    torch.save({"w": torch.zeros(2)}, folder / "pickle.pt")
    (folder / "text.safetensors").write_text("not weights")
    with safe_open(str(bundled), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    more = dict(config, class_ids=config["class_ids"] + [999], class_names=config["class_names"] + ["extra"])
    save_file(tensors, str(folder / "classes.safetensors"), metadata={**meta, "config": json.dumps(more)})
    save_file(tensors, str(folder / "config.safetensors"), metadata={**meta, "config": "{broken"})


@pytest.mark.parametrize("name,needle", [
    ("pickle.pt", "not a safetensors file"),
    ("text.safetensors", "not a safetensors file"),
    ("truncated.safetensors", "the file is truncated"),
    ("classes.safetensors", "its config names 62 classes but its tensors were made for another number"),
    ("config.safetensors", "the model config inside the file is invalid"),
    ("missing.safetensors", "weights file not found"),
])
def test_bad_weights(tmp_path, capsys, bundled_weights, scan, name, needle):
    from napari_s2vnet.inference import Predictor

    _weights_variants(tmp_path, bundled_weights)
    with pytest.raises(WeightsError, match=needle):
        Predictor.from_file(tmp_path / name, "cpu")
    err = _refused(capsys, scan, "-o", tmp_path / "o.nii.gz", "--model", tmp_path / name, needle=needle)
    assert "leave --model out" in err or "not found" in err
