"""napari plugin I/O: manifest, readers (``viewer.open`` as a user calls it), writers, sample data."""

from __future__ import annotations

import numpy as np
import pytest

from widget_fixtures import BUNDLED_WEIGHTS  # noqa: F401  (sets the XDG folders first)

napari = pytest.importorskip("napari")
nib = pytest.importorskip("nibabel")

from napari_s2vnet.data.io import read_volume  # noqa: E402
from napari_s2vnet.data.samples import sample_path  # noqa: E402

pytestmark = pytest.mark.gui
PLUGIN = "napari-s2vnet"


def test_manifest_validates_and_imports():
    from npe2 import PluginManifest

    mf = PluginManifest.from_distribution(PLUGIN)
    mf.validate_imports()
    contrib = mf.contributions
    assert {w.display_name for w in contrib.widgets} == {"S2VNet segmentation"}
    patterns = {p for r in contrib.readers for p in r.filename_patterns}
    assert {"*.nii", "*.nii.gz"} <= patterns
    assert any(r.accepts_directories for r in contrib.readers)
    assert {s.key for s in contrib.sample_data} == {"ct", "mr", "phantom"}
    exts = {e for w in contrib.writers for e in w.filename_extensions}
    assert {".nii.gz", ".nii", ".tif"} <= exts


def _check_ct_layer(layer):
    volume = read_volume(sample_path("ct"))
    g = volume.geometry
    np.testing.assert_array_equal(layer.data, g.to_internal(volume.array))
    np.testing.assert_allclose(layer.scale, g.internal_spacing)
    meta = layer.metadata["s2vnet"]
    np.testing.assert_allclose(meta["affine"], nib.load(str(sample_path("ct"))).affine)
    assert tuple(meta["shape"]) == g.shape and meta["modality"] == "CT"


def test_file_open_uses_plugin_without_asking(make_napari_viewer, monkeypatch):
    """File > Open (and drag and drop) of a .nii.gz: read by this plugin, no reader dialog.

    napari's built-in reader also claims ``*.nii.gz`` (and fails on it); the plugin makes itself the
    default NIfTI reader when it is activated (first use of any contribution: dock, sample, reader).
    """
    import npe2
    from napari.settings import get_settings

    viewer = make_napari_viewer()
    pm = npe2.PluginManager.instance()
    pm.deactivate(PLUGIN)  # as in a fresh napari process
    assert "*.nii.gz" not in get_settings().plugins.extension2reader
    viewer.open_sample(PLUGIN, "phantom")  # any contribution activates the plugin
    assert get_settings().plugins.extension2reader.get("*.nii.gz") == PLUGIN

    asked = []
    monkeypatch.setattr("napari._qt.qt_viewer.handle_gui_reading", lambda *a, **k: asked.append(a))
    qt_viewer = viewer.window._qt_viewer
    # patched on the class: an instance patch would keep the QtViewer alive past the viewer fixture
    monkeypatch.setattr(type(qt_viewer), "_open_file_dialog_uni", lambda *a, **k: [str(sample_path("ct"))])
    n = len(viewer.layers)
    qt_viewer._open_files_dialog()  # what File > Open... runs once the user picked the file
    assert not asked, "napari asked the user to choose a reader"
    assert len(viewer.layers) == n + 1
    _check_ct_layer(viewer.layers[-1])


def test_viewer_open_from_python(make_napari_viewer):
    """Scripts: napari 0.9's ``viewer.open(path)`` defaults to ``plugin="napari"`` (the built-in
    reader, which cannot read .nii.gz); ``plugin=None`` follows the reader preference and
    ``plugin="napari-s2vnet"`` is explicit. Both give the plugin's layer."""
    from napari_s2vnet.widget import set_default_reader

    viewer = make_napari_viewer()
    set_default_reader()
    _check_ct_layer(viewer.open(sample_path("ct"), plugin=None)[0])
    _check_ct_layer(viewer.open(str(sample_path("ct")), plugin=PLUGIN)[0])


def test_user_choice_is_kept(make_napari_viewer):
    from napari.settings import get_settings

    from napari_s2vnet.widget import set_default_reader

    make_napari_viewer()
    settings = get_settings().plugins
    settings.extension2reader = {**settings.extension2reader, "*.nii": "napari"}
    changed = set_default_reader()
    assert "*.nii" not in changed and settings.extension2reader["*.nii"] == "napari"
    assert settings.extension2reader["*.nii.gz"] == PLUGIN


def test_labels_file_opens_as_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(sample_path("mr_labels"), plugin=PLUGIN)
    assert layers[0].__class__.__name__ == "Labels"
    assert np.issubdtype(layers[0].data.dtype, np.integer) and layers[0].data.max() > 0


