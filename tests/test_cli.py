"""The command line: segment (automatic / clicks / both), evaluate, errors as one line + exit 2."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_s2vnet.cli import main
from napari_s2vnet.data.io import read_volume, write_volume
from napari_s2vnet.data.phantom import make_phantom, phantom_geometry
from napari_s2vnet.data.samples import sample_path


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    ph = make_phantom(7, shape=(24, 96, 96))
    g = phantom_geometry(ph.spacing, ph.labels.shape)
    folder = tmp_path_factory.mktemp("ph")
    write_volume(folder / "img.nii.gz", g.from_internal(ph.image), g)
    write_volume(folder / "lab.nii.gz", g.from_internal(ph.labels.astype(np.float32)), g)
    return folder, ph, g


def test_segment_automatic_keeps_grid(phantom_file, capsys):
    folder, ph, g = phantom_file
    assert main(["segment", str(folder / "img.nii.gz"), "-o", str(folder / "auto.nii.gz"), "--device", "cpu"]) == 0
    out = nib.load(folder / "auto.nii.gz")
    src = nib.load(folder / "img.nii.gz")
    assert out.shape == src.shape and np.allclose(out.affine, src.affine)
    assert "classes (automatic" in capsys.readouterr().out
    assert len(np.unique(np.asarray(out.dataobj))) > 3


def test_segment_clicks_on_mr_world_and_voxel(tmp_path, capsys):
    mr = read_volume(sample_path("mr"))
    lab = np.rint(read_volume(sample_path("mr_labels")).array).astype(int)
    ijk = np.argwhere(lab == 5)  # liver, MR map
    centre = ijk[np.argmin(((ijk - ijk.mean(0)) ** 2).sum(1))]
    world = (mr.geometry.affine @ np.r_[centre, 1])[:3]
    clicks = {"clicks": [{"world": world.tolist(), "label": 42}, {"voxel": centre.tolist(), "label": 42, "round": 1}]}
    (tmp_path / "c.json").write_text(json.dumps(clicks))
    rc = main(["segment", str(sample_path("mr")), "-o", str(tmp_path / "o.nii.gz"), "--clicks", str(tmp_path / "c.json")])
    assert rc == 0
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert set(np.unique(out)) == {0, 42}  # only the clicked label, with the user's id
    assert out[tuple(centre)] == 42
    assert nib.load(tmp_path / "o.nii.gz").shape == mr.array.shape


@pytest.mark.parametrize("click,message", [
    ({"voxel": [500, 1, 1], "label": 3}, "outside the volume"),
    ({"voxel": [1, 1, 1], "label": 0}, "positive integer"),
    ({"world": [1, 1], "label": 2}, "3 numbers"),
])
def test_bad_click_exits_2_with_one_line(tmp_path, capsys, click, message):
    (tmp_path / "c.json").write_text(json.dumps({"clicks": [click]}))
    rc = main(["segment", str(sample_path("mr")), "-o", str(tmp_path / "o.nii.gz"), "--clicks", str(tmp_path / "c.json")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "click #0" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_input_file_exits_2(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello")
    assert main(["segment", str(tmp_path / "x.txt"), "-o", str(tmp_path / "o.nii.gz")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_evaluate_json(phantom_file, capsys):
    folder, _, _ = phantom_file
    rc = main(["evaluate", str(folder / "lab.nii.gz"), str(folder / "lab.nii.gz"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["summary"]["mean_dice"] == 1.0
    assert all(v == 0.0 for v in report["hd95_mm"].values())


def test_python_m_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "napari_s2vnet", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "segment" in out.stdout and "train" in out.stdout


def test_segment_auto_refined_by_clicks(tmp_path, capsys):
    ct = read_volume(sample_path("ct"))
    lab = np.rint(read_volume(sample_path("ct_labels")).array).astype(int)
    ijk = np.argwhere(lab == 1)  # spleen, CT map
    centre = ijk[np.argmin(((ijk - ijk.mean(0)) ** 2).sum(1))]
    (tmp_path / "c.json").write_text(json.dumps({"clicks": [{"voxel": centre.tolist(), "label": 500}]}))
    rc = main(["segment", "sample:ct", "-o", str(tmp_path / "o.nii.gz"), "--clicks", str(tmp_path / "c.json"), "--auto"])
    assert rc == 0 and "automatic + clicks" in capsys.readouterr().out
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert out[tuple(centre)] == 500  # the clicked label with the user's id ...
    assert len(set(np.unique(out)) - {0, 500}) > 20  # ... on top of the automatic classes
