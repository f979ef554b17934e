"""Training at scale on CPU: exact resume (random states in the checkpoint), atomic checkpoints every
N steps, SIGTERM saves and stops, gradient accumulation, 1 vs 2 ranks, the AMP choice, --compile."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from napari_s2vnet.cli import main
from napari_s2vnet.model.weights import train_info
from napari_s2vnet.train.checkpoint import ScaleOptions, amp_dtype
from test_train import FAST, nnunet_dataset, train_two_ranks  # noqa: F401  (the fixture)

LOSS_COLUMNS = ("mode", "loss", "ce", "dice", "objectness", "class", "aux", "lr")


def _rows(run) -> list[dict[str, str]]:
    with open(run / "train_log.csv") as f:
        return list(csv.DictReader(f))


def _with(args: list[str], **values: str) -> list[str]:
    out = list(args)
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def test_resume_continues_exactly(nnunet_dataset, tmp_path):
    data = ["train", "--data", str(nnunet_dataset)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*data, "--out", str(straight), *_with(FAST, steps="4")]) == 0
    assert main([*data, "--out", str(split), *FAST]) == 0  # 2 steps, checkpoint at step 2
    assert main([*data, "--out", str(split), "--resume", *_with(FAST, steps="4")]) == 0
    a, b = _rows(straight), _rows(split)
    assert [r["step"] for r in b] == ["1", "2", "3", "4"]
    for i in (2, 3):  # steps 3 and 4: the same episodes, augmentations, clicks and weights
        assert [a[i][c] for c in LOSS_COLUMNS] == [b[i][c] for c in LOSS_COLUMNS], (a[i], b[i])
    assert {r["mode"] for r in a} == {"auto", "interactive"}  # both kinds were drawn (the rng matters)
    ckpt = torch.load(split / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 1 and ckpt["rng"][0]["augment"]


def test_checkpoint_every_n_steps_is_atomic(nnunet_dataset, tmp_path, monkeypatch):
    import napari_s2vnet.train.trainer as trainer

    out = tmp_path / "every"
    written: list[int] = []
    real = trainer.atomic_torch_save

    def spy(obj, path):
        written.append(obj["step"])
        real(obj, path)

    monkeypatch.setattr(trainer, "atomic_torch_save", spy)
    args = _with(FAST, steps="3", val_every="100", ckpt_every="1")
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), *args]) == 0
    assert written == [1, 2, 3]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert not (out / "val_dice.csv").exists() or len(_rows_of(out / "val_dice.csv")) == 1  # validated only at the end


def _rows_of(path) -> list[list[str]]:
    with open(path) as f:
        return list(csv.reader(f))[1:]


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(nnunet_dataset, tmp_path):
    out = tmp_path / "term"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = _with(FAST, steps="100000", val_every="100000", ckpt_every="1")
    proc = subprocess.Popen([sys.executable, "-m", "napari_s2vnet", "train", "--data", str(nnunet_dataset),
                             "--out", str(out), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 240
    while not (out / "checkpoint.pt").exists():  # the loop runs (the handler is in place)
        assert proc.poll() is None and time.time() < end, proc.stderr.read()[-2000:] if proc.poll() is not None else "slow"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-2000:]
    assert "SIGTERM: stopped after step" in stderr + stdout
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 1 and [int(r["step"]) for r in _rows(out)] == list(range(1, step + 1))
    info = train_info(out / "weights.safetensors")
    assert info["stopped_by_sigterm"] and info["steps"] == step
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), "--resume",
                 *_with(args, steps=str(step + 1))]) == 0
    assert [int(r["step"]) for r in _rows(out)] == list(range(1, step + 2))


def test_gradient_accumulation_and_one_vs_two_ranks(nnunet_dataset, tmp_path):
    """Rank 0 draws the same micro-batches in a 1-rank and a 2-rank run, and both start from the same
    parameters, so the first step's loss (before any averaged update) agrees; DDP's ``no_sync`` path
    (accumulation) keeps the ranks equal."""
    args = _with(FAST, accumulate="2")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(one), *args]) == 0
    assert json.loads((one / "config.json").read_text())["scale"]["accumulate"] == 2
    train_two_ranks(nnunet_dataset, two, args, 29533, timeout=400)
    info = train_info(two / "weights.safetensors")
    assert info["world_size"] == 2 and info["ranks_in_sync"] and info["scale"]["accumulate"] == 2
    first_one, first_two = _rows(one)[0], _rows(two)[0]
    assert first_one["mode"] == first_two["mode"]
    assert float(first_two["loss"]) == pytest.approx(float(first_one["loss"]), rel=1e-4, abs=1e-5)
    assert len(_rows(two)) == 2


def test_amp_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert all(amp_dtype(cpu, mode) is None for mode in ("auto", "bf16", "fp16", "off"))
    assert amp_dtype(cuda, "off") is None and amp_dtype(cuda, "fp16") is torch.float16
    assert amp_dtype(cuda, "bf16") is torch.bfloat16
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
        assert amp_dtype(cuda, "auto") is torch.float16  # pre-Ampere GPUs: fp16 with the GradScaler
        m.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        assert amp_dtype(cuda, "auto") is torch.bfloat16
    with pytest.raises(ValueError):
        ScaleOptions(amp="fp8")
    assert main(["train", "--accumulate", "0", "--out", "unused"]) == 2  # refused in one line


def test_compile_flag_compiles_the_encoder(nnunet_dataset, tmp_path, monkeypatch):
    """The flag reaches ``torch.compile`` (in place, so parameter names stay); compiling itself is not
    run here (minutes on this CPU; see docs/training.md)."""
    compiled: list[str] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    out = tmp_path / "compiled"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), *_with(FAST, steps="1"), "--compile"]) == 0
    assert compiled == ["Backbone", "PixelDecoder"]
    assert train_info(out / "weights.safetensors")["scale"]["compile"] is True


def _stream_batches(volumes, cfg, rank: int, workers: int, n: int):
    from napari_s2vnet.train.loader import EpisodeStream, episode_loader

    it = iter(episode_loader(EpisodeStream(volumes, cfg, torch.arange(1025), rank), workers))
    return [next(it) for _ in range(n)]


def test_episode_stream_with_workers_is_seeded_per_rank_and_worker():
    import dataclasses

    import numpy as np

    from napari_s2vnet.data.phantom import make_phantom
    from napari_s2vnet.model.config import TrainConfig
    from napari_s2vnet.train.volumes import prepare

    ph = make_phantom(4, shape=(12, 48, 48))
    volumes = [prepare(ph.image, ph.labels.astype(np.int32), ph.spacing, "CT", 3.0, "ph", auto=True)]
    cfg = dataclasses.replace(TrainConfig(), batch_episodes=1, crop=32, long_slices=4, long_from=2, augment="light")
    a = _stream_batches(volumes, cfg, 0, 2, 4)
    again = _stream_batches(volumes, cfg, 0, 2, 4)
    other_rank = _stream_batches(volumes, cfg, 1, 2, 4)
    for (ka, ba), (kb, bb) in zip(a, again):  # the same seeds give the same episodes
        assert ka == kb and torch.equal(ba.images, bb.images) and torch.equal(ba.labels, bb.labels)
    assert not torch.equal(a[0][1].images, a[1][1].images)  # the two workers draw different episodes
    assert not all(torch.equal(x[1].images, y[1].images) for x, y in zip(a, other_rank))  # and so do ranks
    assert [b.images.shape[1] for _, b in a] == [3, 3, 4, 4]  # the curriculum follows the run's step


def test_preprocessing_cache_is_memory_mapped_and_keyed(nnunet_dataset, tmp_path):
    from napari_s2vnet.data.datasets import discover
    from napari_s2vnet.train.loader import cache_key, cached_case
    from napari_s2vnet.train.volumes import load_case

    spec = discover(nnunet_dataset)
    case = spec.cases[0]
    plain = load_case(case, spec.class_names, 3.0, True)
    first = cached_case(case, spec.class_names, 3.0, True, tmp_path / "cache")
    second = cached_case(case, spec.class_names, 3.0, True, tmp_path / "cache")
    assert isinstance(second.image, __import__("numpy").memmap) and second.name == plain.name
    assert (second.image == plain.image).all() and (second.labels == plain.labels).all()
    assert (first.labels == plain.labels).all()
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert cache_key(case, spec.class_names, 2.0, None) != cache_key(case, spec.class_names, 3.0, None)
    assert cache_key(case, {1: "spleen"}, 3.0, None) != cache_key(case, spec.class_names, 3.0, None)


def test_train_with_workers_and_cache_reports_loading(nnunet_dataset, tmp_path, capsys):
    from napari_s2vnet.data.datasets import discover
    from napari_s2vnet.model.config import TrainConfig
    from napari_s2vnet.train.loader import EpisodeStream, episode_loader, loader_slices_per_s
    from napari_s2vnet.train.volumes import load_case

    out, cache = tmp_path / "workers", tmp_path / "cache"
    args = _with(FAST, steps="3", val_every="100", phantoms="0")
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), "--workers", "2", "--cache", str(cache),
                 *args]) == 0
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2  # both cases, cached once
    loading = train_info(out / "weights.safetensors")["loading"]
    assert loading["workers"] == 2 and 0 <= loading["waited_share"] <= 1 and loading["model_slices_per_s"] > 0
    captured = capsys.readouterr()
    assert "episode loading (2 workers)" in captured.out + captured.err
    spec = discover(nnunet_dataset)
    vols = [load_case(c, spec.class_names, 3.0, True) for c in spec.cases]
    cfg = TrainConfig(batch_episodes=2, crop=64)
    rate = loader_slices_per_s(episode_loader(EpisodeStream(vols, cfg, torch.arange(1025)), 2), 6)
    print(f"loader alone: {rate:.0f} slices/s with 2 workers; the model consumed "
          f"{loading['model_slices_per_s']:.0f} slices/s (waiting {loading['waited_share']:.0%} of the step time)")
    assert rate > 0
