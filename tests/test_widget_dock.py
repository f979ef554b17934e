"""The S2VNet dock against a scripted Session (exact, fast): classes, clicks, rounds, threading,
undo/redo, cancellation, focus, hand edits, save, autosave and restore, shortcuts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from widget_fixtures import ScriptedPredictor, dock_factory, small_image, wait_idle, wait_until  # noqa: F401

napari = pytest.importorskip("napari")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.gui


def _ready(qtbot, predictor=None, image=None, factory=None, **kw):
    predictor = predictor or ScriptedPredictor()
    viewer, dock = factory(predictor=predictor, image=small_image() if image is None else image, **kw)
    wait_until(qtbot, lambda: dock.features_ready, 20)
    return viewer, dock, predictor.sessions[-1]


def _present(labels, label):
    return set(np.flatnonzero((labels == label).reshape(labels.shape[0], -1).any(1)).tolist())


def test_classes_points_layers_and_one_round(qtbot, dock_factory):
    from napari.utils.colormaps.standardize_color import transform_color

    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    assert dock.labels_layer.name == "S2VNet labels" and dock.labels_layer.data.shape == (24, 48, 40)
    # model classes are offered by name; a free class gets an unused id
    names = [dock.classes.name_combo.itemText(i) for i in range(dock.classes.name_combo.count())]
    assert names == ["liver", "spleen"]
    liver = dock.classes.add_class("liver", select=True)
    tumour = dock.classes.add_class("tumour", select=True)
    assert liver.label == 5 and tumour.label not in (1, 5)
    for entry in (liver, tumour):
        points = viewer.layers[f"S2VNet: {entry.name}"]
        np.testing.assert_allclose(transform_color(points.current_face_color)[0],
                                   dock.labels_layer.colormap.map(entry.label), atol=1e-2)
    # selecting a class selects its Points layer in add mode
    dock.classes.select_class(liver.label)
    assert viewer.layers.selection.active is viewer.layers["S2VNet: liver"]
    assert viewer.layers["S2VNet: liver"].mode == "add"
    # two classes clicked together -> ONE round handles both, then propagation
    dock.classes.add_click_point(liver.label, 12, 15, 12)
    dock.classes.add_click_point(tumour.label, 12, 34, 28)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    assert session.rounds == 1
    labels = dock.labels_layer.data
    for entry in (liver, tumour):
        slices = _present(labels, entry.label)
        assert 12 in slices and len(slices - {12}) >= 6, (entry.name, slices)
    np.testing.assert_array_equal(labels, session.labels())  # the layer mirrors the session


def test_undo_redo_exact(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 10, 20, 20)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    first = dock.labels_layer.data.copy()
    dock.classes.add_click_point(5, 16, 24, 22)
    wait_until(qtbot, lambda: dock.rounds >= 2)
    wait_idle(qtbot, dock)
    second = dock.labels_layer.data.copy()
    assert not np.array_equal(first, second)
    points = viewer.layers["S2VNet: liver"]
    assert len(points.data) == 2
    dock.undo()
    wait_until(qtbot, lambda: dock.rounds >= 3)
    wait_idle(qtbot, dock)
    np.testing.assert_array_equal(dock.labels_layer.data, first)
    assert len(points.data) == 1  # the clicks shown are the clicks in effect
    dock.redo()
    wait_until(qtbot, lambda: dock.rounds >= 4)
    wait_idle(qtbot, dock)
    np.testing.assert_array_equal(dock.labels_layer.data, second)
    assert len(points.data) == 2
    dock.undo(), dock.undo()
    wait_idle(qtbot, dock)
    assert not dock.labels_layer.data.any()


def test_click_while_propagating_cancels_and_restarts(qtbot, dock_factory):
    predictor = ScriptedPredictor(delay=0.08)
    viewer, dock, session = _ready(qtbot, predictor, factory=dock_factory)
    done = []
    dock.worker.task_done.connect(lambda token, kind, info: done.append(info.cancelled))
    dock.classes.add_class("liver")
    dock.classes.add_class("spleen")
    dock.classes.add_click_point(5, 12, 14, 12)
    wait_until(qtbot, lambda: len(session.order) >= 2, 10)  # propagation is running
    assert len(_present(dock.labels_layer.data, 5)) < 11
    dock.classes.add_click_point(1, 12, 34, 28)  # supersedes the running propagation
    wait_until(qtbot, lambda: len(done) >= 2, 30)
    wait_idle(qtbot, dock)
    assert done[0] is True and done[-1] is False  # first cancelled, the new one ran to the end
    # both classes end fully propagated (the cut round is resumed), the layer equals the session
    assert _present(dock.labels_layer.data, 5) == set(range(2, 23))
    assert _present(dock.labels_layer.data, 1) == set(range(2, 23))
    np.testing.assert_array_equal(dock.labels_layer.data, session.labels())


def test_focus_slice_first(qtbot, dock_factory):
    predictor = ScriptedPredictor(delay=0.01)
    viewer, dock, session = _ready(qtbot, predictor, factory=dock_factory)
    viewer.dims.set_point(0, 3.0)  # the user looks at slice 3
    qtbot.wait(20)
    assert dock.current_slice() == 3
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    assert session.focus == 3
    assert session.order[:9] == list(range(11, 2, -1))  # towards the viewed slice first


def test_negative_click(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    dock.negative_toggle.setChecked(True)
    points = viewer.layers["S2VNet: liver"]
    points.add(np.array([[12.0, 22.0, 20.0]]))  # a plain add in negative mode
    wait_until(qtbot, lambda: dock.rounds >= 2)
    wait_idle(qtbot, dock)
    assert [c.positive for c in session.clicks()] == [True, False]
    assert [str(s.value) for s in points.symbol] == ["disc", "x"]
    assert list(points.features["positive"]) == [True, False]


def test_auto_segment_then_clicks(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    dock.auto_segment()
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    labels = dock.labels_layer.data
    assert _present(labels, 1) == _present(labels, 5) == set(range(24))
    assert set(dock.classes.entries) == {1, 5}
    auto = labels.copy()
    dock.classes.add_click_point(5, 12, 30, 30)  # clicks refine the automatic state
    wait_until(qtbot, lambda: dock.rounds >= 2)
    wait_idle(qtbot, dock)
    dock.undo()
    wait_until(qtbot, lambda: dock.rounds >= 3)
    wait_idle(qtbot, dock)
    np.testing.assert_array_equal(dock.labels_layer.data, auto)
    # only the checked classes
    dock.classes.set_checked(1, True)
    dock.undo()
    wait_idle(qtbot, dock)
    dock.auto_segment()
    wait_idle(qtbot, dock)
    assert _present(dock.labels_layer.data, 1) and not _present(dock.labels_layer.data, 5)


def test_hand_edits_preserved_unless_overwrite(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    dock.classes.add_class("liver")
    dock.classes.add_class("spleen")
    layer = dock.labels_layer
    layer.brush_size = 5
    layer.paint((12, 20, 20), 1)  # the user paints spleen by hand (emits the paint event)
    painted = layer.data == 1
    assert painted.any()
    dock.classes.add_click_point(5, 12, 20, 20)  # a liver disc over the painted spleen
    wait_until(qtbot, lambda: dock.rounds >= 2)
    wait_idle(qtbot, dock)
    assert (dock.labels_layer.data[painted] == 1).all()
    assert (dock.labels_layer.data == 5).any()
    dock.overwrite_check.setChecked(True)
    dock.classes.add_click_point(5, 12, 21, 20)
    wait_until(qtbot, lambda: dock.rounds >= 3)
    wait_idle(qtbot, dock)
    assert not (dock.labels_layer.data[12] == 1).any()


def test_save_nifti_on_source_grid(qtbot, dock_factory, tmp_path):
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    predictor = ScriptedPredictor()
    viewer, dock = dock_factory(predictor=predictor)
    viewer.open(sample_path("mr"), plugin="napari-s2vnet")  # LPS file order: a real reorientation
    wait_until(qtbot, lambda: dock.features_ready, 20)
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 10, 40, 50)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    out = dock.save_labels(tmp_path / "mr_labels.nii.gz")
    src, saved = nib.load(str(sample_path("mr"))), nib.load(str(out))
    assert saved.shape == src.shape
    np.testing.assert_allclose(saved.affine, src.affine, atol=1e-5)
    g = read_volume(sample_path("mr")).geometry
    np.testing.assert_array_equal(g.to_internal(np.asarray(saved.dataobj)), dock.labels_layer.data)
    assert (np.asarray(saved.dataobj) == 5).any()


def test_autosave_and_restore(qtbot, dock_factory, make_napari_viewer, tmp_path):
    from napari_s2vnet.data.samples import sample_path
    from napari_s2vnet.widget import autosave
    from napari_s2vnet.widget.dock import S2VNetDock

    image_path = tmp_path / "patient.nii.gz"
    shutil.copy(sample_path("mr"), image_path)
    viewer, dock = dock_factory(predictor=ScriptedPredictor())
    viewer.open(image_path, plugin="napari-s2vnet")
    wait_until(qtbot, lambda: dock.features_ready, 20)
    assert dock.sidecar == tmp_path / "patient.s2vnet" and not dock.restore_row.isVisible()
    dock.classes.add_class("liver")
    dock.classes.add_class("lesion", color=[0.1, 0.9, 0.2, 1.0])
    dock.classes.add_click_point(5, 10, 40, 50)
    dock.classes.add_click_point(2, 10, 60, 30, positive=True)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    dock.autosave_wait()
    saved = dock.labels_layer.data.copy()
    written = autosave.find(tmp_path / "patient.s2vnet", dock.fingerprint)
    assert written is not None and written.rounds == dock.rounds
    assert [p.name for p in (tmp_path / "patient.s2vnet").glob("labels*")] == [written.labels_file]
    assert not [p for p in (tmp_path / "patient.s2vnet").iterdir() if p.name.startswith(".")]

    # reopen the same image in a new viewer: the dock offers to restore
    viewer2 = make_napari_viewer()
    viewer2.open(image_path, plugin="napari-s2vnet")
    dock2 = S2VNetDock(viewer2, predictor=ScriptedPredictor(), load_default=False)
    try:
        wait_until(qtbot, lambda: dock2.features_ready, 20)
        assert not dock2.restore_row.isHidden()
        assert dock2.restore_autosave()
        wait_idle(qtbot, dock2)
        np.testing.assert_array_equal(dock2.labels_layer.data, saved)
        assert {e.label: e.name for e in dock2.classes.entries.values()} == {5: "liver", 2: "lesion"}
        assert dock2.classes.entries[2].color == [0.1, 0.9, 0.2, 1.0]
        assert len(viewer2.layers["S2VNet: liver"].data) == 1
        # the session got the restored labels and clicks: a new round starts from them
        np.testing.assert_array_equal(dock2.worker.session.labels(), saved)
        in_effect = sorted(c.label for c in dock2.worker.session.clicks())
        assert 5 in in_effect and dock2.restored_clicks == []
        assert sorted(c.label for c in dock2.clicks) == in_effect
    finally:
        dock2.cleanup()
    # a different image does not match the autosave
    other = tmp_path / "other.nii.gz"
    img = nib.load(str(image_path))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) + 1, img.affine), str(other))
    shutil.copytree(tmp_path / "patient.s2vnet", tmp_path / "other.s2vnet")
    viewer.open(other, plugin="napari-s2vnet")
    dock.image_combo.setCurrentIndex(dock.image_combo.findText("other"))
    assert dock.image_layer.name == "other" and dock.restore_row.isHidden()


def test_shortcuts_shown_and_not_clashing(qtbot, dock_factory):
    from napari.utils.shortcuts import default_shortcuts

    from napari_s2vnet.widget.dock_ui import SHORTCUTS, key_text

    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    napari_keys = {str(k) for keys in default_shortcuts.values() for k in keys}
    for name, key in SHORTCUTS.items():
        assert key_text(key) not in napari_keys
        assert key in {str(k).replace("+", "-") for k in viewer.keymap} or key in viewer.keymap
    assert "Shift+G" in dock.auto_button.text() and "Shift+Z" in dock.undo_button.text()
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    before = dock.rounds
    viewer.keymap[next(k for k in viewer.keymap if str(k).replace("+", "-") == SHORTCUTS["undo"])](viewer)
    wait_until(qtbot, lambda: dock.rounds > before)
    assert not dock.labels_layer.data.any()


def test_features_progress_and_cpu_note(qtbot, dock_factory):
    predictor = ScriptedPredictor()
    viewer, dock = dock_factory(predictor=predictor)
    wait_until(qtbot, lambda: dock.model_info is not None)
    assert "features" not in dock._progress
    viewer.add_image(small_image((40, 32, 32)))
    assert "features" in dock._progress  # shown in napari's activity area while caching
    wait_until(qtbot, lambda: dock.features_ready, 20)
    assert "features" not in dock._progress
    assert dock.device_note.isVisibleTo(dock) and "CPU" in dock.device_note.text()


def test_stop_cancels_feature_caching(qtbot, dock_factory):
    predictor = ScriptedPredictor(feature_delay=0.05)
    viewer, dock = dock_factory(predictor=predictor)
    wait_until(qtbot, lambda: dock.model_info is not None)
    viewer.add_image(small_image((60, 32, 32)))
    wait_until(qtbot, lambda: bool(predictor.sessions) and predictor.sessions[-1].features >= 2, 10)
    dock.stop()
    wait_until(qtbot, lambda: "stopped" in dock.status.text(), 10)
    session = predictor.sessions[-1]
    assert not dock.features_ready and session.features < 60 and "features" not in dock._progress
    dock.classes.add_class("liver")  # the session still works (features on demand)
    dock.classes.add_click_point(5, 30, 16, 16)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    assert (dock.labels_layer.data[30] == 5).any()


def test_switching_images_keeps_each_images_labels(qtbot, dock_factory):
    predictor = ScriptedPredictor()
    viewer, dock, session = _ready(qtbot, predictor, factory=dock_factory)
    first_image, first_labels = dock.image_layer, dock.labels_layer
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    done = first_labels.data.copy()
    viewer.add_image(small_image(), name="second")
    dock.image_combo.setCurrentIndex(dock.image_combo.findText("second"))
    wait_until(qtbot, lambda: dock.features_ready and dock.image_layer.name == "second", 20)
    assert dock.labels_layer is not first_labels and not dock.labels_layer.data.any()
    assert first_labels in viewer.layers
    dock.image_combo.setCurrentIndex(dock.image_combo.findText(first_image.name))
    wait_until(qtbot, lambda: dock.features_ready and dock.image_layer is first_image, 20)
    wait_idle(qtbot, dock)
    assert dock.labels_layer is first_labels
    np.testing.assert_array_equal(first_labels.data, done)
    np.testing.assert_array_equal(dock.worker.session.labels(), done)  # the new session starts from them


def test_reset_class(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, factory=dock_factory)
    dock.classes.add_class("liver")
    dock.classes.add_class("spleen")
    dock.classes.add_click_point(5, 12, 14, 12)
    dock.classes.add_click_point(1, 12, 34, 28)
    wait_until(qtbot, lambda: dock.rounds >= 1)
    wait_idle(qtbot, dock)
    before = dock.labels_layer.data.copy()
    dock.classes.select_class(5)
    dock.reset_class()
    wait_until(qtbot, lambda: dock.rounds >= 2)
    wait_idle(qtbot, dock)
    assert not (dock.labels_layer.data == 5).any() and (dock.labels_layer.data == 1).any()
    assert len(viewer.layers["S2VNet: liver"].data) == 0 and len(viewer.layers["S2VNet: spleen"].data) == 1
    dock.undo()
    wait_until(qtbot, lambda: dock.rounds >= 3)
    wait_idle(qtbot, dock)
    np.testing.assert_array_equal(dock.labels_layer.data, before)
