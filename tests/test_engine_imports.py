"""The engine (model, data, train, inference, evaluation, CLI) must work without napari or Qt."""

from __future__ import annotations

import subprocess
import sys

ENGINE = ["napari_s2vnet.cli", "napari_s2vnet.commands", "napari_s2vnet.model.s2vnet", "napari_s2vnet.model.weights",
          "napari_s2vnet.data.io", "napari_s2vnet.data.datasets", "napari_s2vnet.data.phantom",
          "napari_s2vnet.train.run", "napari_s2vnet.inference", "napari_s2vnet.evaluation.interactive"]


def test_engine_never_imports_napari_or_qt():
    code = (
        "import sys\n"
        f"for m in {ENGINE!r}: __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
