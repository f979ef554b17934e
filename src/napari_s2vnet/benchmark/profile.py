"""Where the time of one automatic segmentation goes: cProfile, per stage, per slice.

``napari-s2vnet benchmark --sections profile`` (or the ``speed`` section, after its timed runs)
segments each volume once in this process to warm up, once plainly timed, then once under cProfile.
Each stage is the cumulative time of one function of the engine (found by its code object, so a
nested call is never counted twice):

* preprocess: ``prepare_image`` (intensity windows, in-plane resampling to the model spacing);
* encoder: ``FeatureCache.compute`` (backbone + pixel decoder, batches of slices);
* cluster decoder: ``ClusterDecoder.forward`` (every decode: propagated and, in automatic mode,
  the fused decode from the learned embeddings);
* propagation: ``S2VNet.next_init`` (recurrent centroid aggregation);
* per-class probabilities: ``slice_scores`` (softmax over centres, summed per class, objectness);
* scores to the input grid + argmax: ``PreparedImage.labels_on_input``;
* other: the rest (the loop, the label volume, Python overhead).
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np


def _stages() -> dict[tuple[str, int], str]:
    """``(file, first line) -> stage`` of the engine functions that make the stages."""
    from napari_s2vnet.inference.prepared import FeatureCache, PreparedImage, prepare_image, slice_scores
    from napari_s2vnet.model.cluster_decoder import ClusterDecoder
    from napari_s2vnet.model.s2vnet import S2VNet

    named = {prepare_image: "preprocess", FeatureCache.compute: "encoder", ClusterDecoder.forward: "cluster decoder",
             S2VNet.next_init: "propagation", slice_scores: "per-class probabilities",
             PreparedImage.labels_on_input: "scores to the input grid + argmax"}
    out = {}
    for fn, stage in named.items():
        code = getattr(fn, "__wrapped__", fn).__code__
        out[(code.co_filename, code.co_firstlineno)] = stage
    return out


def profile_auto(predictor, image: np.ndarray, spacing, modality: str, top: int = 12) -> dict[str, Any]:
    """Time one automatic segmentation of ``image`` ``(Z, Y, X)``, plainly and under cProfile.

    -> ``total_s`` (plain run), ``profiled_s``, ``stages_s`` and ``stages_ms_per_slice`` (cumulative,
    under the profiler), ``calls`` per stage, the grid sizes and the ``top`` functions by self time.
    """
    from napari_s2vnet.inference.prepared import padded_hw
    from napari_s2vnet.data.preprocess import target_hw

    predictor.segment_internal(image[: min(8, len(image))], spacing, modality)  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    predictor.segment_internal(image, spacing, modality)
    plain = time.perf_counter() - t0
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    predictor.segment_internal(image, spacing, modality)
    prof.disable()
    profiled = time.perf_counter() - t0
    stages, calls = _stages(), {}
    found: dict[str, float] = {}
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        stage = stages.get((file, line))
        if stage is not None:
            found[stage] = found.get(stage, 0.0) + ct
            calls[stage] = calls.get(stage, 0) + nc
        rows.append((tt, func, Path(file).name))
    found["other"] = max(0.0, profiled - sum(found.values()))
    rows.sort(reverse=True)
    z = int(image.shape[0])
    hw = target_hw(image.shape[1:], tuple(spacing[1:]), predictor.config.pixel_spacing_mm)
    return {"total_s": plain, "profiled_s": profiled, "slices": z, "input_yx": [int(s) for s in image.shape[1:]],
            "network_hw": list(padded_hw(hw)), "stages_s": found,
            "stages_ms_per_slice": {k: 1000 * v / z for k, v in found.items()}, "calls": calls,
            "top_self_time": [{"function": f"{n}:{f}", "self_s": t} for t, f, n in rows[:top]]}
