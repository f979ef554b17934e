"""Train the nnU-Net-style 3D U-Net (MONAI ``DynUNet``) on the data our model sees, for a wall-clock budget.

Data: the automatic-mode training volumes of ``napari-s2vnet train`` with the same options (the
bundled CT, weight 3, and the procedural phantoms, weight 1/N each; the bundled MR is left out
because its label ids are the TotalSegmentator MR map: our model only uses it for interactive
episodes). Volumes are the training volumes of our model: normalised 2-channel images at 3 mm
in-plane, slices untouched (3 mm for both the CT and the phantoms), i.e. 3 mm isotropic.

Training follows nnU-Net's recipe where it matters on a CPU budget: patch = the inference ROI
(96³), batch 2, one third of the patches centred on foreground, Dice + cross-entropy, SGD
(lr 0.01, Nesterov momentum 0.99, weight decay 3e-5) with the poly schedule driven by elapsed
time instead of epochs (so the schedule ends exactly at the budget), random flips. The result is a
checkpoint ``.pt`` readable by :func:`baselines3d.load_or_build`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_s2vnet.benchmark.baselines3d import build

TARGET_SPACING = (3.0, 3.0, 3.0)


def training_volumes(phantoms: int = 16, seed: int = 0, include_mr: bool = True):
    """-> the automatic training volumes of our model and its class map ``{id: name}``."""
    from napari_s2vnet.train.run import add_arguments, build_volumes

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the train command's own defaults, so new options never go missing here
    args = parser.parse_args(["--phantoms", str(phantoms), "--seed", str(seed)] + ([] if include_mr else ["--no-mr"]))
    volumes, class_names, _ = build_volumes(args, TARGET_SPACING[1])
    return [v for v in volumes if v.auto], class_names


def _crop(vol, roi: tuple[int, int, int], rng: np.random.Generator, foreground: bool) -> tuple[np.ndarray, np.ndarray]:
    image, labels = vol.image, vol.labels
    pad = [(0, max(0, r - n)) for r, n in zip(roi, labels.shape)]
    if any(p[1] for p in pad):
        image = np.pad(image, [(0, 0)] + pad)
        labels = np.pad(labels, pad)
    shape = labels.shape
    if foreground and labels.any():
        fg = np.flatnonzero(labels.ravel()[:: max(1, labels.size // 200_000)])
        centre = np.unravel_index(int(rng.choice(fg)) * max(1, labels.size // 200_000), shape)
        start = [int(np.clip(c - r // 2, 0, n - r)) for c, r, n in zip(centre, roi, shape)]
    else:
        start = [int(rng.integers(0, n - r + 1)) for r, n in zip(roi, shape)]
    sl = tuple(slice(s, s + r) for s, r in zip(start, roi))
    return image[(slice(None),) + sl], labels[sl]


def train_dynunet(volumes: list, class_ids: list[int], budget_s: float, out: Path, roi=(96, 96, 96), batch: int = 2,
                  seed: int = 0, device: str = "cpu", log=print) -> Path:
    from monai.losses import DiceCELoss

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net, info = build("dynunet", 2, len(class_ids) + 1, tuple(roi), TARGET_SPACING)
    net = net.to(device).train()
    lut = np.zeros(max(max(class_ids), int(max(v.labels.max() for v in volumes))) + 1, np.int64)
    lut[np.asarray(class_ids)] = np.arange(1, len(class_ids) + 1)
    weights = np.array([v.weight for v in volumes], float)
    weights /= weights.sum()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    log_path = out / "train_log.csv"
    t0 = time.perf_counter()
    it = 0
    with open(log_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "loss", "lr", "seconds"])
        while (elapsed := time.perf_counter() - t0) < budget_s:
            lr = 1e-2 * (1 - elapsed / budget_s) ** 0.9
            for group in opt.param_groups:
                group["lr"] = lr
            imgs, labs = [], []
            for b in range(batch):
                vol = volumes[rng.choice(len(volumes), p=weights)]
                img, lab = _crop(vol, tuple(roi), rng, foreground=b == batch - 1 or rng.random() < 1 / 3)
                for axis in range(3):
                    if rng.random() < 0.5:
                        img, lab = np.flip(img, axis + 1), np.flip(lab, axis)
                imgs.append(np.ascontiguousarray(img))
                labs.append(lut[np.clip(np.ascontiguousarray(lab), 0, len(lut) - 1)])
            x = torch.from_numpy(np.stack(imgs)).float().to(device)
            y = torch.from_numpy(np.stack(labs)).unsqueeze(1).to(device)
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
            opt.step()
            it += 1
            writer.writerow([it, f"{float(loss.detach()):.5f}", f"{lr:.6f}", f"{time.perf_counter() - t0:.1f}"])
            f.flush()
            if it % 10 == 0:
                log(f"  dynunet iteration {it}: loss {float(loss.detach()):.3f}, {time.perf_counter() - t0:.0f}/{budget_s:.0f} s")
    seconds = time.perf_counter() - t0
    path = out / "dynunet.pt"
    ckpt: dict[str, Any] = {"state_dict": net.state_dict(), "plan": info["plan"], "class_ids": list(class_ids),
                            "roi": list(roi), "spacing": list(TARGET_SPACING), "iterations": it, "seconds": seconds,
                            "budget_s": budget_s, "batch": batch, "volumes": [v.name for v in volumes]}
    torch.save(ckpt, path)
    log(f"  dynunet: {it} iterations in {seconds:.0f} s -> {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m napari_s2vnet.benchmark.train3d --out DIR --budget-min M``: one time-driven training."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget-min", type=float, required=True)
    p.add_argument("--phantoms", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--roi", default="96,96,96")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    volumes, class_names = training_volumes(args.phantoms, args.seed)
    train_dynunet(volumes, sorted(class_names), 60.0 * args.budget_min, args.out,
                  roi=tuple(int(r) for r in args.roi.split(",")), seed=args.seed, device=args.device)


if __name__ == "__main__":
    main()
