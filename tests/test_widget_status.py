"""What a new user sees first in the dock: a one-line status after the model loads (details in its
tooltip), no label id beside an empty class name, counts in words, and the sample's reference
labels in the dock's colours."""

from __future__ import annotations

import numpy as np
import pytest

from widget_fixtures import ScriptedPredictor, dock_factory, small_image  # noqa: F401

napari = pytest.importorskip("napari")

pytestmark = pytest.mark.gui


class OneClassPredictor(ScriptedPredictor):
    class_names = {5: "liver"}


def test_model_ready_is_one_short_line_with_the_classes_in_its_tooltip(qtbot, dock_factory):
    viewer, dock = dock_factory(predictor=ScriptedPredictor())
    dock.wait_ready(30)
    assert dock.status.text() == "model ready: 2 classes on cpu"
    assert "liver, spleen" in dock.status.toolTip() and "scripted:000000000000" in dock.status.toolTip()
    dock._set_status("saved x.nii.gz")
    assert dock.status.toolTip() == ""  # details belong to the line they came with


def test_one_class_is_not_classes(qtbot, dock_factory):
    from napari_s2vnet.widget.dock_ui import count_text

    viewer, dock = dock_factory(predictor=OneClassPredictor())
    dock.wait_ready(30)
    assert dock.status.text() == "model ready: 1 class on cpu"
    assert count_text(0, "class", "classes") == "0 classes" and count_text(2, "click") == "2 clicks"


def test_the_id_box_is_blank_until_a_name_is_typed(qtbot, dock_factory):
    viewer, dock = dock_factory(predictor=ScriptedPredictor(), image=small_image())
    dock.wait_ready(30)
    panel = dock.classes
    assert panel.name_combo.currentText() == "" and panel.id_spin.text() == "id"
    panel.name_combo.setEditText("liver")
    assert panel.id_spin.value() == 5
    panel.name_combo.setEditText("tumour")
    assert panel.id_spin.value() == 2  # the smallest id neither the model (1, 5) nor a class uses
    panel.name_combo.setEditText("")
    assert panel.id_spin.text() == "id"
    panel.name_combo.setEditText("liver")
    panel.id_spin.setValue(0)  # the user arrows down to "id": Add class picks the model's id
    panel.add_button.click()
    assert list(panel.entries) == [5] and panel.entries[5].name == "liver"


@pytest.mark.parametrize("key", ["ct", "phantom"])
def test_sample_reference_labels_have_the_docks_colours(qtbot, dock_factory, key):
    from napari_s2vnet.widget.classes_panel import default_color

    viewer, dock = dock_factory(predictor=ScriptedPredictor())
    viewer.open_sample("napari-s2vnet", key)
    dock.wait_ready(30)
    reference = next(l for l in viewer.layers if l.name.endswith("labels") and l is not dock.labels_layer)
    ids = [int(i) for i in np.unique(reference.data) if i > 0]
    assert len(ids) >= 3
    for label in ids:
        np.testing.assert_allclose(reference.colormap.map(label), default_color(label), atol=1e-6)
    dock.classes.add_class("liver")
    np.testing.assert_allclose(reference.colormap.map(5), dock.labels_layer.colormap.map(5), atol=1e-6)


def _menu_paths(menu, path: list[str]) -> list[str]:
    out = []
    for action in menu.actions():
        text = action.text().replace("&", "")
        if action.menu() is not None:
            out += _menu_paths(action.menu(), path + [text])
        elif text:
            out.append(" > ".join(path + [text]))
    return out


def test_napari_shows_the_menu_entries_the_docs_are_checked_against(make_napari_viewer):
    from test_docs_examples import manifest_menus

    viewer = make_napari_viewer()
    shown = []
    for action in viewer.window._qt_window.menuBar().actions():
        if action.menu() is not None:
            shown += _menu_paths(action.menu(), [action.text().replace("&", "")])
    ours = {p for p in shown if "S2VNet" in p}
    expected = manifest_menus()
    leaves = {p for p in expected if not any(q.startswith(p + " > ") for q in expected)}
    assert len(leaves) == 4 and ours == leaves  # the widget and the three samples
