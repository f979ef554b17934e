"""CLICKS.json for ``napari-s2vnet segment --clicks``.

Format::

    {"clicks": [{"world": [x, y, z], "label": 5, "positive": true},
                {"voxel": [i, j, k], "label": 5, "positive": false, "round": 1}]}

``world`` is RAS millimetres (nibabel/NIfTI scanner convention) and works for every input kind;
``voxel`` indexes the input array as the reader returns it (file order). ``positive`` defaults to
true, ``round`` (optional, default 0) groups clicks into refinement rounds applied in order. Each
problem is reported as an :class:`InputError` naming the click.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_s2vnet.data.geometry import Geometry
from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.state import Click


def _describe(i: int, item: object) -> str:
    return f"click #{i} {json.dumps(item)}"


def parse_clicks(data: object, geometry: Geometry) -> list[tuple[int, Click]]:
    """-> ``[(round, Click in internal order), ...]`` sorted by round (stable)."""
    if not isinstance(data, dict) or not isinstance(data.get("clicks"), list):
        raise InputError('clicks file must be a JSON object {"clicks": [...]}')
    shape = np.array(geometry.shape)
    out: list[tuple[int, Click]] = []
    for i, item in enumerate(data["clicks"]):
        what = _describe(i, item)
        if not isinstance(item, dict):
            raise InputError(f"{what}: expected an object with 'world' or 'voxel', 'label'")
        label = item.get("label")
        if not isinstance(label, int) or isinstance(label, bool) or label <= 0:
            raise InputError(f"{what}: label must be a positive integer")
        if ("world" in item) == ("voxel" in item):
            raise InputError(f"{what}: give exactly one of 'world' (RAS mm) or 'voxel' (array indices)")
        coords = item.get("world", item.get("voxel"))
        if not (isinstance(coords, list) and len(coords) == 3 and all(isinstance(c, (int, float)) for c in coords)):
            raise InputError(f"{what}: coordinates must be a list of 3 numbers")
        ijk = geometry.world_to_file(np.array(coords, float)) if "world" in item else np.array(coords, float)
        idx = np.rint(ijk).astype(int)
        if np.any(idx < 0) or np.any(idx >= shape):
            raise InputError(f"{what}: outside the volume (voxel {idx.tolist()}, shape {shape.tolist()})")
        positive = item.get("positive", True)
        if not isinstance(positive, bool):
            raise InputError(f"{what}: 'positive' must be true or false")
        rnd = item.get("round", 0)
        if not isinstance(rnd, int):
            raise InputError(f"{what}: 'round' must be an integer")
        z, y, x = geometry.file_to_internal_index(idx)
        out.append((rnd, Click(z, y, x, label, positive)))
    return sorted(out, key=lambda item: item[0])


def read_clicks(path: str | Path, geometry: Geometry) -> list[tuple[int, Click]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"clicks file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"clicks file {path} is not valid JSON: {exc}") from None
    return parse_clicks(data, geometry)


def rounds_of(clicks: list[tuple[int, Click]]) -> list[list[Click]]:
    groups: dict[int, list[Click]] = {}
    for rnd, click in clicks:
        groups.setdefault(rnd, []).append(click)
    return [groups[k] for k in sorted(groups)]
