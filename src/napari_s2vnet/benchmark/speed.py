"""Speed and memory of automatic segmentation: S2VNet vs the 3D baselines, one process per measurement.

Every measurement runs in a fresh ``python -m napari_s2vnet.benchmark.speed '<spec>'`` process with
the same thread count (``torch.set_num_threads`` plus ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``), so:

* **whole process**: wall time from spawn to exit (interpreter start, imports, model load, volume
  load, segmentation, exit) and the process's peak RSS (the kernel's high-water mark ``VmHWM`` of the
  worker's own address space, read by the worker before it exits; ``ru_maxrss`` from ``os.wait4`` is
  kept as ``ru_maxrss_mb`` but not used, since Linux carries the parent's size over into it);
* **in process**: wall time of the segmentation call alone (volume already in memory, model
  loaded: preprocessing + network + mapping back to the input grid), the peak RSS during that
  call (sampled from ``/proc/self/statm`` every 2 ms by a thread) and, on CUDA, the peak allocated
  CUDA memory.

Volumes are given as ``{"kind": "sample", "name": "ct"}`` (the bundled CT read with ``read_volume``)
or ``{"kind": "npy", "path": ..., "spacing": [sz, sy, sx], "modality": "CT"}`` (an internal-order
array saved by :func:`make_synthetic`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "S2VNET_BENCH_RESULT "
MB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------- volumes
def make_synthetic(path: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                   seed: int = 4242) -> dict[str, Any]:
    """Render a phantom of ``shape`` (internal order) once and save it as int16 HU ``.npy``
    (labels beside it as ``*_labels.npy``); returns the volume spec for the workers."""
    path = Path(path)
    labels_path = path.with_name(path.stem + "_labels.npy")
    if not (path.exists() and labels_path.exists()):
        from napari_s2vnet.data.phantom import make_phantom

        path.parent.mkdir(parents=True, exist_ok=True)
        ph = make_phantom(seed, shape=tuple(shape), spacing=tuple(spacing))
        np.save(path, np.clip(np.rint(ph.image), -1024, 3071).astype(np.int16))
        np.save(labels_path, ph.labels)
        del ph
    return {"kind": "npy", "path": str(path), "labels": str(labels_path), "spacing": [float(s) for s in spacing],
            "modality": "CT", "shape": [int(s) for s in shape], "seed": seed}


def load_volume(spec: dict[str, Any]) -> tuple[np.ndarray, tuple[float, float, float], str]:
    """-> internal-order image, spacing (z, y, x) mm, modality."""
    if spec["kind"] == "sample":
        from napari_s2vnet.data.io import read_volume
        from napari_s2vnet.data.samples import sample_path

        vol = read_volume(sample_path(spec["name"]))
        g = vol.geometry
        return g.to_internal(vol.array), tuple(g.internal_spacing), vol.modality or "CT"
    if spec["kind"] == "npy":
        return np.load(spec["path"]), tuple(spec["spacing"]), spec.get("modality", "CT")
    raise ValueError(f"unknown volume kind {spec['kind']!r}")


# ---------------------------------------------------------------------------------------- memory
def current_rss() -> int:
    """Resident set size of this process in bytes (``/proc``; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def peak_rss_self() -> int | None:
    """High-water mark of this process's own memory (``VmHWM``, bytes; Linux), None elsewhere.

    Unlike ``ru_maxrss`` of a child (``wait4``), which Linux carries over from the parent at
    fork/exec (a worker spawned by a 3 GB parent reports at least 3 GB), ``VmHWM`` belongs to the
    address space created by ``exec``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class RssSampler:
    """Peak RSS of this process while the ``with`` block runs (a sampling thread, every 2 ms)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start = self.peak = current_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())


# ---------------------------------------------------------------------------------------- worker
def _setup_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def _segmenter(spec: dict[str, Any]):
    """Load the method's model; -> ``fn(image, spacing, modality) -> labels`` and info."""
    import torch

    device = spec.get("device", "cpu")
    method = spec["method"]
    if method == "s2vnet":
        from napari_s2vnet.inference.predictor import Predictor

        weights = spec.get("weights")
        if weights in (None, "", "random"):
            from napari_s2vnet.model.config import preset
            from napari_s2vnet.model.s2vnet import S2VNet

            torch.manual_seed(0)
            names = {int(k): v for k, v in spec["class_names"].items()}
            predictor = Predictor(S2VNet(preset(spec.get("preset", "tiny"), names)), device, "random")
        else:
            predictor = Predictor.from_file(weights, device)
        return (lambda img, sp, mod: predictor.segment_internal(img, sp, mod)), {"model_id": predictor.model_id}
    from napari_s2vnet.benchmark import baselines3d

    model, info = baselines3d.load_or_build(spec)
    model = model.to(device).eval()
    opts = spec["baseline"]
    ids = np.asarray([0] + list(info["class_ids"]), dtype=np.uint16)

    def run(img, sp, mod):
        return baselines3d.segment(model, img, sp, mod, ids, roi=tuple(opts["roi"]), overlap=opts["overlap"],
                                   sw_batch=opts["sw_batch"], target_spacing=tuple(opts["target_spacing"]),
                                   device=device)

    return run, {"model_id": info.get("model_id", method), "params_m": info.get("params_m")}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    _setup_threads(int(spec.get("threads", 0)))
    import torch

    t_import = time.perf_counter()
    fn, info = _segmenter(spec)
    t_model = time.perf_counter()
    image, spacing, modality = load_volume(spec["volume"])
    t_volume = time.perf_counter()
    cuda = str(spec.get("device", "cpu")).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        labels = fn(image, spacing, modality)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    hwm = peak_rss_self()
    return {
        "vm_hwm_mb": None if hwm is None else hwm / MB,
        "inprocess_s": seconds,
        "rss_before_mb": rss.start / MB,
        "rss_peak_mb": rss.peak / MB,
        "rss_delta_mb": (rss.peak - rss.start) / MB,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / MB if cuda else None,
        "import_s": t_import - t_start,
        "model_load_s": t_model - t_import,
        "volume_load_s": t_volume - t_model,
        "labels_shape": list(labels.shape),
        "labels_nonzero": int(np.count_nonzero(labels)),
        "torch_threads": torch.get_num_threads(),
        **info,
    }


