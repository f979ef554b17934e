"""The dock with the real engine and the bundled weights on the real abdominal CT sample."""

from __future__ import annotations

import numpy as np
import pytest

from widget_fixtures import dock_factory, needs_weights, wait_until  # noqa: F401

napari = pytest.importorskip("napari")

pytestmark = [pytest.mark.gui, pytest.mark.slow, needs_weights]
PLUGIN = "napari-s2vnet"


def _click_point(reference: np.ndarray, label: int, z: int) -> tuple[int, int, int]:
    """A voxel deep inside ``label`` on slice ``z`` (largest distance to its border)."""
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(reference[z] == label)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return z, int(y), int(x)


def _slices(labels: np.ndarray, label: int) -> set[int]:
    return set(np.flatnonzero((labels == label).reshape(labels.shape[0], -1).any(1)).tolist())


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def test_full_loop_real_ct(qtbot, dock_factory):
    viewer, dock = dock_factory()  # bundled weights
    viewer.open_sample(PLUGIN, "ct")
    image, reference = viewer.layers["abdomen CT"], viewer.layers["abdomen CT reference labels"]
    assert dock.image_layer is image
    wait_until(qtbot, lambda: dock.model_info is not None and dock.token >= 0, 60)
    assert dock.last_error == ""
    ref = np.asarray(reference.data)
    liver, spleen = 5, 1
    assert {liver, spleen} <= set(dock.model_info.class_names)
    z = int(np.argmax(((ref == liver).sum((1, 2)) > 0) * ((ref == spleen).sum((1, 2)))))  # both visible
    viewer.dims.set_point(0, z * image.scale[0])
    for name in ("liver", "spleen"):
        dock.classes.add_class(name, select=True)
    # one click per class on the same slice, before anything runs
    dock.live_check.setChecked(False)
    dock.classes.add_click_point(liver, *_click_point(ref, liver, z))
    dock.classes.add_click_point(spleen, *_click_point(ref, spleen, z))
    assert len(dock.pending) == 2 and dock.rounds == 0
    dock.propagate()
    wait_until(qtbot, lambda: dock.rounds >= 1, 240)  # the round's slices are all delivered by then
    labels = dock.labels_layer.data.copy()
    for label in (liver, spleen):
        others = _slices(labels, label) - {z}
        assert len(others) >= 5, (label, sorted(others))
        assert _dice(labels[z] == label, ref[z] == label) > 0.5
    # Undo restores the previous state exactly; Redo re-applies
    dock.undo()
    wait_until(qtbot, lambda: dock.rounds >= 2, 60)
    assert not dock.labels_layer.data.any()
    assert len(viewer.layers["S2VNet: liver"].data) == 0
    dock.redo()
    wait_until(qtbot, lambda: dock.rounds >= 3, 60)
    np.testing.assert_array_equal(dock.labels_layer.data, labels)
    assert len(viewer.layers["S2VNet: liver"].data) == 1


def test_auto_segment_real_ct(qtbot, dock_factory):
    """Auto-segment of the checked model classes on a 16-slice block of the real CT."""
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    volume, ref = read_volume(sample_path("ct"), "CT"), read_volume(sample_path("ct_labels"))
    g = volume.geometry
    image, ref = g.to_internal(volume.array), g.to_internal(ref.array).astype(int)
    z = int(np.argmax((ref == 5).sum((1, 2))))
    block = slice(max(0, z - 8), z + 8)
    viewer, dock = dock_factory(image=image[block], scale=g.internal_spacing,
                                metadata={"s2vnet": {"modality": "CT"}}, name="CT block")
    wait_until(qtbot, lambda: dock.model_info is not None and dock.token >= 0, 60)
    dock.classes.add_class("liver", create_points=False)
    dock.classes.add_class("spleen", create_points=False)
    dock.classes.set_checked(5), dock.classes.set_checked(1)
    dock.auto_segment()
    wait_until(qtbot, lambda: dock.rounds >= 1, 240)
    labels = dock.labels_layer.data
    assert set(np.unique(labels)) <= {0, 1, 5}
    assert _dice(labels == 5, ref[block] == 5) > 0.5
    assert (labels == 1).any()


def test_input_warnings_become_one_napari_notification(qtbot, dock_factory):
    """A doubtful image (constant: nothing to tell apart) is still opened, and the engine's warning reaches
    the user once, as a napari notification and in the status line, not only in a console."""
    from napari.utils.notifications import notification_manager

    viewer, dock = dock_factory()  # bundled weights
    wait_until(qtbot, lambda: dock.model_info is not None, 60)
    before = len(notification_manager.records)
    viewer.add_image(np.full((6, 64, 64), 40.0, np.float32), name="flat")
    wait_until(qtbot, lambda: dock.last_warning != "", 60, "no warning reached the dock")
    assert "constant" in dock.last_warning and dock.last_error == ""
    assert "constant" in dock.status.text()
    shown = [str(n.message) for n in notification_manager.records[before:] if "S2VNet" in str(n.message)]
    assert len(shown) == 1 and "constant" in shown[0]


def test_scribble_then_delete_it_real_ct(qtbot, dock_factory):
    """A scribble drawn in the spleen's Shapes layer segments the spleen with the real engine; deleting
    it (select, Delete) removes the spleen again and leaves the liver as it was."""
    from qtpy.QtCore import Qt

    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    volume, ref = read_volume(sample_path("ct"), "CT"), read_volume(sample_path("ct_labels"))
    g = volume.geometry
    image, ref = g.to_internal(volume.array), np.rint(g.to_internal(ref.array)).astype(int)
    z = int(np.argmax(((ref == 5).sum((1, 2)) > 0) * (ref == 1).sum((1, 2))))
    block = slice(max(0, z - 6), z + 6)
    viewer, dock = dock_factory(image=image[block], scale=g.internal_spacing,
                                metadata={"s2vnet": {"modality": "CT"}}, name="CT block")
    wait_until(qtbot, lambda: dock.model_info is not None and dock.token >= 0, 60)
    ref, zb = ref[block], z - block.start
    dock.classes.add_class("liver", select=True)
    dock.classes.add_click_point(5, *_click_point(ref, 5, zb))
    wait_until(qtbot, lambda: dock.rounds >= 1, 240)
    liver = dock.labels_layer.data == 5
    dock.classes.add_class("spleen", select=True)
    dock.set_prompt_tool("scribble")
    shapes = viewer.layers["S2VNet: spleen shapes"]
    _, y, x = _click_point(ref, 1, zb)
    shapes.add_paths(np.array([[[zb, y - 2, x - 2], [zb, y + 2, x + 2]]], float))
    wait_until(qtbot, lambda: dock.rounds >= 2, 240)
    assert _dice(dock.labels_layer.data[zb] == 1, ref[zb] == 1) > 0.5
    shapes.mode = "select"
    shapes.selected_data = {0}
    viewer.layers.selection.active = shapes
    viewer.window._qt_viewer.canvas.native.setFocus()
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_Delete)
    wait_until(qtbot, lambda: dock.rounds >= 3 and dock.worker.idle(), 240)
    qtbot.wait(50)
    assert not (dock.labels_layer.data == 1).any()
    np.testing.assert_array_equal(dock.labels_layer.data == 5, liver)
    np.testing.assert_array_equal(dock.labels_layer.data, dock.worker.session.labels())
