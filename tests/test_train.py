"""Training: episodes, a short run on an nnU-Net-layout dataset, resume, and torchrun (2 CPU processes)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_s2vnet.cli import main
from napari_s2vnet.data.phantom import make_phantom
from napari_s2vnet.model.config import TrainConfig
from napari_s2vnet.model.s2vnet import S2VNet
from napari_s2vnet.model.weights import load_weights, train_info
from napari_s2vnet.train.trainer import lr_factor
from napari_s2vnet.train.augment import EpisodeAugmenter, left_right_swap, random_intensity_curve
from napari_s2vnet.train.episodes import EpisodeSampler
from napari_s2vnet.train.steps import auto_step, class_lut, interactive_step
from napari_s2vnet.train.volumes import prepare

FAST = ["--steps", "2", "--batch", "2", "--crop", "64", "--val-every", "2", "--phantoms", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def nnunet_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("Dataset001_Phantom")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    affine = np.diag([-2.0, -2.0, 3.0, 1.0])
    for i in range(2):
        ph = make_phantom(100 + i, shape=(16, 64, 64))
        # internal (z, y, x) -> a LPS-like file order (x, y, z)
        nib.save(nib.Nifti1Image(ph.image.transpose(2, 1, 0), affine), root / "imagesTr" / f"case{i}_0000.nii.gz")
        nib.save(nib.Nifti1Image(ph.labels.transpose(2, 1, 0), affine), root / "labelsTr" / f"case{i}.nii.gz")
    names = {"background": 0, "spleen": 1, "liver": 5, "kidney_left": 3}
    (root / "dataset.json").write_text(json.dumps({"labels": names, "channel_names": {"0": "CT"},
                                                   "numTraining": 2, "file_ending": ".nii.gz"}))
    return root


@pytest.mark.parametrize("centres", [1, 2])
def test_both_episode_kinds_give_finite_losses_and_gradients(tiny_config, centres):
    torch.manual_seed(0)
    tiny_model = S2VNet(dataclasses.replace(tiny_config, centres_per_class=centres))
    ph = make_phantom(3, shape=(12, 64, 64))
    vol = prepare(ph.image, ph.labels.astype(np.int32), ph.spacing, "CT", 3.0, "ph", auto=True)
    rng = np.random.default_rng(0)
    sampler = EpisodeSampler([vol], slices=3, crop=48, rng=rng)
    tiny_model.train()
    lut = class_lut(tiny_model)
    augment = EpisodeAugmenter(left_right_swap(dict(zip(tiny_config.class_ids, tiny_config.class_names)), 1024))
    for auto in (True, False):
        batch = augment(sampler.sample(2, auto=auto), rng)
        assert batch.images.shape == (2, 3, 2, 48, 48) and batch.labels.shape == (2, 3, 48, 48)
        losses = auto_step(tiny_model, batch, lut) if auto else interactive_step(tiny_model, batch, lut, rng, 1.0)
        total = sum(losses.values())
        tiny_model.zero_grad()
        total.backward()
        assert torch.isfinite(total)
        grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads)
        if not auto:  # interactive episodes train the click encoder
            assert tiny_model.click_encoder.proj[0].weight.grad.abs().sum() > 0


def test_train_on_nnunet_dataset_then_resume(nnunet_dataset, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), *FAST]) == 0
    for name in ("train_log.csv", "val_dice.csv", "curves.png", "checkpoint.pt", "weights.safetensors", "config.json"):
        assert (out / name).exists(), name
    model = load_weights(out / "weights.safetensors")
    assert set(model.config.class_ids) >= {1, 3, 5}
    assert train_info(out / "weights.safetensors")["steps"] == 2
    args = [a if a != "2" else "4" for a in FAST]
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), "--resume", *args]) == 0
    with open(out / "train_log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4]  # resumed at step 3, not restarted


def test_time_budget_stops_the_run_and_drives_the_schedule(nnunet_dataset, tmp_path):
    out = tmp_path / "budget"
    args = ["--steps", "100000", "--batch", "1", "--crop", "48", "--val-every", "100000", "--phantoms", "0",
            "--threads", "1", "--time-budget-min", "0.05", "--centres-per-class", "2"]
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), *args]) == 0
    info = train_info(out / "weights.safetensors")
    assert 1 <= info["steps"] < 100000 and 3.0 <= info["seconds"] < 120
    assert (out / "val_dice.csv").exists()  # validated once at the end although --val-every was never reached
    assert load_weights(out / "weights.safetensors").config.centres_per_class == 2
    cfg = TrainConfig(steps=10, warmup_steps=5, time_budget_s=100.0)
    assert lr_factor(2, cfg, 99.0) == pytest.approx(3 / 5)  # warm-up still counts steps
    assert lr_factor(50, cfg, 0.0) == pytest.approx(1.0)  # past the step count: time decides
    assert lr_factor(50, cfg, 50.0) == pytest.approx(0.02 + 0.98 * 0.5)
    assert lr_factor(50, cfg, 100.0) == pytest.approx(0.02)


def test_train_class_selection_and_mapping(nnunet_dataset, tmp_path):
    out = tmp_path / "sel"
    rc = main(["train", "--data", str(nnunet_dataset), "--out", str(out), "--classes", "liver,1", "--map", "1:7",
               *FAST[:-4], "--phantoms", "0", "--threads", "1"])
    assert rc == 0
    assert load_weights(out / "weights.safetensors").config.class_ids == (5, 7)


def test_split_file_decides_which_cases_train_and_which_validate(nnunet_dataset, tmp_path, capsys):
    folds = [{"train": ["case0"], "val": ["case1"]}, {"train": ["case1"], "val": ["case0"]}]  # nnU-Net format
    split = tmp_path / "splits_final.json"
    split.write_text(json.dumps(folds))
    out = tmp_path / "split"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), "--split", str(split), "--fold", "1",
                 *FAST]) == 0
    record = json.loads((out / "split.json").read_text())
    assert "case1" in record["train"] and "case0" not in record["train"] and record["val"] == ["case0"]
    with open(out / "val_dice.csv") as f:
        header = next(csv.reader(f))
    per_case = {key.split(":")[0] for key in header if ":" in key}
    assert per_case == {"case0"}  # validated on the held-out case only
    bad = tmp_path / "bad.json"
    for content, expected in ((json.dumps({"train": ["case0"], "val": ["case9"]}), "case9"),
                              (json.dumps({"train": ["case0"], "val": ["case0"]}), "both train and val"),
                              (json.dumps({"train": ["case0"], "val": []}), "no validation case"),
                              ("{not json", "not a JSON split file")):
        bad.write_text(content)
        capsys.readouterr()
        assert main(["train", "--data", str(nnunet_dataset), "--out", str(tmp_path / "x"), "--split", str(bad),
                     *FAST]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(tmp_path / "x"), "--split", str(split),
                 "--fold", "5", *FAST]) == 2
    assert "2 fold(s)" in capsys.readouterr().err


def train_two_ranks(dataset, out, args, port: int, timeout: float = 300) -> None:
    """``torchrun --nproc_per_node 2 ... train`` on CPU (gloo), one thread per process; must succeed."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "napari_s2vnet", "train", "--data", str(dataset), "--out", str(out), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]