def test_4d_file_opens_as_one_layer_per_volume(make_napari_viewer, tmp_path):
    """A 4-D / 5-D NIfTI: each time point (channel) its own 3-D layer, so the dock's image list offers
    every one; more than ``MAX_VOLUME_LAYERS`` volumes: the first ones and a warning naming the rest."""
    from napari_s2vnet.errors import InputWarning
    from napari_s2vnet.widget.reader import MAX_VOLUME_LAYERS

    rng = np.random.default_rng(0)
    frames = rng.normal(0, 100, (12, 10, 6, 3)).astype(np.float32)  # (x, y, z, t)
    nib.save(nib.Nifti1Image(frames, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "dyn.nii.gz")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "dyn.nii.gz"), plugin=PLUGIN)
    assert [l.name for l in layers] == ["dyn [t=0]", "dyn [t=1]", "dyn [t=2]"]
    for t, layer in enumerate(layers):
        assert layer.ndim == 3
        np.testing.assert_array_equal(layer.data, read_volume(tmp_path / "dyn.nii.gz", timepoint=t).geometry.to_internal(
            frames[..., t]))
    five = rng.normal(0, 1, (12, 10, 6, 2, 2)).astype(np.float32)  # (x, y, z, t, c)
    nib.save(nib.Nifti1Image(five, np.eye(4)), tmp_path / "tc.nii.gz")
    names = [l.name for l in viewer.open(str(tmp_path / "tc.nii.gz"), plugin=PLUGIN)]
    assert names == ["tc [t=0, c=0]", "tc [t=0, c=1]", "tc [t=1, c=0]", "tc [t=1, c=1]"]
    many = rng.normal(0, 1, (8, 8, 4, MAX_VOLUME_LAYERS + 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(many, np.eye(4)), tmp_path / "many.nii.gz")
    with pytest.warns(InputWarning, match=f"holds {MAX_VOLUME_LAYERS + 2} volumes"):
        opened = viewer.open(str(tmp_path / "many.nii.gz"), plugin=PLUGIN)
    assert len(opened) == MAX_VOLUME_LAYERS


def test_writer_nifti_restores_source_grid(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.open(sample_path("mr"), plugin=PLUGIN)[0]  # LPS: not the internal orientation
    labels = viewer.add_labels(
        (np.asarray(image.data) > np.percentile(image.data, 90)).astype(np.uint8) * 3,
        scale=image.scale, metadata=dict(image.metadata), name="mask",
    )
    out = tmp_path / "mask.nii.gz"
    written = labels.save(str(out), plugin=PLUGIN)
    assert written and out.exists()
    src = nib.load(str(sample_path("mr")))
    saved = nib.load(str(out))
    assert saved.shape == src.shape[:3]
    np.testing.assert_allclose(saved.affine, src.affine, atol=1e-5)
    g = read_volume(sample_path("mr")).geometry
    np.testing.assert_array_equal(g.to_internal(np.asarray(saved.dataobj)), labels.data)
    # TIFF: internal order with the spacing
    tif = tmp_path / "mask.tif"
    labels.save(str(tif), plugin=PLUGIN)
    back = read_volume(tif)
    np.testing.assert_array_equal(back.array, labels.data)
    np.testing.assert_allclose(back.geometry.internal_spacing, image.scale, rtol=1e-4)
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize("key", ["ct", "mr", "phantom"])
def test_sample_data(make_napari_viewer, key):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)
    kinds = [l.__class__.__name__ for l in viewer.layers]
    assert kinds == ["Image", "Labels"]
    image, labels = viewer.layers
    assert image.data.shape == labels.data.shape and image.data.ndim == 3
    assert labels.data.max() > 0
    assert image.metadata["s2vnet"]["modality"] == ("MR" if key == "mr" else "CT")
    assert labels.metadata["s2vnet"]["class_names"]


def _write_dicom_series(folder, n=4, rows=8, cols=6):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series = generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"slice{k}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = series, "CT", k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.9], 2.5
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) + 100 * k).tobytes()
        ds.save_as(str(path), enforce_file_format=True)
    assert pydicom


def test_dicom_folder_reader(make_napari_viewer, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    _write_dicom_series(folder)
    from napari_s2vnet.widget.reader import get_reader

    assert get_reader(str(folder)) is not None
    assert get_reader(str(tmp_path / "nothing.png")) is None
    viewer = make_napari_viewer()
    layer = viewer.open(str(folder), plugin=PLUGIN)[0]
    assert layer.data.shape == (4, 8, 6)
    np.testing.assert_allclose(layer.scale, (2.5, 0.7, 0.9))
    assert layer.metadata["s2vnet"]["modality"] == "CT"
