"""``benchmark.json`` (headline keys + every section), ``benchmark.md`` (tables) and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

UNITS = {
    "speedup_vs_3d": "ratio: baseline in-process median time / ours (min over 3D baselines and volumes)",
    "speedup_vs_3d_whole_process": "ratio: baseline whole-process median wall time / ours (min over baselines and volumes)",
    "memory_ratio_vs_3d": "ratio: our whole-process peak RSS / baseline's (max over 3D baselines and volumes)",
    "memory_ratio_vs_3d_inprocess": "ratio: our in-process RSS increase / baseline's (max over baselines and volumes)",
    "memory_ratio_vs_3d_cuda": "ratio: our peak CUDA memory / baseline's (max; null on CPU)",
    "click_latency_ms_p95": "milliseconds, click -> updated current slice, features cached, 95th percentile "
                            "(the latency volume with the largest p95: latency_case; all under latency_by_case)",
    "click_latency_ms_p50": "milliseconds, same volume, median",
    "propagate_volume_s": "seconds, click -> whole volume propagated (median), same volume",
    "feature_cache_ms_per_slice": "milliseconds per slice to build the feature cache",
    "dice_auto": "Dice in [0, 1], mean over the classes present in the reference, per model and case",
    "dice_interactive": "Dice in [0, 1] after k simulated clicks (keys '1'..'k'), mean over (case, class), per method",
    "noc": "clicks to reach Dice 0.85 / 0.90 (max_clicks + 1 when not reached), mean over (case, class)",
    "dice_ablations": "Dice in [0, 1] per equal-budget variant of our model: automatic (held-out phantoms mean, "
                      "bundled CT) and interactive after k clicks (pooled over the curve cases)",
}


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.{nd}f}"
    return str(v)


def headline(sections: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in ("speedup_vs_3d", "speedup_vs_3d_whole_process", "memory_ratio_vs_3d",
                                             "memory_ratio_vs_3d_inprocess", "memory_ratio_vs_3d_cuda",
                                             "click_latency_ms_p95", "click_latency_ms_p50", "propagate_volume_s",
                                             "feature_cache_ms_per_slice", "dice_auto", "dice_interactive", "noc",
                                             "dice_ablations")}
    speed = sections.get("speed")
    if speed:
        ratios: dict[str, list[float]] = {}
        by_volume = {}
        for vol, res in speed["volumes"].items():
            by_volume[vol] = res.get("compare", {})
            for cmp in res.get("compare", {}).values():
                for key, val in cmp.items():
                    if val is not None:
                        ratios.setdefault(key, []).append(val)
        pick = {"speedup_vs_3d": ("speedup_inprocess", min), "speedup_vs_3d_whole_process": ("speedup_whole_process", min),
                "memory_ratio_vs_3d": ("memory_ratio_process_peak", max),
                "memory_ratio_vs_3d_inprocess": ("memory_ratio_inprocess_delta", max),
                "memory_ratio_vs_3d_cuda": ("memory_ratio_cuda_peak", max)}
        for key, (src, fn) in pick.items():
            out[key] = fn(ratios[src]) if ratios.get(src) else None
        out["speed_by_volume"] = by_volume
    lat = sections.get("latency")
    if lat:  # the worst volume (largest p95), the others under *_by_case
        cases = lat["cases"]
        worst = max(cases, key=lambda c: cases[c]["click_ms_p95"])
        w = cases[worst]
        out.update(click_latency_ms_p95=w["click_ms_p95"], click_latency_ms_p50=w["click_ms_p50"],
                   propagate_volume_s=w["propagate_volume_s"], feature_cache_ms_per_slice=w["feature_cache_ms_per_slice"],
                   latency_case=worst,
                   latency_by_case={c: {k: r[k] for k in ("click_ms_p50", "click_ms_p95", "propagate_volume_s",
                                                          "feature_cache_ms_per_slice")} for c, r in cases.items()})
    acc = sections.get("accuracy")
    if acc:
        out["dice_auto"] = {m: {k: (v["mean"] if isinstance(v, dict) else v) for k, v in r["auto"].items()}
                            for m, r in acc["models"].items()}
    inter = sections.get("interactive")
    if inter:
        out["dice_interactive"] = {m: r["pooled"].get("mean_dice_by_clicks") for m, r in inter["methods"].items()}
        out["noc"] = {m: {k: r["pooled"].get(k) for k in ("noc85", "noc90", "noc85_failures", "noc90_failures")}
                      for m, r in inter["methods"].items()}
    ab = (sections.get("ablations") or {}).get("variants")
    if ab:
        out["dice_ablations"] = {
            name: {"auto_phantoms_heldout": r["auto"].get("phantoms_heldout_mean"),
                   "auto_ct_bundled": (r["auto"].get("ct_bundled") or {}).get("mean"),
                   "interactive_by_clicks": (r.get("interactive") or {}).get("mean_dice_by_clicks")}
            for name, r in ab.items()}
    return out


def goals(head: dict[str, Any], sections: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for vol, cmp in (head.get("speed_by_volume") or {}).items():
        for base, r in cmp.items():
            s, m = r.get("speedup_inprocess"), r.get("memory_ratio_process_peak")
            rows.append({"goal": f">= 15x faster than {base} ({vol}, in-process)", "value": s,
                         "met": None if s is None else s >= 15,
                         "gap": None if s is None or s >= 15 else f"{15 / s:.1f}x too slow (reached {s:.1f}x)"})
            rows.append({"goal": f"<= 0.5x the peak memory of {base} ({vol}, whole process)", "value": m,
                         "met": None if m is None else m <= 0.5,
                         "gap": None if m is None or m <= 0.5 else f"{m / 0.5:.2f}x over the target (ratio {m:.2f})"})
    for case, r in (head.get("latency_by_case") or {}).items():
        p95 = r["click_ms_p95"]
        rows.append({"goal": f"click -> slice <= 50 ms p95 ({case})", "value": p95, "met": p95 <= 50,
                     "gap": None if p95 <= 50 else f"{p95 - 50:.0f} ms over ({p95 / 50:.1f}x)"})
    dice = head.get("dice_auto") or {}
    base = dice.get("dynunet")
    for ours in [m for m in dice if m.startswith("s2vnet") and m in ("s2vnet", "s2vnet_full")]:
        if not base:
            continue
        for case in ("phantoms_heldout_mean", "ct_bundled"):
            a, b = dice[ours].get(case), base.get(case)
            if a is None or b is None:
                continue
            rows.append({"goal": f"Dice {ours} >= dynunet ({case})", "value": a - b, "met": a >= b,
                         "gap": None if a >= b else f"{b - a:.3f} Dice below"})
    return rows


def write_json(path: Path, meta: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    head = headline(sections)
    doc = {**head, "units": UNITS, "goals": goals(head, sections), "meta": meta, "sections": sections}
    path.write_text(json.dumps(doc, indent=1, default=_json_default))
    return doc


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


# ---------------------------------------------------------------------------------------- markdown
def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _mmm(s: dict | None, nd: int = 2) -> str:
    if not s:
        return "n/a"
    return f"{s['median']:.{nd}f} ({s['min']:.{nd}f}–{s['max']:.{nd}f})"


def _profile_lines(profiles: dict[str, Any]) -> list[str]:
    """One table per volume: stage, cumulative s and ms per slice under cProfile (``benchmark/profile.py``)."""
    out: list[str] = []
    for vol, prof in profiles.items():
        per = prof.get("stages_ms_per_slice", {})
        grid = f", {prof['slices']} slices of {prof['input_yx']}, network {prof['network_hw']}" if "slices" in prof else ""
        out += [f"Where our time goes on {vol} (cProfile{grid}; {prof['total_s']:.2f} s plain, "
                f"{prof.get('profiled_s', prof['total_s']):.2f} s profiled):", ""]
        out += _table(["stage", "cumulative s", "ms per slice"],
                      sorted(([k, v, per.get(k)] for k, v in prof["stages_s"].items()), key=lambda r: -r[1]))
    return out


def write_markdown(path: Path, doc: dict[str, Any], plots: list[str]) -> None:
    meta, sec = doc["meta"], doc["sections"]
    m = meta.get("machine", {})
    out = ["# napari-s2vnet benchmark", "", f"Command: `{meta.get('command')}`", "",
           f"Run {meta.get('started_utc')} → {meta.get('finished_utc')} UTC, mode: {'quick' if meta.get('quick') else 'full'}.", "",
           f"Machine: {m.get('cpu')}, {m.get('cores')} logical cores, {_fmt(m.get('ram_gb'), 1)} GB RAM, "
           f"device **{m.get('device')}**{' (' + m['gpu'] + ')' if m.get('gpu') else ''}, {meta.get('threads')} torch threads for every method.", "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()), "",
           f"Our model: `{meta.get('model_id')}`.", ""]
    for note in meta.get("notes", []):
        out.append(f"* {note}")
    out.append("")
    prov = meta.get("section_provenance") or {}
    if prov:
        out += ["Sections in this report and the runs that produced them:", ""]
        out += _table(["section", "finished (UTC)", "minutes", "threads", "git", "command"],
                      [[k, v.get("finished_utc"), (v.get("seconds") or 0) / 60, v.get("threads"), v.get("git"),
                        f"`{v.get('command')}`"] for k, v in prov.items()])
    out += ["## Headline", ""]
    out += _table(["key", "value", "unit"], [[k, doc.get(k) if not isinstance(doc.get(k), dict) else "see below", UNITS[k]]
                                            for k in UNITS if not isinstance(doc.get(k), dict)])
    if doc.get("goals"):
        out += ["## Goals (reported, not asserted)", ""]
        out += _table(["goal", "value", "met", "shortfall"],
                      [[g["goal"], g["value"], {True: "yes", False: "**no**", None: "n/a"}[g["met"]], g["gap"] or ""] for g in doc["goals"]])
    if "speed" in sec:
        s = sec["speed"]
        out += ["## 1. Speed and memory (automatic segmentation)", "",
                f"Each cell: median (min–max) over {s['repeats_text']}. In-process = the segmentation call only "
                "(preprocessing, network, labels back on the input grid); whole process = spawn to exit "
                "(interpreter, imports, model and volume loading included). Peak RSS = the process's kernel "
                "high-water mark; ΔRSS = increase during the segmentation call.", ""]
        for vol, res in s["volumes"].items():
            reps = ", ".join(f"{m} ×{n}" for m, n in res.get("repeats", {}).items())
            out += [f"### {vol}: {res['description']}", "", f"Runs (fresh processes): {reps}.", "",
                    f"3D baselines work at {tuple(res.get('baseline_spacing_zyx_mm', []))} mm (z, y, x); "
                    f"our model keeps the slices and works at its in-plane spacing.", ""]
            rows = []
            for meth, r in res["methods"].items():
                su = r["summary"]
                rows.append([meth, r.get("model_id"), _mmm(su["inprocess_s"]), _mmm(su["process_wall_s"]),
                             _mmm(su["process_peak_rss_mb"], 0), _mmm(su["rss_delta_mb"], 0), _mmm(su.get("cuda_peak_mb"), 0)])
            out += _table(["method", "model", "in-process s", "whole process s", "peak RSS MB", "ΔRSS MB", "peak CUDA MB"], rows)
            cmp_rows = [[b, c["speedup_inprocess"], c["speedup_whole_process"], c["memory_ratio_process_peak"],
                         c["memory_ratio_inprocess_delta"]] for b, c in res.get("compare", {}).items()]
            if cmp_rows:
                out += _table(["vs", "speed-up (in-process)", "speed-up (whole process)", "our/their peak RSS",
                               "our/their ΔRSS"], cmp_rows)
        if s.get("busy"):
            b = s["busy"]
            out += [f"Busy machine: ours on {b['volume']} beside one busy process ({b['cores']} cores):", ""]
            out += _table(["torch threads", "in-process s", "whole process s"],
                          [[n, _mmm(r["summary"]["inprocess_s"]), _mmm(r["summary"]["process_wall_s"])]
                           for n, r in b["threads"].items()])
        out += _profile_lines(s.get("profile", {}))
    if "profile" in sec:
        out += ["## Profile of our automatic segmentation", ""] + _profile_lines(sec["profile"]["profile"])
    if "latency" in sec:
        out += ["## 2. Interactive latency (features cached)", ""]
        rows = [[case, r["shape"], r["feature_cache_ms_per_slice"], r["feature_cache_mb"], r["click_ms_p50"], r["click_ms_p95"],
                 r["click_ms_max"], r["cold_click_ms"], r["propagate_volume_s"], r.get("propagate_volume_s_p95"),
                 r.get("propagate_slices_median"), r["propagate_ms_per_slice"]]
                for case, r in sec["latency"]["cases"].items()]
        out += _table(["case", "shape (Z,Y,X)", "feature cache ms/slice", "cache MB", "click→slice p50 ms", "p95 ms",
                       "max ms", "first click, no cache, ms", "click→volume s (median)", "click→volume p95 s",
                       "slices written (median)", "propagation ms/slice"], rows)
        for case, r in sec["latency"]["cases"].items():
            if r.get("click_profile"):
                out += [f"Where a click's time goes ({case}, cProfile, per click):", ""]
                out += _table(["function", "self ms", "cumulative ms"],
                              [[p["function"], p["self_ms_per_click"], p["cum_ms_per_click"]] for p in r["click_profile"][:8]])
    if "accuracy" in sec:
        a = sec["accuracy"]
        out += ["## 3. Automatic segmentation accuracy", ""]
        for name, r in a["models"].items():
            out.append(f"* **{name}**: {r['data']}")
        out.append("")
        cases = sorted({c for r in a["models"].values() for c in r["auto"] if c != "phantoms_heldout_mean"})
        rows = [[name] + [r["auto"].get(c, {}).get("mean") for c in cases] + [r["auto"].get("phantoms_heldout_mean")]
                for name, r in a["models"].items()]
        out += _table(["model"] + [f"{c} mean Dice" for c in cases] + ["held-out phantoms mean"], rows)
    if "interactive" in sec:
        it = sec["interactive"]
        k = it["max_clicks"]
        out += ["## 4. Interactive: Dice after k simulated clicks per class", "",
                "First click at the deepest point of the class, then the deepest point of the largest 3D error "
                "region; each click is one round followed by propagation through the volume.", ""]
        shown = min(k, 5)
        out += [f"Scores of the CVPR 2025 interactive challenge protocol (Dice after clicks 1-{shown}, DSC_AUC: "
                f"area under Dice over those {shown} steps / {shown - 1}), NoC within {k} clicks, and the share of "
                "click steps in which Dice did not drop by more than 0.01.", ""]
        rows = []
        for meth, r in it["methods"].items():
            for case, c in list(r["cases"].items()) + [("pooled", r["pooled"])]:
                d = c.get("mean_dice_by_clicks", {})
                rows.append([meth, case, c.get("n_classes")] + [d.get(str(i)) for i in range(1, shown + 1)]
                            + [c.get("dsc_auc"), c.get("noc85"), c.get("noc90"), c.get("no_drop_fraction"),
                               c.get("round_s_median")])
        out += _table(["method", "case", "classes"] + [f"Dice@{i}" for i in range(1, shown + 1)]
                      + ["DSC_AUC", f"NoC@85 (≤{k})", f"NoC@90 (≤{k})", "no-drop steps", "s per round"], rows)
        box = it["methods"].get("s2vnet_box", {}).get("pooled", {})
        if "dice_box" in box:
            out += [f"s2vnet_box is the challenge's box + clicks protocol: a 2-D box first (the class's bounding box "
                        f"on its largest slice), propagated, then the same clicks; its Dice@k is box + k clicks. "
                        f"Dice after the box alone (pooled): {box['dice_box']:.3f}.", ""]
    if "training" in sec:
        t = sec["training"]
        together = t.get("parallel", 1)
        load = t.get("load_avg_1min") or {}
        out += ["## 5. Equal-budget trainings", "",
                f"Budget {t['budget_s'] / 60:.1f} min of wall clock each, {t['threads']} torch thread(s) each, "
                + (f"{together} trainings at a time" if together > 1 else "one after the other")
                + "; every schedule is driven by elapsed time and ends at the budget"
                + (f". 1-minute load average while training: median {load['median']:.2f}, max {load['max']:.2f} "
                   f"({load['samples']} samples)" if load.get("samples") else "") + ".", ""]
        out += _table(["model", "steps / iterations", "training s", "process s"],
                      [[n + (" (earlier run)" if r.get("earlier_run") else ""), r.get("steps", r.get("iterations")),
                        r["train_seconds"], r["process_seconds"]] for n, r in t["models"].items()])
    if "ablations" in sec:
        ab = sec["ablations"]
        k = ab["max_clicks"]
        out += ["## 5b. Ablations (each trained with the same budget)", "",
                f"Automatic Dice on {', '.join(ab.get('auto_cases', []))}; click Dice pooled over the classes of "
                f"{', '.join(ab.get('curve_cases', []))}.", ""]
        if ab.get("note"):
            out += [ab["note"], ""]
        rows = []
        for name, r in ab["variants"].items():
            inter = r.get("interactive") or {}
            d = inter.get("mean_dice_by_clicks", {})
            rows.append([name, r.get("description"), r.get("steps"), r["auto"].get("phantoms_heldout_mean"),
                         (r["auto"].get("ct_bundled") or {}).get("mean")]
                        + [d.get(str(i)) for i in range(1, k + 1)] + [inter.get("noc85"), inter.get("noc90")])
        if rows:
            out += _table(["variant", "what changes", "steps", "auto Dice held-out phantoms", "auto Dice CT (train)"]
                          + [f"click Dice@{i}" for i in range(1, k + 1)] + ["NoC@85", "NoC@90"], rows)
    if "review" in sec:
        rv = sec["review"]
        pct = f"{rv['top_fraction']:.0%}"
        out += ["## 6. Review guidance: wrong voxels on the most doubtful slices", "",
                f"Share of all wrong voxels on the top {pct} of slices ranked by `Session.slice_doubt()`, by "
                "labelled area, and by the error itself (oracle); random order finds the share of slices "
                "(`benchmark/review.py`).", ""]
        rows = [[case, scen, r["slices"], r["top_slices"], r["wrong_voxels"], r["doubt"], r["random"], r["area"],
                 r["oracle"]] for case, c in rv["cases"].items() for scen, r in c.items()]
        out += _table(["case", "scenario", "slices", "top slices", "wrong voxels", "by doubt", "random", "by area",
                       "oracle"], rows)
    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    path.write_text("\n".join(out))


# ---------------------------------------------------------------------------------------- plots
def write_plots(out_dir: Path, sections: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    if "speed" in sections:
        vols = sections["speed"]["volumes"]
        fig, axes = plt.subplots(2, len(vols), figsize=(5 * len(vols), 7), squeeze=False)
        for j, (vol, res) in enumerate(vols.items()):
            for i, (key, label) in enumerate((("inprocess_s", "in-process time (s)"), ("process_peak_rss_mb", "peak RSS (MB)"))):
                ax = axes[i, j]
                names = list(res["methods"])
                med = [res["methods"][n]["summary"][key]["median"] for n in names]
                lo = [med[k] - res["methods"][n]["summary"][key]["min"] for k, n in enumerate(names)]
                hi = [res["methods"][n]["summary"][key]["max"] - med[k] for k, n in enumerate(names)]
                ax.bar(names, med, yerr=[lo, hi], color=["C0"] + ["C1"] * (len(names) - 1), capsize=4)
                if i == 0:
                    ax.set_yscale("log")
                ax.set_title(f"{vol}: {label}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / "speed.png", dpi=110)
        plt.close(fig)
        made.append("speed.png")
    if "latency" in sections:
        cases = sections["latency"]["cases"]
        fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.5), squeeze=False)
        for ax, (case, r) in zip(axes[0], cases.items()):
            ax.hist(r["click_ms"], bins=20, color="C0")
            for q, style in (("click_ms_p50", "--"), ("click_ms_p95", ":")):
                ax.axvline(r[q], color="k", linestyle=style, label=f"{q[-3:]} {r[q]:.1f} ms")
            ax.axvline(50, color="r", label="goal 50 ms")
            ax.set_xlabel("click → slice (ms)")
            ax.set_title(case, fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=110)
        plt.close(fig)
        made.append("latency.png")
    if "interactive" in sections:
        it = sections["interactive"]
        methods = it["methods"]
        cases = list(next(iter(methods.values()))["cases"]) + ["pooled"]
        fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.5), squeeze=False)
        ks = list(range(1, it["max_clicks"] + 1))
        for ax, case in zip(axes[0], cases):
            for meth, r in methods.items():
                c = r["pooled"] if case == "pooled" else r["cases"].get(case, {})
                d = c.get("mean_dice_by_clicks")
                if d:
                    ax.plot(ks, [d[str(k)] for k in ks], marker="o", label=meth)
            ax.set_ylim(0, 1)
            ax.set_xticks(ks)
            ax.set_xlabel("clicks per class")
            ax.set_ylabel("Dice")
            ax.set_title(case, fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "interactive.png", dpi=110)
        plt.close(fig)
        made.append("interactive.png")
    if sections.get("ablations", {}).get("variants"):
        ab = sections["ablations"]["variants"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        names = list(ab)
        auto = [ab[n]["auto"].get("phantoms_heldout_mean") or 0 for n in names]
        k = sections["ablations"]["max_clicks"]
        inter = [((ab[n].get("interactive") or {}).get("mean_dice_by_clicks") or {}).get(str(k)) or 0 for n in names]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], auto, 0.4, label="auto Dice (held-out phantoms)")
        ax.bar([i + 0.2 for i in x], inter, 0.4, label=f"Dice@{k} clicks")
        ax.set_xticks(list(x), names, rotation=20, fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "ablations.png", dpi=110)
        plt.close(fig)
        made.append("ablations.png")
    return made