def test_torchrun_two_processes(nnunet_dataset, tmp_path):
    out = tmp_path / "ddp"
    train_two_ranks(nnunet_dataset, out, FAST, 29517)
    info = train_info(out / "weights.safetensors")
    assert info["world_size"] == 2 and info["ranks_in_sync"]  # DistributedDataParallel kept the ranks equal


def test_left_right_swap_and_mirrored_episodes():
    lut = left_right_swap({2: "kidney_right", 3: "kidney_left", 5: "liver"}, 8)
    assert lut[2] == 3 and lut[3] == 2 and lut[5] == 5 and lut[7] == 7
    images = torch.zeros(1, 2, 2, 32, 32)
    labels = torch.zeros(1, 2, 32, 32, dtype=torch.long)
    labels[:, :, 10:20, 2:8] = 2  # right kidney at the image's left edge
    from napari_s2vnet.train.episodes import EpisodeBatch

    aug = EpisodeAugmenter(lut, seed=0)
    aug.spatial.transforms = ()  # isolate the mirroring
    aug.intensity.transforms = ()
    seen = set()
    for seed in range(8):
        out = aug(EpisodeBatch(images, labels, [True], ["x"]), np.random.default_rng(seed))
        flipped = bool((out.labels[0, :, 10:20, 24:30] == 3).all())
        seen.add(flipped)
        assert flipped or bool((out.labels[0, :, 10:20, 2:8] == 2).all())
    assert seen == {True, False}  # both happen, and a mirrored right kidney becomes a left one


