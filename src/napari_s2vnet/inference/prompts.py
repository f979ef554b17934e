"""Box and scribble prompts, as clicks (``docs/method.md``, "Boxes and scribbles").

Both become ordinary clicks, so they use the click-feature sampling (``_View.click_feats``), the
centres, the rounds, undo and the propagation of :class:`Session` unchanged:

* a :class:`Scribble` (a polyline on one slice, ``(y, x)`` vertices) is rasterised and at most
  ``SCRIBBLE_POINTS`` pixels evenly spaced along it become clicks of its sign;
* a :class:`Box` becomes one positive click and negative clicks ``BOX_MARGIN_PX`` outside the
  middle of each edge (those inside the slice). The positive click goes where the object most
  likely is: of a grid of pixels over the inner 80 % of the box (:func:`box_candidates`), the one
  whose click features are most like the other candidates on average (what fills the box) minus
  its best likeness to those sampled just outside the box (edges and corners, :func:`box_outside`),
  then the deepest candidate of the positive region that holds the best (:func:`deepest_candidate`);
  the box centre is often not on the object (a crescent-shaped liver).
  After the decode, the class is kept only inside the box on that slice (:func:`box_mask`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_s2vnet.errors import InputError
from napari_s2vnet.inference.state import Click

SCRIBBLE_POINTS = 8  # at most this many pixels of a stroke become clicks
BOX_MARGIN_PX = 2  # a box's negative clicks sit this far outside its edges


@dataclass(frozen=True)
class Box:
    """A rectangle on slice ``z`` (internal order), corners included."""

    z: int
    y0: int
    x0: int
    y1: int
    x1: int
    label: int

    def ordered(self) -> Box:
        return Box(int(self.z), min(self.y0, self.y1), min(self.x0, self.x1), max(self.y0, self.y1),
                   max(self.x0, self.x1), int(self.label))


@dataclass(frozen=True)
class Scribble:
    """A stroke on slice ``z``: polyline vertices ``((y, x), ...)``."""

    z: int
    points: tuple[tuple[int, int], ...]
    label: int
    positive: bool = True


Prompt = Click | Box | Scribble


def stroke_pixels(points: Iterable[tuple[float, float]]) -> np.ndarray:
    """Pixels ``(N, 2)`` of a polyline, in stroke order, without repeats."""
    pts = np.asarray([tuple(p) for p in points], dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2), int)
    pieces = [np.rint(pts[:1]).astype(int)]
    for a, b in zip(pts[:-1], pts[1:]):
        n = int(np.ceil(np.abs(b - a).max())) + 1
        pieces.append(np.rint(np.linspace(a, b, n)).astype(int))
    pix = np.concatenate(pieces)
    _, first = np.unique(pix, axis=0, return_index=True)
    return pix[np.sort(first)]


def scribble_clicks(s: Scribble) -> list[Click]:
    pix = stroke_pixels(s.points)
    if not len(pix):
        raise InputError(f"scribble on slice {s.z} for label {s.label} has no points")
    pick = np.unique(np.linspace(0, len(pix) - 1, min(len(pix), SCRIBBLE_POINTS)).round().astype(int))
    return [Click(int(s.z), int(y), int(x), int(s.label), bool(s.positive)) for y, x in pix[pick]]


def box_candidates(b: Box, n: int = 7) -> list[tuple[int, int]]:
    """An ``n`` x ``n`` grid of pixels over the inner 80 % of the box (where its positive click may go)."""
    b = b.ordered()
    ys = np.unique(np.rint(np.linspace(b.y0 + 0.1 * (b.y1 - b.y0), b.y1 - 0.1 * (b.y1 - b.y0), n)).astype(int))
    xs = np.unique(np.rint(np.linspace(b.x0 + 0.1 * (b.x1 - b.x0), b.x1 - 0.1 * (b.x1 - b.x0), n)).astype(int))
    return [(int(y), int(x)) for y in ys for x in xs]


def deepest_candidate(candidates: list[tuple[int, int]], score: np.ndarray) -> tuple[int, int]:
    """The box's positive click among ``candidates`` (a grid, :func:`box_candidates`): the deepest
    point of the region of candidates with a positive ``score`` (more like the box than like its
    outside) that holds the best one, as the first click of training and evaluation is the deepest point
    of its object; ties go to the higher score. No positive score: the best candidate."""
    from scipy import ndimage

    ys, xs = sorted({y for y, _ in candidates}), sorted({x for _, x in candidates})
    grid = np.full((len(ys), len(xs)), -np.inf)
    for (y, x), v in zip(candidates, score):
        grid[ys.index(y), xs.index(x)] = v
    best = np.unravel_index(int(np.argmax(grid)), grid.shape)
    region, _ = ndimage.label(grid > 0)
    if not region[best]:
        return ys[best[0]], xs[best[1]]
    depth = ndimage.distance_transform_edt(np.pad(region == region[best], 1))[1:-1, 1:-1]
    i = max(zip(*np.nonzero(depth)), key=lambda ij: (depth[ij], grid[ij]))
    return ys[i[0]], xs[i[1]]


def box_outside(b: Box, shape: tuple[int, int, int]) -> list[tuple[int, int]]:
    """``BOX_MARGIN_PX`` outside the middle of each edge and each corner (inside the slice)."""
    b = b.ordered()
    m, cy, cx = BOX_MARGIN_PX, (b.y0 + b.y1) // 2, (b.x0 + b.x1) // 2
    points = [(b.y0 - m, cx), (b.y1 + m, cx), (cy, b.x0 - m), (cy, b.x1 + m),
              (b.y0 - m, b.x0 - m), (b.y0 - m, b.x1 + m), (b.y1 + m, b.x0 - m), (b.y1 + m, b.x1 + m)]
    return [(y, x) for y, x in points if 0 <= y < shape[1] and 0 <= x < shape[2]]


def box_clicks(b: Box, shape: tuple[int, int, int], inside: tuple[int, int] | None = None) -> list[Click]:
    """The box's clicks: positive at ``inside`` (default: its centre), negative just outside its edges."""
    b = b.ordered()
    cy, cx = inside if inside is not None else ((b.y0 + b.y1) // 2, (b.x0 + b.x1) // 2)
    out = [Click(b.z, cy, cx, b.label, True)]
    out += [Click(b.z, y, x, b.label, False) for y, x in box_outside(b, shape)[:4]]
    return out


def box_mask(b: Box, shape_yx: tuple[int, int]) -> np.ndarray:
    b = b.ordered()
    mask = np.zeros(shape_yx, bool)
    mask[max(0, b.y0) : b.y1 + 1, max(0, b.x0) : b.x1 + 1] = True
    return mask


def normalised(p: Prompt) -> Prompt:
    """The same prompt with plain ``int`` / ``bool`` fields (a box with ordered corners), so that a
    prompt given back (to remove or move it) compares equal to the one the session recorded."""
    if isinstance(p, Box):
        return Box(*(int(round(v)) for v in (p.z, p.y0, p.x0, p.y1, p.x1)), int(p.label)).ordered()
    if isinstance(p, Scribble):
        points = tuple((int(round(y)), int(round(x))) for y, x in p.points)
        return Scribble(int(round(p.z)), points, int(p.label), bool(p.positive))
    if isinstance(p, Click):
        return Click(*(int(round(v)) for v in (p.z, p.y, p.x)), int(p.label), bool(p.positive))
    raise InputError(f"not a prompt (a Click, Box or Scribble): {p!r}")


def prompt_to_dict(p: Prompt) -> dict:
    """Plain JSON data of a prompt (autosave): a click's ``to_dict``, ``{"box": [z, y0, x0, y1, x1],
    "label"}`` or ``{"scribble": {"z", "points": [[y, x], ...]}, "label", "positive"}``."""
    p = normalised(p)
    if isinstance(p, Box):
        return {"box": [p.z, p.y0, p.x0, p.y1, p.x1], "label": p.label}
    if isinstance(p, Scribble):
        return {"scribble": {"z": p.z, "points": [list(v) for v in p.points]}, "label": p.label, "positive": p.positive}
    return p.to_dict()


def prompt_from_dict(d: dict) -> Prompt:
    """The prompt of :func:`prompt_to_dict` data (a click's dict as ``Click.from_dict``)."""
    if "box" in d:
        return Box(*(int(v) for v in d["box"]), int(d["label"])).ordered()
    if "scribble" in d:
        s = d["scribble"]
        return Scribble(int(s["z"]), tuple((int(y), int(x)) for y, x in s["points"]), int(d["label"]),
                        bool(d.get("positive", True)))
    return Click.from_dict(d)


def as_clicks(prompts: Iterable[Prompt], shape: tuple[int, int, int], inside=None) -> list[Click]:
    """Every prompt as clicks; ``inside(box) -> (y, x)`` chooses a box's positive click."""
    out: list[Click] = []
    for p in prompts:
        if isinstance(p, Box):
            out += box_clicks(p, shape, inside(p) if inside is not None else None)
        else:
            out += scribble_clicks(p) if isinstance(p, Scribble) else [p]
    return out
