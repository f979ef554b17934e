"""Determinism on CPU: the same input and the same clicks give identical labels, twice in one process,
in another process, with another thread count, and through the CLI (``segment --clicks``) and the
Python API (``Session``). The plugin's worker path is in ``tests/test_widget_determinism.py``.
All on the real bundled MR (``sample:mr``, 20 slices)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import determinism_case as case  # noqa: E402


@pytest.fixture(scope="module")
def reference(predictor) -> np.ndarray:
    labels = case.api_labels(predictor)
    counts = {int(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    assert {1, 2, 5} <= set(counts) and min(counts[c] for c in (1, 2, 5)) > 500  # a real result, not empty
    return labels


def test_same_clicks_twice_in_one_process(predictor, reference):
    np.testing.assert_array_equal(case.api_labels(predictor), reference)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2 if threads == 1 else 1)
        np.testing.assert_array_equal(case.api_labels(predictor), reference)  # another intra-op thread count
    finally:
        torch.set_num_threads(threads)


def test_same_clicks_in_another_process(reference, tmp_path):
    out = tmp_path / "labels.npy"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(Path(case.__file__)), str(out)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), reference)


def test_cli_gives_the_api_labels(reference, tmp_path, capsys):
    from napari_s2vnet.cli import main
    from napari_s2vnet.data.io import read_volume

    out = tmp_path / "mr_labels.nii.gz"
    assert main(["segment", "sample:mr", "-o", str(out), "--clicks", str(case.clicks_file(tmp_path / "c.json")),
                 "--device", "cpu"]) == 0
    *_, g = case.mr_internal()
    written = read_volume(out)
    assert written.array.shape == g.shape
    np.testing.assert_array_equal(g.to_internal(np.rint(written.array)).astype(np.uint16), reference)
