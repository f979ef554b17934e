"""benchmark.runtimes: the ONNX Runtime encoder matches eager; a clear error without onnxruntime."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_s2vnet.benchmark import runtimes
from napari_s2vnet.inference.predictor import Predictor


def test_eager_is_the_model_and_unknown_kind_is_refused(tiny_model):
    assert runtimes.encoder_runtime(tiny_model, "eager") == tiny_model.encode
    with pytest.raises(ValueError, match="unknown runtime"):
        runtimes.encoder_runtime(tiny_model, "tensorrt")


def test_missing_onnxruntime_says_how_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if absent
    with pytest.raises(RuntimeError, match="pip install onnx onnxruntime"):
        runtimes.encoder_runtime(tiny_model, "ort")


def test_label_agreement():
    a = np.zeros((2, 4, 4), np.uint16)
    a[0, :2] = 5
    assert runtimes.label_agreement(a, a.copy())["identical"]
    b = a.copy()
    b[0, 0, 0] = 0
    rec = runtimes.label_agreement(a, b)
    assert rec["differ_voxels"] == 1 and rec["min_dice"] == pytest.approx(2 * 7 / 15)


def test_ort_encoder_matches_eager_for_new_slice_sizes(tiny_model, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    run = runtimes.encoder_runtime(tiny_model, "ort", tmp_path / "enc.onnx")
    with torch.inference_mode():
        for shape in ((2, 2, 48, 64), (3, 2, 32, 32)):  # dynamic batch, H and W
            x = torch.randn(*shape)
            ref, got = tiny_model.encode(x), run(x)
            assert set(got) == set(ref)
            for s in ref:
                assert got[s].shape == ref[s].shape
                assert torch.allclose(got[s], ref[s], atol=1e-4, rtol=1e-4)


def test_compare_interleaves_and_restores_encode(tiny_model):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    image = (np.random.default_rng(0).normal(0, 200, (4, 40, 40))).astype(np.int16)
    pred = Predictor(tiny_model, "cpu", "tiny")
    res = runtimes.compare(pred, image, (3.0, 3.0, 3.0), "CT", ("ort",), repeats=1, log=lambda *_: None)
    assert [r["rep"] for r in res["eager"]] == [0, 1] and [r["rep"] for r in res["ort"]] == [0, 1]
    assert res["eager"][1]["labels"]["identical"]
    assert res["ort"][1]["labels"]["min_dice"] > 0.9
    assert "encode" not in vars(tiny_model)  # the class's method again
