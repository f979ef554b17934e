"""Prompts in the dock against the scripted Session: box and scribble Shapes layers, deleting and
moving prompts as a user does it, "this slice only" and the slice range."""

from __future__ import annotations

import numpy as np
import pytest

from widget_fixtures import dock_factory, ready_dock, wait_idle, wait_until  # noqa: F401

napari = pytest.importorskip("napari")

pytestmark = pytest.mark.gui


def _ready(qtbot, factory):
    viewer, dock, session = ready_dock(qtbot, factory)
    dock.classes.add_class("liver", select=True)
    return viewer, dock, session


def _present(labels, label):
    return set(np.flatnonzero((labels == label).reshape(labels.shape[0], -1).any(1)).tolist())


def _round(qtbot, dock, rounds_before):
    wait_until(qtbot, lambda: dock.rounds > rounds_before)
    wait_idle(qtbot, dock)


def _mouse(layer, kind, zyx, drag=False):
    """A mouse event on ``layer`` at voxel ``zyx`` through napari's own mouse callbacks (screen
    position: 10 px per voxel, which the freehand path tool needs to add vertices)."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    event = read_only_mouse_event(type=f"mouse_{kind}", position=layer.data_to_world(zyx), is_dragging=drag,
                                  pos=np.array(zyx[1:], float) * 10, dims_displayed=[1, 2])
    {"press": mouse_press_callbacks, "move": mouse_move_callbacks, "release": mouse_release_callbacks}[kind](layer, event)


def _drag(layer, start, end):
    """Press at ``start``, drag to ``end``, release (a rectangle drawn, or a selected point/shape moved)."""
    _mouse(layer, "press", start)
    middle = tuple((a + b) / 2 for a, b in zip(start, end))
    _mouse(layer, "move", middle, drag=True)
    _mouse(layer, "move", end, drag=True)
    _mouse(layer, "release", end)


def _freehand(layer, points):
    """The path tool: click at the first point, move through the others, click at the last."""
    _mouse(layer, "press", points[0])
    _mouse(layer, "release", points[0])
    for p in points[1:]:
        _mouse(layer, "move", p)
    _mouse(layer, "press", points[-1])
    _mouse(layer, "release", points[-1])


def _press_delete(qtbot, viewer, layer):
    """The user's Delete key on the canvas, with ``layer`` active (napari's key binding)."""
    from qtpy.QtCore import Qt

    viewer.layers.selection.active = layer
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    qtbot.wait(20)


def test_box_and_scribble_layers_run_rounds_in_the_class_colour(qtbot, dock_factory):
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_s2vnet.inference.prompts import Box, Scribble

    viewer, dock, session = _ready(qtbot, dock_factory)
    dock.set_prompt_tool("box")
    shapes = viewer.layers["S2VNet: liver shapes"]
    assert viewer.layers.selection.active is shapes and shapes.mode == "add_rectangle"
    viewer.dims.set_point(0, 10.0)
    _drag(shapes, (10, 12, 10), (10, 28, 30))  # the user draws a rectangle on slice 10
    _round(qtbot, dock, 0)
    assert session.prompts() == [Box(10, 12, 10, 28, 30, 5)] and dock.prompts == session.prompts()
    assert dock.labels_layer.data[10, 20, 20] == 5 and {9, 11} <= _present(dock.labels_layer.data, 5)
    color = dock.labels_layer.colormap.map(5)
    np.testing.assert_allclose(transform_color(shapes.edge_color[0])[0], color, atol=1e-2)
    assert len(viewer.layers["S2VNet: liver"].data) == 0  # a box is a shape, not five points

    dock.set_prompt_tool("scribble")
    assert shapes.mode == "add_path"
    _mouse(shapes, "press", (10, 5, 5))  # a path given up at once (no vertex): not a prompt
    _mouse(shapes, "press", (10, 5, 5))
    assert dock.pending == [] and len(shapes.data) == 1
    shapes.mode = "add_ellipse"  # an ellipse is not a prompt: taken out again, and said so
    _drag(shapes, (10, 30, 5), (10, 40, 15))
    assert dock.pending == [] and len(shapes.data) == 1 and "not a prompt" in dock.status.text()
    dock.set_prompt_tool("scribble")
    dock.negative_toggle.setChecked(True)  # a negative stroke, drawn freehand
    _freehand(shapes, [(10, 18, 18), (10, 20, 20), (10, 22, 22)])
    _round(qtbot, dock, 1)
    assert session.prompts()[-1] == Scribble(10, ((18, 18), (20, 20), (22, 22)), 5, False)
    assert dock.labels_layer.data[10, 20, 20] == 0  # the negative stroke took the box's centre out
    dark = transform_color(shapes.edge_color[1])[0]
    assert dark[:3].sum() < 0.6 * color[:3].sum()  # drawn darker than the positive box
    dock.set_prompt_tool("click")
    assert viewer.layers.selection.active is viewer.layers["S2VNet: liver"]


def test_deleting_a_point_recomputes_its_class_as_an_undoable_round(qtbot, dock_factory):
    from napari_s2vnet.inference.state import Click

    viewer, dock, session = _ready(qtbot, dock_factory)
    dock.classes.add_click_point(5, 4, 20, 20)
    _round(qtbot, dock, 0)
    dock.classes.add_click_point(5, 18, 24, 22)
    _round(qtbot, dock, 1)
    both = dock.labels_layer.data.copy()
    assert {4, 18} <= _present(both, 5)
    points = viewer.layers["S2VNet: liver"]
    points.mode = "select"  # the user picks the second point and presses Delete
    points.selected_data = {1}
    _press_delete(qtbot, viewer, points)
    assert len(points.data) == 1
    _round(qtbot, dock, 2)
    assert session.clicks() == [Click(4, 20, 20, 5)] and dock.prompts == [Click(4, 20, 20, 5)]
    present = _present(dock.labels_layer.data, 5)
    assert 4 in present and 18 not in present  # recomputed from the click that is left
    np.testing.assert_array_equal(dock.labels_layer.data, session.labels())
    dock.undo()
    _round(qtbot, dock, 3)
    np.testing.assert_array_equal(dock.labels_layer.data, both)
    assert len(points.data) == 2  # the deleted point is back with its effect

    points.selected_data = set(range(2))  # both points gone: nothing of the class is left
    _press_delete(qtbot, viewer, points)
    _round(qtbot, dock, 4)
    assert not (dock.labels_layer.data == 5).any() and session.clicks() == []


def test_moving_a_point_or_deleting_a_box_recomputes_the_class(qtbot, dock_factory):
    from napari_s2vnet.inference.state import Click

    viewer, dock, session = _ready(qtbot, dock_factory)
    dock.classes.add_click_point(5, 8, 20, 20)
    _round(qtbot, dock, 0)
    points = viewer.layers["S2VNet: liver"]
    viewer.dims.set_point(0, 8.0)  # on its slice, the user drags the point
    points.mode = "select"
    _drag(points, (8, 20, 20), (8, 30, 28))
    _round(qtbot, dock, 1)
    assert session.clicks() == [Click(8, 30, 28, 5)]
    assert dock.labels_layer.data[8, 30, 28] == 5 and dock.labels_layer.data[8, 20, 20] == 0

    dock.set_prompt_tool("box")
    shapes = viewer.layers["S2VNet: liver shapes"]
    viewer.dims.set_point(0, 16.0)
    _drag(shapes, (16, 5, 5), (16, 15, 15))
    _round(qtbot, dock, 2)
    assert dock.labels_layer.data[16, 10, 10] == 5  # the box's centre
    shapes.mode = "select"
    shapes.selected_data = {0}
    _press_delete(qtbot, viewer, shapes)
    _round(qtbot, dock, 3)
    assert dock.labels_layer.data[16, 10, 10] == 0 and dock.labels_layer.data[8, 30, 28] == 5
    assert session.prompts() == [Click(8, 30, 28, 5)] and len(shapes.data) == 0


def test_this_slice_only_and_the_slice_range(qtbot, dock_factory):
    from qtpy.QtCore import Qt

    viewer, dock, session = _ready(qtbot, dock_factory)
    dock.slice_only_check.setChecked(True)
    dock.classes.add_click_point(5, 10, 20, 20)
    _round(qtbot, dock, 0)
    assert _present(dock.labels_layer.data, 5) == {10} and session.slice_only
    dock.slice_only_check.setChecked(False)
    dock.range_check.setChecked(True)
    first, last = dock.range_spins
    first.setValue(12)
    last.setValue(14)
    dock.classes.add_click_point(5, 13, 30, 20)
    _round(qtbot, dock, 1)
    assert session.z_range == (12, 14) and not session.slice_only
    assert _present(dock.labels_layer.data, 5) == {10, 12, 13, 14}
    dock.go_to_slice(20)
    qtbot.mouseClick(dock.range_here[1], Qt.MouseButton.LeftButton)  # "here": the slice on screen
    wait_idle(qtbot, dock)
    assert last.value() == 20 and session.z_range == (12, 20)
    dock.range_check.setChecked(False)
    wait_idle(qtbot, dock)
    assert session.z_range is None


def test_boxes_and_scribbles_survive_autosave_and_restore(qtbot, dock_factory, tmp_path):
    """The autosave keeps a box and a scribble as prompts: restored, they are shapes again and the
    session holds them as prompts (deleting the box still removes it as one prompt)."""
    from napari_s2vnet.inference.prompts import Box, Scribble
    from napari_s2vnet.inference.state import Click

    viewer, dock, session = _ready(qtbot, dock_factory)
    dock.set_autosave_root(str(tmp_path))
    dock.live_check.setChecked(False)
    viewer.dims.set_point(0, 10.0)
    dock.set_prompt_tool("box")
    shapes = viewer.layers["S2VNet: liver shapes"]
    _drag(shapes, (10, 12, 10), (10, 28, 30))
    dock.set_prompt_tool("scribble")
    _freehand(shapes, [(10, 30, 5), (10, 34, 9), (10, 38, 13)])
    dock.classes.add_click_point(5, 16, 40, 30)
    dock.propagate()
    _round(qtbot, dock, 0)
    dock.autosave_wait()
    saved = session.prompts()
    assert [type(p) for p in saved] == [Box, Scribble, Click]

    viewer2, dock2 = dock_factory(predictor=type(dock.worker.predictor)(), image=np.asarray(dock.image_layer.data))
    wait_until(qtbot, lambda: dock2.features_ready, 20)
    dock2.set_autosave_root(str(tmp_path))
    assert dock2.restore_autosave()
    wait_idle(qtbot, dock2)
    restored = dock2.worker.session
    assert restored.prompts() == saved and dock2.prompts == saved and dock2.restored_clicks == []
    shapes2 = viewer2.layers["S2VNet: liver shapes"]
    assert list(shapes2.shape_type) == ["rectangle", "path"] and len(viewer2.layers["S2VNet: liver"].data) == 1
    viewer2.dims.set_point(0, 10.0)
    shapes2.mode = "select"
    shapes2.selected_data = {0}
    before = dock2.rounds
    _press_delete(qtbot, viewer2, shapes2)
    _round(qtbot, dock2, before)
    assert restored.prompts() == saved[1:]
