"""Dataset discovery (nnU-Net v2, MSD / nnU-Net v1, TotalSegmentator, plain pairs) and samples."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_s2vnet.data.datasets import Case, bundled_cases, discover, load_case_labels
from napari_s2vnet.data.samples import attribution, sample_class_names, sample_path
from napari_s2vnet.errors import InputError

SHAPE = (6, 5, 4)


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 3.0, 1.0])), str(path))
    return path


def _image() -> np.ndarray:
    return np.linspace(-1000, 1000, np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


def _labels(*ids: int) -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    for k, i in enumerate(ids):
        out[k] = i
    return out


def test_nnunet_v2(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2},
        "numTraining": 2, "file_ending": ".nii.gz"}))
    for name in ("case_002", "case_001"):
        _write(tmp_path / "imagesTr" / f"{name}_0000.nii.gz", _image())
        _write(tmp_path / "labelsTr" / f"{name}.nii.gz", _labels(1, 2))
    (tmp_path / "labelsTr" / "._case_001.nii.gz").write_bytes(b"mac resource fork")
    spec = discover(tmp_path)
    assert spec.layout == "nnunet_v2"
    assert spec.class_names == {1: "liver", 2: "tumor"}
    assert [c.name for c in spec.cases] == ["case_001", "case_002"]
    assert spec.cases[0].image.name == "case_001_0000.nii.gz"
    np.testing.assert_array_equal(load_case_labels(spec.cases[0], spec.class_names), _labels(1, 2))
    np.testing.assert_array_equal(load_case_labels(spec.cases[0], {2: "tumor"}), _labels(0, 2))


def test_nnunet_v2_region_labels_are_rejected(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2]}}))
    _write(tmp_path / "labelsTr" / "a.nii.gz", _labels(1))
    with pytest.raises(InputError, match="region"):
        discover(tmp_path)


@pytest.mark.parametrize("suffix,layout", [("", "msd"), ("_0000", "nnunet_v1")])
def test_msd_and_nnunet_v1(tmp_path, suffix, layout):
    (tmp_path / "dataset.json").write_text(json.dumps({
        "name": "Heart", "labels": {"0": "background", "1": "left atrium"},
        "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}]}))
    _write(tmp_path / "imagesTr" / f"la_003{suffix}.nii.gz", _image())
    _write(tmp_path / "labelsTr" / "la_003.nii.gz", _labels(1))
    spec = discover(tmp_path)
    assert spec.layout == layout
    assert spec.class_names == {1: "left atrium"}
    assert spec.cases == [Case(tmp_path / "imagesTr" / f"la_003{suffix}.nii.gz",
                               tmp_path / "./labelsTr/la_003.nii.gz", "la_003")]


def test_nnunet_missing_image_is_reported(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}}))
    _write(tmp_path / "labelsTr" / "x.nii.gz", _labels(1))
    with pytest.raises(InputError, match="x_0000"):
        discover(tmp_path)


def test_totalsegmentator_masks_are_merged(tmp_path):
    seg = tmp_path / "s0001" / "segmentations"
    _write(tmp_path / "s0001" / "ct.nii.gz", _image())
    _write(seg / "liver.nii.gz", _labels(1, 1))          # id 5
    _write(seg / "spleen.nii.gz", _labels(1))            # id 1, overlaps the liver in slice 0
    _write(seg / "my_tumour.nii.gz", _labels(0, 0, 1))   # not a "total" name
    _write(tmp_path / "s0002" / "ct.nii.gz", _image())
    _write(tmp_path / "s0002" / "segmentations" / "liver.nii.gz", _labels(0, 1))
    (tmp_path / "meta.csv").write_text("image_id;age\n")
    spec = discover(tmp_path)
    assert spec.layout == "totalsegmentator"
    assert spec.class_names == {1: "spleen", 5: "liver", 118: "my_tumour"}
    first = spec.cases[0]
    assert first.name == "s0001" and first.label == seg
    merged = load_case_labels(first, spec.class_names)
    np.testing.assert_array_equal(merged, _labels(5, 5, 118))  # higher id wins on overlap
    np.testing.assert_array_equal(load_case_labels(spec.cases[1], spec.class_names), _labels(0, 5))
    np.testing.assert_array_equal(load_case_labels(first, {1: "spleen"}), _labels(1))
    assert discover(tmp_path / "s0002").cases[0].name == "s0002"  # a single case folder


def test_images_labels_folders(tmp_path):
    for name in ("b.nii.gz", "a.nii.gz"):
        _write(tmp_path / "images" / name, _image())
        _write(tmp_path / "labels" / name, _labels(3, 7))
    _write(tmp_path / "images" / "unlabelled.nii.gz", _image())
    spec = discover(tmp_path)
    assert spec.layout == "pairs"
    assert [c.name for c in spec.cases] == ["a", "b"]
    assert spec.class_names == {3: "class_3", 7: "class_7"}
    (tmp_path / "classes.json").write_text(json.dumps({"0": "background", "3": "kidney", "7": "cyst"}))
    assert discover(tmp_path).class_names == {3: "kidney", 7: "cyst"}


def test_side_by_side_pairs(tmp_path):
    _write(tmp_path / "p1_image.nii.gz", _image())
    _write(tmp_path / "p1_label.nii.gz", _labels(2))
    _write(tmp_path / "p2_image.nii.gz", _image())
    _write(tmp_path / "p2_labels.nii.gz", _labels(1))
    spec = discover(tmp_path)
    pairs = [(c.name, c.label.name) for c in spec.cases]
    assert pairs == [("p1", "p1_label.nii.gz"), ("p2", "p2_labels.nii.gz")]
    assert spec.class_names == {1: "class_1", 2: "class_2"}


def test_nothing_found(tmp_path):
    with pytest.raises(InputError, match="no training cases found"):
        discover(tmp_path)
    with pytest.raises(InputError):
        discover(tmp_path / "missing")


def test_bundled_cases_and_samples():
    ct, mr = bundled_cases()
    assert ct.cases[0].image == sample_path("ct") and ct.cases[0].label == sample_path("ct_labels")
    assert mr.cases[0].image.is_file() and mr.layout == "bundled"
    assert ct.class_names[5] == "liver" and len(ct.class_names) < len(sample_class_names("ct")) == 117
    assert set(ct.class_names.items()) <= set(sample_class_names("ct").items())
    assert sample_class_names("mr")[24] == "inferior_vena_cava"
    assert len(bundled_cases(include_mr=False)) == 1
    assert "TotalSegmentator" in attribution() and "Apache-2.0" in attribution()
    with pytest.raises(InputError):
        sample_path("pet")