def test_light_augmentation_never_mirrors_and_keeps_labels_in_place():
    from napari_s2vnet.train.episodes import EpisodeBatch

    lut = left_right_swap({2: "kidney_right", 3: "kidney_left"}, 8)
    images = torch.rand(1, 2, 2, 48, 48)
    labels = torch.zeros(1, 2, 48, 48, dtype=torch.long)
    labels[:, :, 18:30, 4:16] = 2  # right kidney near the left edge
    aug = EpisodeAugmenter(lut, seed=0, level="light")
    for seed in range(6):
        out = aug(EpisodeBatch(images, labels, [True], ["x"]), np.random.default_rng(seed))
        assert not (out.labels == 3).any()  # no mirroring, so no left/right swap
        assert (out.labels[0, :, :, 24:] == 2).sum() == 0  # it stays on its side (±12°, ±15 %, 5 px)
        assert out.images.shape == images.shape and not torch.equal(out.images, images)
    with pytest.raises(ValueError, match="augmentation level"):
        EpisodeAugmenter(lut, level="heavy")


def test_random_intensity_curve_is_a_reproducible_map_of_intensity():
    x = torch.linspace(0, 1, 101)
    a, b = random_intensity_curve(x, np.random.default_rng(3)), random_intensity_curve(x, np.random.default_rng(3))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert (a[1:] - a[:-1]).abs().max() < 0.1  # continuous: at most 5 segments of slope <= 1 * (k - 1)
    curves = [random_intensity_curve(x, np.random.default_rng(s)) for s in range(20)]
    assert any(((c[1:] - c[:-1]) > 0).any() and ((c[1:] - c[:-1]) < 0).any() for c in curves)  # non-monotone ones
    img = torch.rand(2, 16, 16)
    out = random_intensity_curve(img, np.random.default_rng(5))
    same = img.flatten()[:, None] == img.flatten()[None, :]
    assert torch.equal(same & (out.flatten()[:, None] == out.flatten()[None, :]), same)  # a function of intensity


def test_contrast_randomisation_changes_interactive_episodes_only():
    from napari_s2vnet.train.episodes import EpisodeBatch

    lut = left_right_swap({1: "liver"}, 4)
    images = torch.rand(2, 3, 2, 32, 32)
    labels = torch.zeros(2, 3, 32, 32, dtype=torch.long)

    def run(contrast: float, interactive: bool) -> tuple[torch.Tensor, float]:
        aug = EpisodeAugmenter(lut, seed=0, level="light", contrast=contrast)
        aug.spatial = aug.intensity = lambda d: d  # isolate the contrast step
        rng = np.random.default_rng(0)
        # labels in class ids (a volume usable for automatic episodes) must not matter: only the mode does
        return aug(EpisodeBatch(images, labels, [True, False], ["a", "b"]), rng, interactive).images, float(rng.random())

    plain, after_plain = run(0.0, True)
    assert torch.equal(plain, images)
    automatic, after_auto = run(1.0, False)
    assert torch.equal(automatic, images) and after_auto == after_plain  # no draws: old runs replay exactly
    mixed, _ = run(1.0, True)
    assert not torch.equal(mixed[0], images[0]) and not torch.equal(mixed[1], images[1])
    slice0, slice2 = images[1, 0, 0].flatten(), images[1, 2, 0].flatten()  # one curve for the episode's slices
    both = torch.cat([slice0, slice2])
    order = both.argsort()
    remapped = torch.cat([mixed[1, 0, 0].flatten(), mixed[1, 2, 0].flatten()])[order]
    steps = (remapped[1:] - remapped[:-1]).abs() / (both[order][1:] - both[order][:-1]).clamp_min(1e-6)
    assert steps.max() <= 5 + 1e-3  # both slices lie on one curve of slope <= k - 1 <= 5
    with pytest.raises(ValueError, match="probability"):
        EpisodeAugmenter(lut, contrast=1.5)
    assert main(["train", "--data", "bundled", "--out", "/nonexistent", "--contrast-randomise", "2"]) != 0
    assert main(["train", "--data", "bundled", "--out", "/nonexistent", "--lesion-donor", "-1"]) != 0


