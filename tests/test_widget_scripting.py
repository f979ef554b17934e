"""Scripting the dock: ``wait_ready`` / ``wait_idle``, and the "Scripting the dock" example of
``docs/usage.md`` run as written (real napari window under Xvfb, bundled weights, real CT)."""

from __future__ import annotations

import numpy as np
import pytest

from test_docs_examples import PYTHON
from widget_fixtures import ScriptedPredictor, dock_factory, needs_weights, small_image  # noqa: F401

napari = pytest.importorskip("napari")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.gui



#: the docking re-fit runs twice (at once, and again after dock_view.REFIT_AGAIN_MS = 300 ms): wait past both
_REFIT_WAIT_MS = 700

def test_wait_ready_then_the_model_classes_keep_their_ids(qtbot, dock_factory):
    viewer, dock = dock_factory(predictor=ScriptedPredictor(), image=small_image())
    dock.wait_ready(30)
    assert dock.model_info is not None and dock.token >= 0
    assert dock.classes.add_class("liver").label == 5


def test_wait_idle_returns_with_the_round_applied(qtbot, dock_factory):
    predictor = ScriptedPredictor(delay=0.005)
    viewer, dock = dock_factory(predictor=predictor, image=small_image())
    dock.wait_ready(30)
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    dock.wait_idle(60)
    session = predictor.sessions[-1]
    assert dock.rounds == 1 and session.rounds == 1 and len(session.order) > 0  # clicked and propagated
    np.testing.assert_array_equal(dock.labels_layer.data, session.labels())


def test_wait_idle_times_out_while_the_worker_runs(qtbot, dock_factory):
    viewer, dock = dock_factory(predictor=ScriptedPredictor(delay=0.5), image=small_image())
    dock.wait_ready(30)
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    with pytest.raises(TimeoutError, match="the worker"):
        dock.wait_idle(0.2)  # propagation takes 0.5 s per slice
    dock.stop()


def test_wait_ready_raises_the_workers_error(qtbot, make_napari_viewer, tmp_path):
    from napari_s2vnet.widget.dock import S2VNetDock

    dock = S2VNetDock(make_napari_viewer(), load_default=False)
    try:
        dock.load_model(str(tmp_path / "missing.safetensors"))
        with pytest.raises(RuntimeError, match="missing.safetensors"):
            dock.wait_ready(60)
    finally:
        dock.cleanup()


def test_a_click_for_a_class_not_added_says_so(qtbot, dock_factory):
    viewer, dock = dock_factory(predictor=ScriptedPredictor(), image=small_image())
    dock.wait_ready(30)
    dock.classes.add_class("tumour")
    with pytest.raises(KeyError, match="no class with label 5"):
        dock.classes.add_click_point(5, 12, 20, 20)


def _usage_script() -> str:
    blocks = [code for where, code, skip in PYTHON
              if where.startswith("docs/usage.md") and skip and "test_widget_scripting.py" in skip]
    assert len(blocks) == 1, "docs/usage.md: the 'Scripting the dock' block names this test file"
    return blocks[0]


@pytest.mark.slow
@needs_weights
def test_the_usage_scripting_example_runs_as_written(qapp, tmp_path, monkeypatch):
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    try:
        exec(compile(_usage_script(), "docs/usage.md", "exec"), namespace)
    finally:
        if "dock" in namespace:
            namespace["dock"].cleanup()
        if "viewer" in namespace:
            namespace["viewer"].close()
    saved = read_volume(str(tmp_path / "liver.nii.gz"))
    reference = read_volume(sample_path("ct_labels"))
    assert saved.array.shape == reference.array.shape
    np.testing.assert_allclose(saved.geometry.affine, reference.geometry.affine, atol=1e-4)
    liver, ref_liver = np.rint(saved.array) == 5, np.rint(reference.array) == 5
    dice = 2 * (liver & ref_liver).sum() / (liver.sum() + ref_liver.sum())
    assert dice > 0.8, dice  # one click in the liver, propagated through the volume


