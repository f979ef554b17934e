"""A process that autosaves round after round until it is killed (``tests/test_crash_safety.py``).

``python autosave_child.py save FOLDER``: round k writes :func:`save_labels_of` (k) through
:func:`napari_s2vnet.widget.autosave.save` in a loop; large, incompressible labels, so the process
spends its time inside the save.

``python autosave_child.py propagate FOLDER``: the real engine on the bundled MR, as the dock runs it:
round k adds one click and propagates; the labels of round k are written to ``expected-k.npy``
(before its save starts), then saved on a one-thread pool while round k+1 already propagates.

Both print ``P k`` (propagation of round k starts), ``W k`` (save of round k starts) and ``D k``
(save of round k finished) on stdout, and append ``k`` to ``FOLDER/../journal.txt`` after a save
returned. Not a test module.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from napari_s2vnet.widget import autosave

FINGERPRINT = "crash-test"
SAVE_SHAPE = (20, 192, 192)
#: clicks (z, y, x, label) on the bundled MR, internal order: liver, spleen, kidneys, cycled with a shift
MR_CLICKS = [(9, 41, 22, 5), (15, 65, 90, 1), (8, 63, 35, 2), (6, 57, 78, 3), (10, 22, 62, 6)]


def save_labels_of(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(0, 60000, SAVE_SHAPE).astype(np.uint16)


def clicks_of(k: int) -> list[dict]:
    out = []
    for i in range(1, k + 1):
        z, y, x, label = MR_CLICKS[(i - 1) % len(MR_CLICKS)]
        shift = (i - 1) // len(MR_CLICKS)
        out.append({"z": z, "y": y + shift, "x": x, "label": label, "positive": True})
    return out


def mr_metadata() -> tuple[dict, tuple[float, ...]]:
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.widget.reader import META_KEY, geometry_metadata

    volume = read_volume("sample:mr")
    return {META_KEY: geometry_metadata(volume.geometry, volume.modality, None)}, tuple(volume.geometry.internal_spacing)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _journal(folder: Path, k: int) -> None:
    with open(folder.parent / "journal.txt", "a") as fh:
        fh.write(f"{k}\n")
        fh.flush()
        os.fsync(fh.fileno())


def _save(folder: Path, k: int, labels: np.ndarray, metadata: dict | None, scale) -> None:
    _say(f"W {k}")
    state = autosave.AutosaveState(fingerprint=FINGERPRINT, image_name="child", clicks=clicks_of(k), rounds=k)
    autosave.save(folder, labels, state, metadata, scale)
    _journal(folder, k)
    _say(f"D {k}")


def run_save(folder: Path) -> None:
    _say("ready")
    for k in range(1, 100000):
        _save(folder, k, save_labels_of(k), None, (3.0, 1.0, 1.0))


def run_propagate(folder: Path) -> None:
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.inference import Predictor
    from napari_s2vnet.inference.state import Click

    volume = read_volume("sample:mr")
    g = volume.geometry
    metadata, scale = mr_metadata()
    session = Predictor.from_pretrained("cpu").session(g.to_internal(volume.array), g.internal_spacing, volume.modality)
    session.prepare_features()
    pool = ThreadPoolExecutor(1)
    previous: Future | None = None
    _say("ready")
    for k in range(1, 100000):
        c = clicks_of(k)[-1]
        _say(f"P {k}")
        session.add_click(c["z"], min(c["y"], g.internal_shape[1] - 1), c["x"], c["label"])
        for _ in session.propagate():
            pass
        labels = np.array(session.labels(), copy=True)
        tmp = folder.parent / f".expected-{k}.npy"
        np.save(tmp, labels)
        os.replace(tmp, folder.parent / f"expected-{k}.npy")
        if previous is not None:
            previous.result()
        previous = pool.submit(_save, folder, k, labels, metadata, scale)


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    {"save": run_save, "propagate": run_propagate}[mode](target)
