"""Loss and validation-Dice curves of a run as one PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(log_path: Path, val_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read(log_path)
    vals = _read(val_path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for mode in ("auto", "interactive"):
        pts = [(int(r["step"]), float(r["loss"])) for r in rows if r["mode"] == mode]
        if pts:
            steps, losses = zip(*pts)
            k = max(1, len(losses) // 200)
            smooth = [sum(losses[i : i + k]) / len(losses[i : i + k]) for i in range(0, len(losses), k)]
            ax1.plot(steps[::k][: len(smooth)], smooth, label=mode)
    ax1.set_xlabel("step"); ax1.set_ylabel("loss"); ax1.set_yscale("log"); ax1.legend()
    if vals:
        for key in vals[0]:
            if key.startswith("mean"):
                ax2.plot([int(r["step"]) for r in vals], [float(r[key]) for r in vals], marker="o", label=key)
        ax2.legend()
    ax2.set_xlabel("step"); ax2.set_ylabel("validation Dice"); ax2.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