def _dock_after_image(qtbot, make_napari_viewer, pan: bool):
    """A shown viewer with a wide image (napari fits it), optionally panned, then the dock docked:
    ``(zoom before docking, zoom after, zoom Home gives after)``."""
    from napari_s2vnet.widget.dock import S2VNetDock

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.add_image(small_image((8, 60, 240)))
    qtbot.wait(100)
    viewer.reset_view()
    if pan:
        viewer.camera.center = (0.0, 20.0, 60.0)
    before = viewer.camera.zoom, tuple(viewer.camera.center)
    dock = S2VNetDock(viewer, predictor=ScriptedPredictor())
    try:
        viewer.window.add_dock_widget(dock, name="S2VNet")
        qtbot.wait(_REFIT_WAIT_MS)
        after = viewer.camera.zoom, tuple(viewer.camera.center)
        viewer.reset_view()
        return before, after, viewer.camera.zoom
    finally:
        dock.cleanup()


def test_docking_refits_an_image_opened_before_the_dock(qtbot, make_napari_viewer):
    (zoom0, _), (zoom, _), home = _dock_after_image(qtbot, make_napari_viewer, pan=False)
    assert zoom < zoom0  # the canvas got narrower: the whole width still shows
    assert zoom == pytest.approx(home, rel=1e-3)


def test_docking_keeps_a_view_the_user_panned(qtbot, make_napari_viewer):
    before, after, home = _dock_after_image(qtbot, make_napari_viewer, pan=True)
    assert after[0] == pytest.approx(before[0]) and after[1] == pytest.approx(before[1])


@pytest.mark.parametrize("action", ["round", "auto"])
def test_a_task_done_while_its_progress_bar_opens_still_ends_it(qtbot, dock_factory, monkeypatch, action):
    """Opening napari's progress bar can process Qt events (3 s on the first bar of a shown window):
    a task finished meanwhile must still end with its 'done' status and its bar closed."""
    viewer, dock = dock_factory(predictor=ScriptedPredictor(), image=small_image())
    dock.wait_ready(30)
    dock.wait_idle(60)
    open_progress = dock._open_progress

    def slow_open(*args):  # the worker finishes everything queued while the bar opens
        qtbot.waitUntil(dock.worker.idle, timeout=30_000)
        qtbot.wait(50)
        open_progress(*args)

    monkeypatch.setattr(dock, "_open_progress", slow_open)
    dock.classes.add_class("liver")
    if action == "round":
        dock.live_check.setChecked(False)
        dock.classes.add_click_point(5, 12, 20, 20)
        dock.propagate()
    else:
        dock.auto_segment()
    dock.wait_idle(60)
    assert dock.status.text() == f"{action} done; round 1"
    assert dock._progress == {}


def test_wait_idle_raises_an_error_of_the_round(qtbot, dock_factory, monkeypatch):
    predictor = ScriptedPredictor()
    viewer, dock = dock_factory(predictor=predictor, image=small_image())
    dock.wait_ready(30)
    dock.wait_idle(60)

    def broken(prompts):
        raise ValueError("decoder exploded")

    monkeypatch.setattr(predictor.sessions[-1], "add_prompts", broken)  # what the worker's rounds call
    dock.classes.add_class("liver")
    dock.classes.add_click_point(5, 12, 20, 20)
    with pytest.raises(RuntimeError, match="decoder exploded"):
        dock.wait_idle(60)


def test_docking_keeps_a_rotated_3d_view(qtbot, make_napari_viewer):
    from napari_s2vnet.widget.dock import S2VNetDock

    viewer = make_napari_viewer(show=True)
    viewer.add_image(small_image((8, 60, 240)))
    viewer.dims.ndisplay = 3
    viewer.camera.center, viewer.camera.angles = (2.0, 20.0, 60.0), (10.0, 20.0, 30.0)
    before = tuple(viewer.camera.angles), tuple(viewer.camera.center)
    dock = S2VNetDock(viewer, predictor=ScriptedPredictor())
    try:
        viewer.window.add_dock_widget(dock, name="S2VNet")
        qtbot.wait(_REFIT_WAIT_MS)
        assert tuple(viewer.camera.angles) == pytest.approx(before[0])
        assert tuple(viewer.camera.center) == pytest.approx(before[1])
    finally:
        dock.cleanup()
