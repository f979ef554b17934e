"""The plugin gives the Python API's labels: the same clicks on the real MR through the dock's worker
path (pending clicks -> one round -> propagation on the model thread, slices applied to the Labels
layer) equal ``Session``'s result exactly (``tests/determinism_case.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from widget_fixtures import dock_factory, needs_weights, wait_idle, wait_until  # noqa: F401

napari = pytest.importorskip("napari")
sys.path.insert(0, str(Path(__file__).parent))
import determinism_case as case  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.slow, needs_weights]


def test_dock_gives_the_api_labels(qtbot, dock_factory):
    from napari_s2vnet.data.samples import sample_path

    expected = case.api_labels()
    viewer, dock = dock_factory()  # the bundled weights, on the worker thread
    viewer.open(sample_path("mr"), plugin="napari-s2vnet")
    wait_until(qtbot, lambda: dock.model_info is not None and dock.token >= 0 and dock.features_ready, 120)
    assert dock.last_error == ""
    names = {5: "liver", 1: "spleen", 2: "kidney_right"}
    for label in names:
        dock.classes.add_class(names[label], label)
    dock.live_check.setChecked(False)
    for r, batch in enumerate(case.ROUNDS, start=1):
        viewer.dims.set_point(0, batch[0][0] * dock.image_layer.scale[0])  # look at the clicked slice
        for z, y, x, label, positive in batch:
            dock.classes.add_click_point(label, z, y, x, positive=positive)
        dock.propagate()
        wait_until(qtbot, lambda r=r: dock.rounds >= r, 240)
        wait_idle(qtbot, dock)
    assert dock.last_error == ""
    np.testing.assert_array_equal(dock.labels_layer.data, expected)
    np.testing.assert_array_equal(dock.worker.session.labels(), expected)
