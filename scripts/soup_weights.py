"""A uniform model soup: the tensor-by-tensor mean of fine-tunes of one start (Wortsman et al.,
"Model soups", ICML 2022). Used in docs/training.md (seventh run) to average the seeds of a recipe.

    python scripts/soup_weights.py OUT.safetensors A.safetensors B.safetensors [...] [--zoom-mm MM]

The config (class names, settings) is the first file's; every file must have the same tensors and
class names. ``--zoom-mm`` sets the soup's ``zoom_mm`` (default: the first file's).
"""

from __future__ import annotations

import argparse
import dataclasses

from napari_s2vnet.model.weights import load_weights, save_weights, train_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("weights", nargs="+")
    p.add_argument("--zoom-mm", type=float, default=None)
    args = p.parse_args()
    models = [load_weights(w) for w in args.weights]
    first = models[0]
    for w, m in zip(args.weights[1:], models[1:]):
        if m.config.class_names != first.config.class_names:
            raise SystemExit(f"{w}: other class names than {args.weights[0]}")
    states = [m.state_dict() for m in models]
    first.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]}, strict=True)
    if args.zoom_mm is not None:
        first.config = dataclasses.replace(first.config, zoom_mm=args.zoom_mm)
    info = {"soup": args.weights, "weights": [1 / len(models)] * len(models), "train": [train_info(w) for w in args.weights]}
    save_weights(first, args.out, info)
    print(f"{args.out}: uniform soup of {len(models)} (zoom_mm {first.config.zoom_mm})")


if __name__ == "__main__":
    main()
