"""``scripts/soup_weights.py``: the uniform model soup used to average the seeds of a recipe."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import torch

from napari_s2vnet.model.s2vnet import S2VNet
from napari_s2vnet.model.weights import load_weights, save_weights, train_info

SCRIPT = Path(__file__).parents[1] / "scripts" / "soup_weights.py"


def _soup(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_soup_is_the_tensor_mean_with_the_first_files_config(tiny_config, tmp_path):
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(save_weights(S2VNet(tiny_config), tmp_path / f"w{seed}.safetensors", {"seed": seed}))
    done = _soup(tmp_path / "soup.safetensors", *paths, "--zoom-mm", "1.5")
    assert done.returncode == 0, done.stderr
    soup = load_weights(tmp_path / "soup.safetensors")
    parts = [load_weights(p).state_dict() for p in paths]
    for key, value in soup.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, sum(p[key] for p in parts) / 3)
    assert soup.config == dataclasses.replace(tiny_config, zoom_mm=1.5)
    assert [t["seed"] for t in train_info(tmp_path / "soup.safetensors")["train"]] == [0, 1, 2]


def test_soup_refuses_other_classes(tiny_config, tmp_path):
    a = save_weights(S2VNet(tiny_config), tmp_path / "a.safetensors")
    names = tuple(f"other_{n}" for n in tiny_config.class_names)
    b = save_weights(S2VNet(dataclasses.replace(tiny_config, class_names=names)), tmp_path / "b.safetensors")
    done = _soup(tmp_path / "soup.safetensors", a, b)
    assert done.returncode != 0 and "other class names" in done.stderr
    assert not (tmp_path / "soup.safetensors").exists()


