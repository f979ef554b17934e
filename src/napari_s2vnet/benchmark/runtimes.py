"""Alternative CPU runtimes of the encoder (backbone + pixel decoder), for measurement only.

:func:`encoder_runtime` gives a drop-in for ``S2VNet.encode``:

* ``"eager"``: the model as shipped;
* ``"compile"`` / ``"compile-dynamic"``: ``torch.compile`` (inductor; needs a C++ compiler at run
  time) with ``dynamic=False`` / ``True``;
* ``"ort"``: the encoder exported to ONNX (TorchScript exporter, dynamic batch/H/W) and run by ONNX
  Runtime with one intra-op thread. ``onnx`` and ``onnxruntime`` are optional: they are imported
  only here, and a clear error says how to install them.

:func:`compare` runs the automatic segmentation with each runtime, interleaved (A, B, A, B…), and
checks the labels against eager. Nothing in the inference path uses this module: none of these
runtimes met the adoption rule (docs/benchmarks.md, "Measured and not adopted: CPU runtimes").

``python -m napari_s2vnet.benchmark.runtimes --kinds eager,ort --repeats 3 [--npy vol.npy --spacing 1.5 0.8 0.8]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

KINDS = ("eager", "compile", "compile-dynamic", "ort")
Encode = Callable[[torch.Tensor], dict[int, torch.Tensor]]


class _Encoder(nn.Module):
    """Backbone + pixel decoder with a tuple output (strides 2, 4, 8, 16; 4, 8, 16 with
    ``embed_stride=4``), as export needs."""

    def __init__(self, model) -> None:
        super().__init__()
        self.backbone, self.pixel_decoder = model.backbone, model.pixel_decoder
        self.strides = model.pixel_decoder.out_strides

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.pixel_decoder(self.backbone(x))
        return tuple(out[s] for s in self.strides)


def _as_dict(outs, strides: tuple[int, ...]) -> dict[int, torch.Tensor]:
    return dict(zip(strides, outs))


def _onnxruntime():
    try:
        import onnx  # noqa: F401  (the exporter writes through it)
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError("the 'ort' runtime needs the optional packages onnx and onnxruntime "
                           "(pip install onnx onnxruntime)") from exc
    return onnxruntime


def encoder_runtime(model, kind: str, onnx_path: str | Path | None = None) -> Encode:
    """A function ``(B, C, H, W) -> {stride: (B, D, H/s, W/s)}`` computing ``model.encode`` with ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown runtime {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "eager":
        return model.encode
    enc = _Encoder(model).eval()
    if kind.startswith("compile"):
        compiled = torch.compile(enc, dynamic=kind == "compile-dynamic")
        return lambda x: _as_dict(compiled(x), enc.strides)
    ort = _onnxruntime()
    path = Path(onnx_path) if onnx_path else Path(tempfile.mkdtemp(prefix="s2vnet-ort-")) / "encoder.onnx"
    names = [f"s{s}" for s in enc.strides]
    axes = {n: {0: "batch", 2: f"h_{n}", 3: f"w_{n}"} for n in names}
    example = torch.zeros(1, model.config.in_channels, 32, 32)
    with torch.no_grad():
        torch.onnx.export(enc, (example,), str(path), input_names=["image"], output_names=names,
                          dynamic_axes={"image": {0: "batch", 2: "h", 3: "w"}, **axes}, opset_version=17,
                          dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> dict[int, torch.Tensor]:
        outs = session.run(None, {"image": x.detach().cpu().contiguous().numpy()})
        return _as_dict((torch.from_numpy(o) for o in outs), enc.strides)

    return run


def label_agreement(ref: np.ndarray, labels: np.ndarray) -> dict:
    """``identical``, differing voxels and the smallest per-class Dice (classes in either)."""
    if np.array_equal(ref, labels):
        return {"identical": True, "differ_voxels": 0, "min_dice": 1.0}
    dice = []
    for c in np.union1d(np.unique(ref), np.unique(labels)):
        if c:
            a, b = ref == c, labels == c
            dice.append(2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))
    return {"identical": False, "differ_voxels": int(np.count_nonzero(ref != labels)),
            "min_dice": float(min(dice, default=1.0))}


def compare(predictor, image: np.ndarray, spacing, modality: str, kinds=("eager", "ort"), repeats: int = 3,
            log=print) -> dict[str, list[dict]]:
    """Automatic segmentation with each runtime, interleaved; one warm-up round (compilation) first.

    -> ``{kind: [{"rep", "seconds", "load", "labels"}]}`` (rep 0 = warm-up; ``labels`` vs eager's)."""
    model = predictor.model
    runtimes = {k: encoder_runtime(model, k) for k in ("eager", *kinds) if k in KINDS}
    out: dict[str, list[dict]] = {k: [] for k in runtimes}
    ref = None
    try:
        for rep in range(repeats + 1):
            for kind, fn in runtimes.items():
                model.encode = fn
                load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
                t0 = time.perf_counter()
                labels = predictor.segment_internal(image, spacing, modality)
                seconds = time.perf_counter() - t0
                ref = labels if ref is None else ref
                row = {"rep": rep, "seconds": seconds, "load": load, "labels": label_agreement(ref, labels)}
                out[kind].append(row)
                log(f"rep {rep} {kind:>15s}: {seconds:7.2f} s, load {load}, labels {row['labels']}")
    finally:
        del model.encode  # back to the class's method
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="eager,ort", help=f"comma-separated, from {', '.join(KINDS)}")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--npy", help="internal-order int16 volume (else the bundled CT)")
    ap.add_argument("--spacing", type=float, nargs=3, default=(1.5, 0.8, 0.8))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from napari_s2vnet.benchmark.speed import load_volume
    from napari_s2vnet.inference.predictor import Predictor

    spec = ({"kind": "npy", "path": args.npy, "spacing": list(args.spacing)} if args.npy
            else {"kind": "sample", "name": "ct"})
    image, spacing, modality = load_volume(spec)
    res = compare(Predictor.from_pretrained("cpu"), image, spacing, modality, args.kinds.split(","), args.repeats)
    for kind, rows in res.items():
        timed = [r["seconds"] for r in rows if r["rep"] > 0]
        print(f"{kind:>15s}: median {np.median(timed):.2f} s over {len(timed)} (warm-up {rows[0]['seconds']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
