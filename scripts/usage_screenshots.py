"""Take the screenshots of ``docs/usage.md`` from a real napari window (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/usage_screenshots.py [--out docs/images]

Opens the real abdominal CT sample, opens the S2VNet dock with the bundled weights, adds liver,
spleen and left kidney, clicks each once on one axial slice, waits for propagation, and saves
whole-window screenshots of that slice, of another slice and of a coronal view.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _wait(app, condition, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _deep_point(reference: np.ndarray, label: int, z: int) -> tuple[int, int, int]:
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(reference[z] == label)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return z, int(y), int(x)


def open_ct(description: str):
    """``--out`` parsed, a shown napari window with the real CT sample and the dock, the model loaded:
    ``(out folder, app, viewer, dock, image layer, reference labels array)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # a clean napari config and autosave cache: no restore banner from an earlier run
    scratch = tempfile.mkdtemp(prefix="s2vnet-shots-")
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = os.path.join(scratch, var.lower())

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title="napari-s2vnet")
    viewer.window._qt_window.resize(1600, 1000)
    app = QApplication.instance()
    viewer.open_sample("napari-s2vnet", "ct")
    _, dock = viewer.window.add_plugin_dock_widget("napari-s2vnet", "S2VNet segmentation")
    image = viewer.layers["abdomen CT"]
    reference = np.asarray(viewer.layers["abdomen CT reference labels"].data)
    dock.wait_ready(120)
    return out, app, viewer, dock, image, reference


def main() -> None:
    out, app, viewer, dock, image, reference = open_ct(__doc__.splitlines()[0])
    classes = {"liver": 5, "spleen": 1, "kidney_left": 3}
    z = int(np.argmax(np.prod([(reference == c).sum((1, 2)) > 0 for c in classes.values()], 0)
                      * (reference == 5).sum((1, 2))))
    viewer.dims.set_point(0, z * image.scale[0])
    dock.live_check.setChecked(False)
    for name, label in classes.items():
        dock.classes.add_class(name, label)
        dock.classes.add_click_point(label, *_deep_point(reference, label, z))
    dock.classes.select_class(5)
    dock.propagate()
    dock.wait_idle(600)
    _wait(app, lambda: False, 1.0)
    viewer.screenshot(str(out / "usage_clicked_slice.png"), canvas_only=False)
    print("clicked slice", z, dock.status.text())

    labels = dock.labels_layer.data
    present = np.flatnonzero((labels == 5).reshape(labels.shape[0], -1).any(1))
    # a slice well away from the clicked one where the liver was propagated to
    other = int(present[np.argmin(np.abs(present - (z - 12)))]) if len(present) else max(0, z - 12)
    viewer.dims.set_point(0, other * image.scale[0])
    _wait(app, lambda: False, 1.0)
    viewer.screenshot(str(out / "usage_other_slice.png"), canvas_only=False)
    print("other slice", other)

    viewer.dims.order = (1, 0, 2)  # coronal: slices stacked vertically
    viewer.dims.set_point(1, float(_deep_point(reference, 5, z)[1]) * image.scale[1])
    viewer.camera.orientation2d = ("up", "right")  # superior at the top
    viewer.reset_view()
    _wait(app, lambda: False, 1.0)
    viewer.screenshot(str(out / "usage_coronal.png"), canvas_only=False)
    dock.cleanup()
    viewer.close()


if __name__ == "__main__":
    main()
