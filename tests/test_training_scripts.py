"""``scripts/train_bundled.sh`` (the bundled weights' recipe, scaled by env) and ``scripts/device_train.sh``
(that recipe on a lent GPU), without training: ``DRY=1`` prints the commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="bash scripts")


def _dry(out: Path, **env: str) -> list[str]:
    run = subprocess.run(["bash", "scripts/train_bundled.sh"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DRY": "1", "OUT": str(out), **env}, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_the_default_is_the_v04_recipe(tmp_path):
    out = tmp_path / "never_written"
    lines = _dry(out)
    assert len(lines) == 6
    for seed in (0, 1, 2):
        plain = [ln for ln in lines if ln.endswith(f"/plain_s{seed}")]
        fine = [ln for ln in lines if ln.endswith(f"/fine_s{seed}")]
        assert len(plain) == len(fine) == 1
        assert f"--seed {seed} " in plain[0] and "--fine-mm" not in plain[0]
        assert f"--seed {seed} --fine-mm 1.5 --fine-upsampled" in fine[0]
    for ln in lines:
        assert "--init runs/init/s2vnet_tiny_ct_v0.3.safetensors --data bundled --steps 600 --slices 4" in ln
        assert "--click-centres pooled --augment light --threads 1" in ln
        assert "--device" not in ln and "--time-budget-min" not in ln
    assert not out.exists()


def test_env_scales_the_recipe_for_another_device(tmp_path):
    lines = _dry(tmp_path / "run", SEEDS="3 4", STEPS="9000", DEVICE="cuda", TIME_MIN="6", S2VNET_PYTHON="python3")
    assert [ln.rsplit("/", 1)[1] for ln in lines] == ["plain_s3", "plain_s4", "fine_s3", "fine_s4"]
    for ln in lines:
        assert ln.startswith("python3 -m napari_s2vnet train ")
        assert "--steps 9000" in ln and "--device cuda" in ln and "--time-budget-min 6" in ln


def test_device_train_says_what_to_prepare_when_the_start_weights_are_missing(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "device_train.sh", tmp_path / "scripts")
    run = subprocess.run(["bash", "scripts/device_train.sh"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--prepare" in run.stderr and "carry runs/init" in run.stderr
    assert not (tmp_path / "runs" / "device").exists()