# ---------------------------------------------------------------------------------------- harness
def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if threads > 0:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[key] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_once(spec: dict[str, Any], timeout_s: float = 3600.0) -> dict[str, Any]:
    """One measurement in a fresh process: its in-process record plus whole-process numbers."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "napari_s2vnet.benchmark.speed", json.dumps(spec)],
                                stdout=out, stderr=subprocess.STDOUT, env=_env(int(spec.get("threads", 0))))
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                peak = usage.ru_maxrss / MB if sys.platform == "darwin" else usage.ru_maxrss / 1024.0
                cpu = usage.ru_utime + usage.ru_stime
            else:  # pragma: no cover - Windows
                proc.wait()
                peak, cpu = None, None
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    lines = [ln for ln in text.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"benchmark worker {spec['method']} failed (exit {proc.returncode}):\n{tail}")
    record = json.loads(lines[-1][len(MARKER):])
    # whole-process peak: the worker's own VmHWM where available (ru_maxrss inherits the parent's size)
    record.update({"process_wall_s": wall, "ru_maxrss_mb": peak, "process_cpu_s": cpu,
                   "process_peak_rss_mb": record.get("vm_hwm_mb") or peak})
    return record


def stats(values: list[float | None]) -> dict[str, float | None] | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


SUMMARY_KEYS = ("inprocess_s", "process_wall_s", "process_peak_rss_mb", "rss_peak_mb", "rss_delta_mb",
                "cuda_peak_mb", "process_cpu_s", "import_s", "model_load_s", "volume_load_s")


def measure(spec: dict[str, Any], repeats: int, timeout_s: float = 3600.0, log=print) -> dict[str, Any]:
    runs = []
    for i in range(repeats):
        rec = run_once(spec, timeout_s)
        log(f"  {spec['method']:>10s} {spec['volume'].get('name', Path(spec['volume'].get('path', '?')).stem)}"
            f" run {i + 1}/{repeats}: {rec['inprocess_s']:.2f} s in process, {rec['process_wall_s']:.2f} s whole,"
            f" peak RSS {rec['process_peak_rss_mb']:.0f} MB")
        runs.append(rec)
    summary = {k: stats([r.get(k) for r in runs]) for k in SUMMARY_KEYS}
    keep = {k: runs[0].get(k) for k in ("model_id", "params_m", "labels_shape", "torch_threads")}
    return {"runs": runs, "summary": summary, **keep}


class BusyCore:
    """One other busy process for the ``with`` block (a Python spin loop: one core taken, as by a
    training or a second user's job), so the "busy machine" row sees what a user on a shared machine sees."""

    def __enter__(self) -> BusyCore:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it take its core
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


def measure_busy(spec: dict[str, Any], thread_counts: list[int], repeats: int, timeout_s: float = 3600.0,
                 log=print) -> dict[str, Any]:
    """Our automatic segmentation beside one busy process, for each torch thread count (e.g. all
    cores, as torch's default, and one fewer, as ``segment``'s default picks from the load average)."""
    out: dict[str, Any] = {}
    with BusyCore():
        for n in thread_counts:
            out[str(n)] = measure({**spec, "threads": n}, repeats, timeout_s, log)
    return out


def compare(results: dict[str, dict[str, Any]], ours: str = "s2vnet") -> dict[str, Any]:
    """Ratios of one volume: baseline median time ÷ ours, our peak memory ÷ baseline's."""
    me = results.get(ours)
    out: dict[str, Any] = {}
    if me is None:
        return out
    for name, res in results.items():
        if name == ours:
            continue
        s, m = res["summary"], me["summary"]

        def ratio(a, b):
            return None if not a or not b or not b["median"] else a["median"] / b["median"]

        out[name] = {
            "speedup_inprocess": ratio(s["inprocess_s"], m["inprocess_s"]),
            "speedup_whole_process": ratio(s["process_wall_s"], m["process_wall_s"]),
            "memory_ratio_process_peak": ratio(m["process_peak_rss_mb"], s["process_peak_rss_mb"]),
            "memory_ratio_inprocess_delta": ratio(m["rss_delta_mb"], s["rss_delta_mb"]),
            "memory_ratio_cuda_peak": ratio(m["cuda_peak_mb"], s["cuda_peak_mb"]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    record = worker(spec)
    print(MARKER + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    raise SystemExit(main())
