"""The determinism case of ``tests/test_determinism.py`` and ``tests/test_widget_determinism.py``.

The bundled real MR (20 slices) with three rounds of clicks, internal ``(z, y, x)`` indices: liver and
spleen together on slice 9, then the right kidney on slice 8, then a negative liver click. Not a
test module; also run as ``python determinism_case.py OUT.npy`` (a second process).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

#: rounds of clicks (z, y, x, label, positive), internal order of the bundled MR
ROUNDS: list[list[tuple[int, int, int, int, bool]]] = [
    [(9, 41, 22, 5, True), (9, 60, 88, 1, True)],
    [(8, 63, 35, 2, True)],
    [(12, 30, 40, 5, False)],
]


def mr_internal() -> tuple[np.ndarray, tuple[float, float, float], str, object]:
    from napari_s2vnet.data.io import read_volume

    volume = read_volume("sample:mr")
    g = volume.geometry
    return g.to_internal(volume.array), g.internal_spacing, volume.modality, g


def api_labels(predictor=None) -> np.ndarray:
    """Internal-order labels after the rounds, through the Python API (``Session``)."""
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.inference.state import Click

    image, spacing, modality, _ = mr_internal()
    predictor = predictor or Predictor.from_pretrained("cpu")
    session = predictor.session(image, spacing, modality)
    for batch in ROUNDS:
        session.add_clicks([Click(z, y, x, label, positive) for z, y, x, label, positive in batch])
        for _ in session.propagate():
            pass
    return np.array(session.labels(), copy=True)


def clicks_file(path: Path) -> Path:
    """The rounds as a CLI clicks file (voxel indices in file order)."""
    *_, g = mr_internal()
    clicks = [{"voxel": list(g.internal_to_file_index((z, y, x))), "label": label, "positive": positive, "round": r}
              for r, batch in enumerate(ROUNDS) for z, y, x, label, positive in batch]
    path.write_text(json.dumps({"clicks": clicks}))
    return path


if __name__ == "__main__":
    np.save(sys.argv[1], api_labels())
