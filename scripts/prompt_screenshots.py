"""Take the box-and-scribble screenshot of ``docs/usage.md`` from a real napari window (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/prompt_screenshots.py [--out docs/images]

Opens the real abdominal CT sample and the S2VNet dock with the bundled weights, draws a box around
the spleen (its Shapes layer, rectangle) and a scribble along the liver (path) on one axial slice,
waits for the round and its propagation, and saves a whole-window screenshot
(``usage_prompts.png``) with the Dice of each class on that slice printed.
"""

from __future__ import annotations

import numpy as np

from usage_screenshots import _deep_point, _wait, open_ct


def _stroke(mask: np.ndarray, y: int, x: int, margin: int = 3) -> list[tuple[int, int]]:
    """A horizontal stroke through ``(y, x)`` that stays ``margin`` px inside ``mask``."""
    from scipy.ndimage import distance_transform_edt

    deep = distance_transform_edt(mask)[y] > margin
    lo = hi = x
    while lo - 1 >= 0 and deep[lo - 1]:
        lo -= 1
    while hi + 1 < len(deep) and deep[hi + 1]:
        hi += 1
    return [(y, lo), (y, (lo + hi) // 2), (y, hi)]


def main() -> None:
    out, app, viewer, dock, image, reference = open_ct(__doc__.splitlines()[0])
    viewer.layers["abdomen CT reference labels"].visible = False
    liver, spleen = 5, 1
    z = int(np.argmax(((reference == spleen).sum((1, 2)) > 0) * (reference == liver).sum((1, 2))))
    viewer.dims.set_point(0, z * image.scale[0])
    dock.live_check.setChecked(False)  # box and scribble in one round
    dock.classes.add_class("spleen", spleen, select=True)
    dock.set_prompt_tool("box")
    ys, xs = np.nonzero(reference[z] == spleen)
    corners = [(z, ys.min() - 2, xs.min() - 2), (z, ys.min() - 2, xs.max() + 2), (z, ys.max() + 2, xs.max() + 2),
               (z, ys.max() + 2, xs.min() - 2)]
    dock.shapes.layer(spleen).add_rectangles(np.array([corners], float))
    dock.classes.add_class("liver", liver, select=True)
    dock.set_prompt_tool("scribble")
    _, y, x = _deep_point(reference, liver, z)
    stroke = [(z, yy, xx) for yy, xx in _stroke(reference[z] == liver, y, x)]
    dock.shapes.layer(liver).add_paths(np.array([stroke], float))
    dock.propagate()
    _wait(app, lambda: dock.rounds >= 1 and dock.worker.idle(), 600)
    _wait(app, lambda: False, 1.0)
    dock.set_prompt_tool("click")
    viewer.layers.selection.active = dock.shapes.layer(spleen)
    viewer.reset_view()  # the whole slice in view
    _wait(app, lambda: False, 0.5)
    viewer.screenshot(str(out / "usage_prompts.png"), canvas_only=False)
    labels = dock.labels_layer.data
    for name, label in (("spleen", spleen), ("liver", liver)):
        a, b = labels[z] == label, reference[z] == label
        dice = 2 * (a & b).sum() / max(1, a.sum() + b.sum())
        print(f"{name}: Dice {dice:.3f} on slice {z}; on {len(np.flatnonzero((labels == label).any((1, 2))))} slices")
    print(dock.status.text())
    dock.cleanup()
    viewer.close()


if __name__ == "__main__":
    main()
