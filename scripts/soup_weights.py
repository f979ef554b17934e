"""A model soup: the tensor-by-tensor mean of fine-tunes of one start (Wortsman et al., "Model soups",
ICML 2022). Used in docs/training.md to average the seeds of a recipe (seventh run) and to weigh two
soups against each other (fifteenth run).

    python scripts/soup_weights.py OUT.safetensors A.safetensors B.safetensors [...] [--zoom-mm MM]
                                   [--weights WA WB ...]

The config (class names, settings) is the first file's; every file must have the same tensors and
class names. ``--zoom-mm`` sets the soup's ``zoom_mm`` (default: the first file's). ``--weights``, one
per file, summing to 1, makes a weighted mean (default: uniform).
"""

from __future__ import annotations

import argparse
import dataclasses

from napari_s2vnet.model.weights import load_weights, save_weights, train_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("parts", nargs="+", metavar="weights")
    p.add_argument("--zoom-mm", type=float, default=None)
    p.add_argument("--weights", type=float, nargs="+", default=None, metavar="W")
    args = p.parse_args()
    weights = args.weights or [1 / len(args.parts)] * len(args.parts)
    if len(weights) != len(args.parts) or abs(sum(weights) - 1) > 1e-6 or min(weights) < 0:
        raise SystemExit(f"--weights: one non-negative weight per file, summing to 1 (got {weights})")
    models = [load_weights(w) for w in args.parts]
    first = models[0]
    for w, m in zip(args.parts[1:], models[1:]):
        if m.config.class_names != first.config.class_names:
            raise SystemExit(f"{w}: other class names than {args.parts[0]}")
    states = [m.state_dict() for m in models]
    if args.weights is None:  # the uniform soup as v0.4 was made (sum, then divide: bit for bit)
        soup = {k: sum(s[k] for s in states) / len(states) for k in states[0]}
    else:
        soup = {k: sum(w * s[k] for w, s in zip(weights, states)) for k in states[0]}
    first.load_state_dict(soup, strict=True)
    if args.zoom_mm is not None:
        first.config = dataclasses.replace(first.config, zoom_mm=args.zoom_mm)
    info = {"soup": args.parts, "weights": weights, "train": [train_info(w) for w in args.parts]}
    save_weights(first, args.out, info)
    kind = "weighted" if args.weights else "uniform"
    print(f"{args.out}: {kind} soup of {len(models)} (zoom_mm {first.config.zoom_mm})")


if __name__ == "__main__":
    main()
