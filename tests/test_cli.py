"""The command line: segment (automatic / clicks / both), evaluate, errors as one line + exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_s2vnet.cli import main
from napari_s2vnet.data.io import read_volume, write_volume
from napari_s2vnet.data.phantom import make_phantom, phantom_geometry
from napari_s2vnet.data.samples import sample_path
from napari_s2vnet.errors import InputError


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
    assert ": 1 class (clicks," in capsys.readouterr().out
    assert out[tuple(centre)] == 42
    assert nib.load(tmp_path / "o.nii.gz").shape == mr.array.shape


@pytest.mark.parametrize("click,message", [
    ({"voxel": [500, 1, 1], "label": 3}, "outside the volume"),
    ({"voxel": [1, 1, 1], "label": 0}, "positive integer"),
    ({"world": [1, 1], "label": 2}, "3 finite numbers"),
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


# ---- what a new user tripped over (issue 11, section 2) ---------------------------------------

def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_benchmark_without_extra_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "monai", None)  # import monai -> ModuleNotFoundError
    assert main(["benchmark", "--quick", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "'monai'", 'pip install "napari-s2vnet[benchmark]"')
    assert not any(tmp_path.iterdir())  # refused before any work


def test_missing_extra_inside_a_command_is_one_line(tmp_path, capsys, monkeypatch):
    from napari_s2vnet import commands

    def needs_scikit_image(args):
        raise ModuleNotFoundError("No module named 'skimage'", name="skimage")

    monkeypatch.setattr(commands, "run_evaluate", needs_scikit_image)
    assert main(["evaluate", "a.nii.gz", "b.nii.gz"]) == 2
    _one_line_error(capsys, 'napari-s2vnet[train]')


def test_debug_after_the_subcommand(tmp_path, capsys):
    args = ["evaluate", str(tmp_path / "missing.nii.gz"), "sample:ct_labels"]
    assert main(args) == 2
    _one_line_error(capsys, "no such file")
    for argv in (["--debug", *args], [*args, "--debug"]):
        with pytest.raises(InputError):
            main(argv)


def test_bad_output_path_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    from napari_s2vnet.inference import Predictor

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(Predictor, "from_pretrained", no_model)
    (tmp_path / "afile").write_text("x")
    for out, needle in [(tmp_path / "afile" / "o.nii.gz", "is a file, not a folder"),
                        (tmp_path / "o.png", "unsupported file type"),
                        (tmp_path, "it is a folder")]:
        assert main(["segment", "sample:mr", "-o", str(out)]) == 2
        _one_line_error(capsys, needle)


def test_missing_output_folders_are_created(tmp_path, phantom_file, capsys):
    folder, _, _ = phantom_file
    out = tmp_path / "new" / "deeper" / "labels.nii.gz"
    assert main(["segment", str(folder / "img.nii.gz"), "-o", str(out), "--device", "cpu"]) == 0
    assert out.is_file()


def test_closed_stdout_pipe_is_quiet(phantom_file):
    """`napari-s2vnet segment ... | head -1`: the reader closes the pipe before we print."""
    folder, _, _ = phantom_file
    cmd = [sys.executable, "-m", "napari_s2vnet", "segment", str(folder / "img.nii.gz"), "-o",
           str(folder / "pipe.nii.gz"), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    proc.stdout.close()  # as `head -1` does once it has its line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141 and b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    shell = subprocess.run(" ".join(cmd) + " | head -1", shell=True, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert shell.stdout.count("\n") == 1 and "Traceback" not in shell.stderr, shell.stderr


def _liver_only(tmp_path):
    lab = read_volume("sample:ct_labels")
    liver = np.where(np.rint(lab.array) == 5, 5, 0).astype(np.float32)
    write_volume(tmp_path / "liver.nii.gz", liver, lab.geometry)
    return tmp_path / "liver.nii.gz"


def test_evaluate_averages_over_the_reference_classes(tmp_path, capsys):
    liver = _liver_only(tmp_path)
    # an automatic result (every class) against a liver-only reference: the mean is the liver's
    assert main(["evaluate", "sample:ct_labels", str(liver), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["averaged"] == [5] and report["summary"]["mean_dice"] == 1.0
    assert len(report["not_averaged"]) > 20 and report["names"]["5"] == "liver"
    assert main(["evaluate", "sample:ct_labels", str(liver)]) == 0
    out = capsys.readouterr().out
    assert "liver" in out and "(not in the mean)" in out
    assert out.strip().splitlines()[-1].startswith("mean over 1 reference class: Dice 1.0000, HD95 0.00 mm")


def test_evaluate_classes_asked_and_inf_hd95_explained(tmp_path, capsys):
    liver = _liver_only(tmp_path)
    # a liver-only result against the full reference, averaged over the classes asked for
    assert main(["evaluate", str(liver), "sample:ct_labels", "--classes", "liver,spleen"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("mean over 2 asked classes: Dice 0.5000, HD95 0.00 mm")
    assert "inf HD95 (a class empty on one side) of 1 class left out of the HD95 mean" in last
    assert main(["evaluate", str(liver), "sample:ct_labels", "--classes", "livr"]) == 2
    _one_line_error(capsys, "unknown class 'livr'")


def test_demo_script_labels_its_figures():
    script = (Path(__file__).parents[1] / "scripts" / "demo.sh").read_text()
    assert "Dice" in script and "HD95" in script and "training volume" in script


def test_segment_threads_default_to_the_free_cores(phantom_file, capsys):
    import torch

    from napari_s2vnet.commands import free_cores

    assert free_cores(2, 1.2) == 1 and free_cores(8, 0.3) == 8 and free_cores(4, 9.0) == 1
    folder, _, _ = phantom_file
    before = torch.get_num_threads()
    assert main(["segment", str(folder / "img.nii.gz"), "-o", str(folder / "t.nii.gz"), "--threads", "1"]) == 0
    assert ", 1 thread)" in capsys.readouterr().out and torch.get_num_threads() == before
    assert main(["segment", str(folder / "img.nii.gz"), "-o", str(folder / "t.nii.gz"), "--threads", "-1"]) == 2
    assert "--threads -1" in capsys.readouterr().err
    assert main(["segment", str(folder / "img.nii.gz"), "-o", str(folder / "t.nii.gz"), "--z-mm", "-1"]) == 2
    assert "--z-mm -1" in capsys.readouterr().err


def test_scribble_entry_segments_its_class_and_bad_strokes_exit_2(tmp_path, capsys):
    from napari_s2vnet.inference.click_file import parse_clicks
    from napari_s2vnet.inference.prompts import SCRIBBLE_POINTS

    mr = read_volume(sample_path("mr"))
    g = mr.geometry
    lab = np.rint(read_volume(sample_path("mr_labels")).array).astype(int)
    liver = np.argwhere(lab == 5)
    internal = np.array([g.file_to_internal_index(v) for v in liver[:: max(1, len(liver) // 4000)]])
    z = np.bincount(internal[:, 0]).argmax()  # the internal slice with most liver
    on_slice = liver[:: max(1, len(liver) // 4000)][internal[:, 0] == z]
    stroke = [on_slice[k].tolist() for k in np.linspace(0, len(on_slice) - 1, 4).astype(int)]
    entry = {"scribble": {"voxel": stroke}, "label": "liver"}
    clicks = parse_clicks({"clicks": [entry]}, g, {5: "liver"})
    assert 1 <= len(clicks) <= SCRIBBLE_POINTS and {c.z for _, c in clicks} == {z} and {c.label for _, c in clicks} == {5}
    (tmp_path / "s.json").write_text(json.dumps({"clicks": [dict(entry, label=42)]}))
    rc = main(["segment", str(sample_path("mr")), "-o", str(tmp_path / "o.nii.gz"), "--clicks", str(tmp_path / "s.json")])
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert rc == 0 and out[tuple(stroke[0])] == 42 and (out == 42).sum() > 100
    other = next(v for v in liver if g.file_to_internal_index(v)[0] != z)
    bad = {"clicks": [{"scribble": {"voxel": [stroke[0], other.tolist()]}, "label": 42}]}
    (tmp_path / "b.json").write_text(json.dumps(bad))
    rc = main(["segment", str(sample_path("mr")), "-o", str(tmp_path / "o.nii.gz"), "--clicks", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "one axial slice" in err and "click #0" in err and len(err.strip().splitlines()) == 1


def test_box_entry_segments_its_class_and_bad_boxes_exit_2(tmp_path, capsys):
    """A box entry (two corners on one slice) stays a Box, segments its class inside the box on its
    slice and propagates; each bad box gets one line naming the entry and exit 2."""
    from napari_s2vnet.inference.click_file import parse_clicks
    from napari_s2vnet.inference.prompts import Box

    mr = read_volume(sample_path("mr"))
    g = mr.geometry
    lab = np.rint(read_volume(sample_path("mr_labels")).array).astype(int)
    liver = np.argwhere(lab == 5)
    internal = np.array([g.file_to_internal_index(v) for v in liver])
    z = np.bincount(internal[:, 0]).argmax()
    on_slice = liver[internal[:, 0] == z]
    corners = [on_slice.min(0).tolist(), on_slice.max(0).tolist()]
    entry = {"box": {"voxel": corners}, "label": "liver", "round": 1}
    [(rnd, box)] = parse_clicks({"clicks": [entry]}, g, {5: "liver"})
    assert rnd == 1 and isinstance(box, Box) and box.z == z and box.label == 5
    (tmp_path / "b.json").write_text(json.dumps({"clicks": [dict(entry, label=42)]}))
    out_path = tmp_path / "o.nii.gz"
    assert main(["segment", str(sample_path("mr")), "-o", str(out_path), "--clicks", str(tmp_path / "b.json")]) == 0
    out = np.asarray(nib.load(out_path).dataobj) == 42
    inside = np.zeros_like(out)
    lo, hi = np.array(corners).min(0), np.array(corners).max(0)
    inside[tuple(slice(a, b + 1) for a, b in zip(lo, hi))] = True
    on_box_slice = np.array([g.file_to_internal_index(v)[0] == z for v in np.argwhere(out)])
    assert out.sum() > 1000 and (~on_box_slice).sum() > 0  # propagated beyond the box's slice
    box_slice_voxels = np.argwhere(out)[on_box_slice]
    assert all(inside[tuple(v)] for v in box_slice_voxels)  # on its slice: only inside the box
    dice = 2 * (out & (lab == 5)).sum() / (out.sum() + (lab == 5).sum())
    assert dice > 0.6
    other = next(v for v in liver if g.file_to_internal_index(v)[0] != z).tolist()
    bad = {
        "a box over two slices": ({"box": {"voxel": [corners[0], other]}, "label": 5}, "one axial slice"),
        "three corners": ({"box": {"voxel": corners + [corners[0]]}, "label": 5}, "two opposite corners"),
        "a negative box": ({"box": {"voxel": corners}, "label": 5, "positive": False}, "always positive"),
        "a box and a point": ({"box": {"voxel": corners}, "voxel": corners[0], "label": 5}, "not box and point"),
        "a flat box": ({"box": {"voxel": [corners[0], corners[0]]}, "label": 5}, "not a line"),
    }
    for why, (item, message) in bad.items():
        (tmp_path / "bad.json").write_text(json.dumps({"clicks": [{"voxel": corners[0], "label": 5}, item]}))
        rc = main(["segment", str(sample_path("mr")), "-o", str(out_path), "--clicks", str(tmp_path / "bad.json")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "click #1" in err and len(err.strip().splitlines()) == 1, (why, err)
