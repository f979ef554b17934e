"""Shared fixtures: small models and volumes that make engine tests fast on 2 CPU cores."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

# keep napari/Qt settings and caches out of the home folder (GUI tests)
_tmp = tempfile.mkdtemp(prefix="s2vnet-tests-")
for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
    os.environ.setdefault(var, os.path.join(_tmp, var.lower()))
os.environ.setdefault("XDG_RUNTIME_DIR", os.path.join(_tmp, "runtime"))
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)

from napari_s2vnet.model.config import preset  # noqa: E402
from napari_s2vnet.model.s2vnet import S2VNet  # noqa: E402
from napari_s2vnet.model.weights import default_weights_path  # noqa: E402

TINY_CLASSES = {1: "spleen", 2: "kidney_right", 5: "liver"}


@pytest.fixture
def tiny_config():
    return preset("tiny", TINY_CLASSES, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), dim=16, heads=2)


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return S2VNet(tiny_config).eval()


@pytest.fixture(scope="session")
def bundled_weights():
    path = default_weights_path()
    if not path.exists():
        pytest.fail(f"bundled weights missing at {path}")
    return path


@pytest.fixture(scope="session")
def predictor(bundled_weights):
    from napari_s2vnet.inference import Predictor

    return Predictor.from_file(bundled_weights, "cpu")


def _sample_internal(kind: str):
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_path

    img = read_volume(sample_path(kind))
    lab = read_volume(sample_path(f"{kind}_labels"))
    g = img.geometry
    return g.to_internal(img.array), np.rint(g.to_internal(lab.array)).astype(np.int32), g.internal_spacing


@pytest.fixture(scope="session")
def ct_internal():
    """The bundled real CT, its reference labels (internal order) and the internal spacing."""
    return _sample_internal("ct")


@pytest.fixture(scope="session")
def mr_internal():
    return _sample_internal("mr")
