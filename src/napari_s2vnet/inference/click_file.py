"""CLICKS.json for ``napari-s2vnet segment --clicks``.

Format::

    {"clicks": [{"world": [x, y, z], "label": 5, "positive": true},
                {"voxel": [i, j, k], "label": 5, "positive": false, "round": 1}]}

``world`` is RAS millimetres (nibabel/NIfTI scanner convention) and works for every input kind;
``voxel`` indexes the input array as the reader returns it (file order). ``label`` is a positive
integer id or one of the model's class names (``"liver"``: case-insensitive, becomes the model's id).
A **scribble** (a stroke on one axial slice) is an entry
``{"scribble": {"world"|"voxel": [[..], [..], ...]}, "label": 5, "positive": true}``: its vertices,
in either system, must lie on one internal slice; the stroke becomes at most
``prompts.SCRIBBLE_POINTS`` clicks of its sign, evenly spaced along it (``prompts.scribble_clicks``).
A **box** is an entry ``{"box": {"world"|"voxel": [[..], [..]]}, "label": 5}``: two opposite corners
on one internal slice; it stays a :class:`~napari_s2vnet.inference.prompts.Box` (the session chooses
its positive click from the image, ``Session.add_prompts``) and is always positive.
``positive`` defaults to true, ``round`` (optional, default 0) groups clicks into refinement rounds
applied in order. Each problem is reported as an :class:`InputError` naming the click; a click that
repeats an earlier one exactly is dropped with an :class:`InputWarning`, while two different clicks
on the same voxel in the same round are an error.
"""

from __future__ import annotations

import difflib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_s2vnet.data.geometry import Geometry
from napari_s2vnet.errors import InputError, InputWarning
from napari_s2vnet.inference.prompts import Box, Prompt, Scribble, scribble_clicks
from napari_s2vnet.inference.state import Click


def _describe(i: int, item: object) -> str:
    return f"click #{i} {json.dumps(item)}"


def _label_of(label: object, what: str, class_names: Mapping[int, str] | None) -> int:
    """A click's label: a positive integer, or a class name of the model (-> its id)."""
    if isinstance(label, str):
        by_name = {name.lower(): i for i, name in (class_names or {}).items()}
        key = label.strip().lower()
        if key in by_name:
            return by_name[key]
        if key.isdigit() and int(key) > 0:
            return int(key)
        close = difflib.get_close_matches(key, list(by_name), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise InputError(f"{what}: unknown class name {label!r}{hint}; use one of the model's class names "
                         "or a positive integer id")
    if not isinstance(label, int) or isinstance(label, bool) or label <= 0:
        raise InputError(f"{what}: label must be a positive integer or a class name of the model")
    return label


def _voxel(item: Mapping, what: str, geometry: Geometry) -> tuple[int, int, int]:
    """The internal ``(z, y, x)`` of a point given as ``{"world": [x, y, z]}`` or ``{"voxel": [i, j, k]}``."""
    if ("world" in item) == ("voxel" in item):
        raise InputError(f"{what}: give exactly one of 'world' (RAS mm) or 'voxel' (array indices)")
    coords = item.get("world", item.get("voxel"))
    if not (isinstance(coords, list) and len(coords) == 3
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in coords)):
        raise InputError(f"{what}: coordinates must be a list of 3 finite numbers")
    ijk = geometry.world_to_file(np.array(coords, float)) if "world" in item else np.array(coords, float)
    idx = np.rint(ijk).astype(int)
    shape = np.array(geometry.shape)
    if np.any(idx < 0) or np.any(idx >= shape):
        raise InputError(f"{what}: outside the volume (voxel {idx.tolist()}, shape {shape.tolist()})")
    return tuple(int(v) for v in geometry.file_to_internal_index(idx))


def _on_one_slice(item: Mapping, kind: str, what: str, geometry: Geometry, count: str) -> list[tuple[int, int, int]]:
    """The internal ``(z, y, x)`` of the points of a ``scribble`` / ``box`` entry, all on one axial slice."""
    shape = item[kind]
    key = next(iter(shape), None) if isinstance(shape, dict) and len(shape) == 1 else None
    n = len(shape[key]) if key in ("world", "voxel") and isinstance(shape[key], list) else 0
    if not n or (kind == "box" and n != 2):
        raise InputError(f"{what}: '{kind}' must be {{\"world\" or \"voxel\": [[..], [..]{', ...' if kind == 'scribble' else ''}]}} "
                         f"with {count}")
    points = [_voxel({key: c}, f"{what}, point #{j}", geometry) for j, c in enumerate(shape[key])]
    slices = sorted({z for z, _, _ in points})
    if len(slices) > 1:
        raise InputError(f"{what}: a {kind} must lie on one axial slice; its points are on slices {slices}")
    return points