def test_train_ablation_flags_reach_the_configs(nnunet_dataset, tmp_path):
    out = tmp_path / "abl"
    rc = main(["train", "--data", str(nnunet_dataset), "--out", str(out), *FAST, "--click-centres", "pooled",
               "--augment", "light", "--contrast-randomise", "0.5", "--lesion-donor", "0.5"])
    assert rc == 0
    assert train_info(out / "weights.safetensors")["train"]["contrast_randomise"] == 0.5
    assert train_info(out / "weights.safetensors")["train"]["lesion_donor"] == 0.5
    assert load_weights(out / "weights.safetensors").config.click_centres == "pooled"
    assert train_info(out / "weights.safetensors")["train"]["augment"] == "light"


def test_init_from_stride2_weights_for_a_stride4_model(tiny_config, tmp_path, capsys):
    from napari_s2vnet.errors import InputError
    from napari_s2vnet.model.weights import save_weights
    from napari_s2vnet.train.trainer import STRIDE2_ONLY, _load_init

    torch.manual_seed(0)
    two = S2VNet(tiny_config)
    path = save_weights(two, tmp_path / "w2.safetensors", {})
    four = S2VNet(dataclasses.replace(tiny_config, embed_stride=4))
    assert set(two.state_dict()) - set(four.state_dict()) == set(STRIDE2_ONLY)
    _load_init(four, path)
    assert "dropped " + ", ".join(STRIDE2_ONLY) in capsys.readouterr().out
    for k, v in four.state_dict().items():
        assert torch.equal(v, two.state_dict()[k])
    path4 = save_weights(four, tmp_path / "w4.safetensors", {})
    with pytest.raises(InputError, match="embed_stride 4"):  # no way back: the stride-2 layers are not there
        _load_init(S2VNet(tiny_config), path4)
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    del tensors["aggregator." + next(k.split(".", 1)[1] for k in tensors if k.startswith("aggregator."))]
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=meta)
    with pytest.raises(Exception):  # everything else still strict
        _load_init(S2VNet(dataclasses.replace(tiny_config, embed_stride=4)), tmp_path / "short.safetensors")


def test_train_embed_stride_4_from_stride2_init(nnunet_dataset, tmp_path, capsys):
    first = tmp_path / "s2"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(first), *FAST]) == 0
    out = tmp_path / "s4"
    assert main(["train", "--data", str(nnunet_dataset), "--out", str(out), *FAST, "--embed-stride", "4",
                 "--init", str(first / "weights.safetensors")]) == 0
    assert "dropped pixel_decoder.lateral.0.weight" in capsys.readouterr().out
    w = load_weights(out / "weights.safetensors")
    assert w.config.embed_stride == 4
    assert not any(k.startswith("pixel_decoder.lateral.0.") for k in w.state_dict())


def test_fine_upsampled_copies_of_bundled_volumes_and_phantoms():
    """``--fine-mm 1.5 --fine-upsampled``: each bundled volume and phantom also comes at 1.5 mm
    (about twice the pixels across), for interactive episodes only, with its source's weight; without
    the flag the volume list is the coarse one alone."""
    import argparse

    from napari_s2vnet.train.run import add_arguments, build_volumes

    p = argparse.ArgumentParser()
    add_arguments(p)
    coarse, _, _ = build_volumes(p.parse_args(["--phantoms", "1", "--out", "x"]), 3.0)
    args = p.parse_args(["--phantoms", "1", "--fine-mm", "1.5", "--fine-upsampled", "--out", "x"])
    volumes, _, _ = build_volumes(args, 3.0)
    by_name = {v.name: v for v in volumes}
    assert sorted(by_name) == sorted([v.name for v in coarse] + [f"{v.name}@1.5mm" for v in coarse])
    for v in coarse:
        fine = by_name[f"{v.name}@1.5mm"]
        assert not fine.auto and fine.weight == v.weight
        assert fine.labels.shape[0] == v.labels.shape[0]
        assert all(1.8 < f / c < 2.2 for f, c in zip(fine.labels.shape[1:], v.labels.shape[1:]))
        assert set(np.unique(fine.labels)) == set(np.unique(v.labels))
    with pytest.raises(Exception, match="--fine-upsampled needs --fine-mm"):
        from napari_s2vnet.train.run import run

        run(p.parse_args(["--fine-upsampled", "--out", "x"]))