def _scribble(item: Mapping, what: str, geometry: Geometry, label: int, positive: bool) -> list[Click]:
    points = _on_one_slice(item, "scribble", what, geometry, "at least one point")
    return scribble_clicks(Scribble(points[0][0], tuple((y, x) for _, y, x in points), label, positive))


def _box(item: Mapping, what: str, geometry: Geometry, label: int) -> Box:
    if item.get("positive", True) is not True:
        raise InputError(f"{what}: a box is always positive (it says where the object is); leave out 'positive'")
    (z, y0, x0), (_, y1, x1) = _on_one_slice(item, "box", what, geometry, "two opposite corners")
    if y0 == y1 or x0 == x1:
        raise InputError(f"{what}: the box's corners must differ in both in-plane directions (a box, not a line)")
    return Box(z, y0, x0, y1, x1, label).ordered()


def parse_clicks(data: object, geometry: Geometry,
                 class_names: Mapping[int, str] | None = None) -> list[tuple[int, Prompt]]:
    """-> ``[(round, Click or Box in internal order), ...]`` sorted by round (stable); ``[]`` when the
    file lists no clicks. ``class_names`` (``{id: name}``, the model's) resolve named labels."""
    if not isinstance(data, dict) or not isinstance(data.get("clicks"), list):
        raise InputError('clicks file must be a JSON object {"clicks": [...]}')
    out: list[tuple[int, Prompt]] = []
    seen: dict[tuple[int, int, int, int], tuple[int, Click]] = {}
    for i, item in enumerate(data["clicks"]):
        what = _describe(i, item)
        if not isinstance(item, dict):
            raise InputError(f"{what}: expected an object with 'world' or 'voxel', 'label'")
        label = _label_of(item.get("label"), what, class_names)
        positive = item.get("positive", True)
        if not isinstance(positive, bool):
            raise InputError(f"{what}: 'positive' must be true or false")
        rnd = item.get("round", 0)
        if not isinstance(rnd, int) or isinstance(rnd, bool):
            raise InputError(f"{what}: 'round' must be an integer")
        kinds = [k for k in ("scribble", "box") if k in item] + (["point"] if "world" in item or "voxel" in item else [])
        if len(kinds) > 1:
            raise InputError(f"{what}: give one of a point ('world' / 'voxel'), a 'scribble' or a 'box', not "
                             f"{' and '.join(kinds)}")
        if "box" in item:
            out.append((rnd, _box(item, what, geometry, label)))
            continue
        if "scribble" in item:
            clicks = _scribble(item, what, geometry, label, positive)
        else:
            clicks = [Click(*_voxel(item, what, geometry), label, positive)]
        for click in clicks:
            key = (rnd, click.z, click.y, click.x)
            if key in seen:
                j, other = seen[key]
                if other == click:
                    warnings.warn(f"{what} repeats click #{j}: ignored", InputWarning, stacklevel=2)
                    continue
                raise InputError(f"{what} and click #{j} are on the same voxel in the same round with a different "
                                 "label or sign: keep one, or put them in different rounds")
            seen[key] = (i, click)
            out.append((rnd, click))
    return sorted(out, key=lambda item: item[0])


def read_clicks(path: str | Path, geometry: Geometry,
                class_names: Mapping[int, str] | None = None) -> list[tuple[int, Click]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"clicks file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"clicks file {path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read the clicks file {path}: {exc.strerror or exc}") from None
    return parse_clicks(data, geometry, class_names)


def rounds_of(clicks: list[tuple[int, Prompt]]) -> list[list[Prompt]]:
    """The prompts grouped by round, rounds in increasing order (``Session.add_prompts`` takes each)."""
    groups: dict[int, list[Prompt]] = {}
    for rnd, click in clicks:
        groups.setdefault(rnd, []).append(click)
    return [groups[k] for k in sorted(groups)]
