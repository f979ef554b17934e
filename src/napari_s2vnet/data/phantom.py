"""Procedural CT-like abdomen phantom with TotalSegmentator CT ids, in internal ``(z, y, x)`` order.

``z`` runs inferior -> superior, ``y`` anterior -> posterior, ``x`` patient right -> patient left
(see ``docs/architecture.md``). Anatomy is laid out in body-normalised coordinates
``w = z / Z`` (0 = inferior end, 1 = superior end), ``v = y / a_y`` and ``u = x / a_x`` (``a_*`` the
body semi-axes in mm, ``u > 0`` is patient left, ``v > 0`` posterior), so the phantom scales with
the requested shape. Organs are unions of ellipsoids or z-clipped elliptic tubes evaluated in
coordinates deformed by a smooth random displacement field, with a smooth random threshold so
boundaries are irregular. The image gets per-organ HU values with a random per-seed shift and a
random contrast phase, low-frequency texture, partial-volume blur (sigma 0.7 voxel in-plane) and
Gaussian noise. Everything is drawn from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import cos, inf, radians, sin

import numpy as np
from scipy.ndimage import gaussian_filter

from napari_s2vnet.data.geometry import Geometry
from napari_s2vnet.data.samples import sample_class_names

_NAMES = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "urinary_bladder", "aorta", "inferior_vena_cava", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right", "sacrum", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3",
    "vertebrae_L2", "vertebrae_L1", "vertebrae_T12", "spinal_cord", "autochthon_left",
    "autochthon_right", "iliopsoas_left", "iliopsoas_right",
)
_ID = {name: i for i, name in sample_class_names("ct").items()}
PHANTOM_CLASSES: dict[int, str] = {_ID[n]: n for n in sorted(_NAMES, key=lambda n: _ID[n])}
"""Every class the phantom can paint, ``{TotalSegmentator CT id: name}`` (T12/sacrum not always)."""

# bumps per axis of the smooth random fields (fixed, so the look does not depend on the grid size)
_COARSE, _FINE = (6, 8, 8), (12, 18, 18)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic CT volume: ``image`` float32 HU and ``labels`` uint8, both ``(Z, Y, X)`` internal."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    class_names: dict[int, str]


@dataclass(frozen=True)
class _Blob:
    """Ellipsoid (``rw`` finite) or elliptic tube (``rw = inf``) in normalised ``(w, v, u)``."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle: float = 0.0  # in-plane rotation, degrees
    drift: tuple[float, float] = (0.0, 0.0)  # (dv/dw, du/dw) of a tube's centre
    wrange: tuple[float, float] = (-inf, inf)


@dataclass(frozen=True)
class _Organ:
    name: str
    blobs: tuple[_Blob, ...]
    hu: float
    style: str = "solid"  # solid | kidney | stomach | hollow | bone
    texture: float = 6.0


def phantom_geometry(
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0), shape: tuple[int, int, int] = (48, 128, 128)
) -> Geometry:
    """Geometry of a phantom array (already internal order), ``spacing`` = ``(sz, sy, sx)`` mm."""
    return Geometry.from_spacing(spacing, shape)


def make_phantom(
    seed: int,
    shape: tuple[int, int, int] = (48, 128, 128),
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
) -> Phantom:
    """Render the phantom for ``seed`` (deterministic) on a ``shape`` grid with ``spacing`` mm."""
    rng = np.random.default_rng(seed)
    canvas = _Canvas(rng, tuple(int(s) for s in shape), tuple(float(s) for s in spacing))
    canvas.paint_body()
    for organ in _anatomy(rng):
        for blob in organ.blobs:
            canvas.paint(organ, blob)
    image = gaussian_filter(canvas.image, sigma=(0.35, 0.7, 0.7), mode="nearest")
    image += rng.normal(0.0, rng.uniform(10.0, 20.0), size=image.shape).astype(np.float32)
    present = set(np.flatnonzero(np.bincount(canvas.labels.ravel(), minlength=256)).tolist())
    names = {i: n for i, n in PHANTOM_CLASSES.items() if i in present}
    return Phantom(image.astype(np.float32), canvas.labels, canvas.spacing, names)


def _smooth_field(
    rng: np.random.Generator, coarse: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """Unit-sd low-frequency random field: random weights on ``coarse`` Gaussian bumps per axis.

    Separable and smooth (no interpolation kinks); ``coarse[i]`` bumps span axis ``i``.
    """
    bases = []
    for n, k in zip(shape, coarse):
        t = (np.arange(n) + 0.5) / n
        c = np.linspace(-1.0 / k, 1.0 + 1.0 / k, k + 2)
        bases.append(np.exp(-0.5 * ((t[:, None] - c[None, :]) / (c[1] - c[0])) ** 2).astype(np.float32))
    weights = rng.standard_normal(tuple(b.shape[1] for b in bases)).astype(np.float32)
    field = np.einsum("ai,bj,ck,ijk->abc", *bases, weights, optimize=True)
    field /= field.std() + 1e-8
    return field


class _Canvas:
    """Deformed normalised coordinates plus the label and HU arrays being painted."""

    def __init__(
        self, rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float]
    ) -> None:
        self.rng, self.shape, self.spacing = rng, shape, spacing
        Z, Y, X = shape
        self.a_y, self.a_x = 0.33 * Y * spacing[1], 0.44 * X * spacing[2]
        off_v, off_u = rng.normal(0.0, 0.03, 2)
        w = ((np.arange(Z) + 0.5) / Z).astype(np.float32)
        v = ((np.arange(Y) - (Y - 1) / 2) * spacing[1] / self.a_y - off_v).astype(np.float32)
        u = ((np.arange(X) - (X - 1) / 2) * spacing[2] / self.a_x - off_u).astype(np.float32)
        # voxel index of the body centre (v = u = 0)
        self.centre_yx = (
            (Y - 1) / 2 + off_v * self.a_y / spacing[1], (X - 1) / 2 + off_u * self.a_x / spacing[2]
        )
        amp = rng.uniform(0.02, 0.04)
        fields = [_smooth_field(rng, _COARSE, shape) for _ in range(3)]
        self.W = w[:, None, None] + 0.6 * amp * fields[0]
        self.V = v[None, :, None] + amp * fields[1]
        self.U = u[None, None, :] + amp * fields[2]
        self.noise = _smooth_field(rng, _FINE, shape)
        # bounding-box margins that cover the largest displacement and threshold excursion
        self.max_shift = amp * max(float(np.abs(f).max()) for f in fields)
        self.max_grow = float(np.sqrt(1.0 + 0.3 * max(0.0, float(self.noise.max()))))
        self.gas_level = rng.uniform(-0.7, -0.3)
        self.texture = _smooth_field(rng, _FINE, shape)
        self.labels = np.zeros(shape, np.uint8)
        self.image = np.full(shape, -1000.0, np.float32)

    def paint_body(self) -> None:
        """Air outside; body = subcutaneous fat, a muscle wall, then fat/bowel visceral background."""
        rng = self.rng
        phase, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.05)
        s = 1.0 + scale * np.sin(2 * np.pi * self.W[:, :1, :1] + phase)
        r = np.sqrt((self.U / s) ** 2 + (self.V / s) ** 2) - 0.02 * self.noise
        fat = rng.uniform(0.06, 0.14)
        body = (r < 1.0) & (self.V < 0.93)
        self.image[body] = -100.0
        wall = body & (r < 1.0 - fat)
        self.image[wall] = 50.0
        inner = r < 0.94 - fat
        t = self.texture[inner]
        self.image[inner] = np.where(t > 2.3, -850.0, -40.0 + 60.0 * np.tanh(1.5 * t))

    def _region(self, blob: _Blob) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray, np.ndarray]:
        """Bounding-box slices, inside mask, implicit value ``f`` and relative ``v`` of a blob."""
        (cw, cv, cu), (rw, rv, ru) = blob.centre, blob.radii
        Z, Y, X = self.shape
        grow, shift = self.max_grow, self.max_shift + 0.01
        reach = grow * max(rv, ru) + shift
        w_lo = max(blob.wrange[0] - shift, cw - grow * rw - shift, -shift)
        w_hi = min(blob.wrange[1] + shift, cw + grow * rw + shift, 1.0 + shift)
        dv = max(abs(blob.drift[0] * (w - cw)) for w in (w_lo, w_hi))
        du = max(abs(blob.drift[1] * (w - cw)) for w in (w_lo, w_hi))

        def span(lo: float, hi: float, n: int) -> slice:  # voxel index range, clipped to the grid
            return slice(int(np.clip(np.floor(lo), 0, n)), int(np.clip(np.ceil(hi) + 1, 0, n)))

        unit_v, unit_u = self.a_y / self.spacing[1], self.a_x / self.spacing[2]
        (y0, x0), rv_max, ru_max = self.centre_yx, reach + dv, reach + du
        slc = (
            span(w_lo * Z - 0.5, w_hi * Z - 0.5, Z),
            span(y0 + (cv - rv_max) * unit_v, y0 + (cv + rv_max) * unit_v, Y),
            span(x0 + (cu - ru_max) * unit_u, x0 + (cu + ru_max) * unit_u, X),
        )
        W, V, U = self.W[slc], self.V[slc], self.U[slc]
        dw = W - cw
        ev, eu = V - (cv + blob.drift[0] * dw), U - (cu + blob.drift[1] * dw)
        ca, sa = cos(radians(blob.angle)), sin(radians(blob.angle))
        f = ((ca * ev + sa * eu) / rv) ** 2 + ((-sa * ev + ca * eu) / ru) ** 2
        if np.isfinite(rw):
            f += (dw / rw) ** 2
        mask = (f < 1.0 + 0.3 * self.noise[slc]) & (W >= blob.wrange[0]) & (W <= blob.wrange[1])
        return slc, mask, f, ev / rv

    def paint(self, organ: _Organ, blob: _Blob) -> None:
        """Write the organ's label id and HU values inside ``blob``."""
        slc, mask, f, rel_v = self._region(blob)
        if not mask.any():
            return
        f, rel_v, t = f[mask], rel_v[mask], self.texture[slc][mask]
        hu = organ.hu + organ.texture * t
        if organ.style == "kidney":  # enhancing cortex around a darker medulla
            hu = np.where(f > 0.35, hu, 0.6 * hu + 10.0)
        elif organ.style == "stomach":  # gas rises anteriorly (small y) over fluid, enhancing wall
            hu = np.where(rel_v < self.gas_level, -900.0, hu)
            hu = np.where(f > 0.8, 60.0 + organ.texture * t, hu)
        elif organ.style == "hollow":  # fluid-filled with a thin soft-tissue wall
            hu = np.where(f > 0.85, 45.0 + organ.texture * t, hu)
        elif organ.style == "bone":  # dense cortical shell around cancellous bone
            hu = np.where(f > 0.55, 2.0 * organ.hu, hu)
        self.labels[slc][mask] = _ID[organ.name]
        self.image[slc][mask] = hu


class _Jitter:
    """Per-seed random variation of the nominal anatomy (positions, sizes, angles, HU values)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.shift_w = rng.normal(0.0, 0.03)  # the whole anatomy slides along z

    def blob(self, centre, radii, angle=0.0, drift=(0.0, 0.0), wrange=(-inf, inf), sd=0.025) -> _Blob:
        cw, cv, cu = np.asarray(centre) + self.rng.normal(0.0, sd, 3)
        size = tuple(float(r) for r in np.asarray(radii) * self.rng.uniform(0.85, 1.15, 3))
        return _Blob(
            (float(cw + self.shift_w), float(cv), float(cu)),
            size,
            angle + self.rng.normal(0.0, 8.0),
            drift,
            (wrange[0] + self.shift_w, wrange[1] + self.shift_w),
        )

    def hu(self, base: float, sd: float = 8.0) -> float:
        return float(base + self.rng.normal(0.0, sd))


def _anatomy(rng: np.random.Generator) -> list[_Organ]:
    """Organ layout for one seed, in painting order (later organs overwrite earlier ones)."""
    j = _Jitter(rng)
    contrast = rng.uniform(0.5, 1.0)  # contrast phase: native-ish (0.5) to portal venous (1.0)
    organs: list[_Organ] = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        back = j.blob((0.5, 0.74, 0.17 * sign), (inf, 0.13, 0.12), sd=0.01)
        psoas = j.blob((0.15, 0.32, 0.27 * sign), (0.6, 0.11, 0.11), 20 * sign, wrange=(-inf, 0.72))
        organs += [_Organ(f"autochthon_{side}", (back,), j.hu(50)),
                   _Organ(f"iliopsoas_{side}", (psoas,), j.hu(50))]
    organs += _spine(rng, j)
    liver, spleen, kidney, stomach = rng.uniform(0.85, 1.15, 4)  # cranio-caudal extents
    kidney_hu = 30 + 130 * contrast
    organs += [
        _Organ("liver", (j.blob((0.78, -0.05, -0.42), (0.28 * liver, 0.42, 0.33)),
                         j.blob((0.84, -0.38, 0.02), (0.14 * liver, 0.2, 0.32), -20)), j.hu(60)),
        _Organ("spleen", (j.blob((0.8, 0.38, 0.6), (0.13 * spleen, 0.22, 0.12), 35),), j.hu(50)),
        _Organ("stomach", (j.blob((0.86, 0.0, 0.4), (0.1 * stomach, 0.2, 0.2)),
                           j.blob((0.72, -0.32, 0.28), (0.12 * stomach, 0.15, 0.25), -30)),
               j.hu(25), "stomach", 10),
        _Organ("kidney_right", (j.blob((0.47, 0.4, -0.4), (0.13 * kidney, 0.2, 0.13), -25),),
               kidney_hu, "kidney"),
        _Organ("kidney_left", (j.blob((0.52, 0.4, 0.4), (0.13 * kidney, 0.2, 0.13), 25),),
               kidney_hu, "kidney"),
        _Organ("pancreas", (j.blob((0.56, -0.12, -0.15), (0.05, 0.08, 0.09), sd=0.015),
                            j.blob((0.6, -0.16, 0.12), (0.045, 0.06, 0.17), -15, sd=0.015),
                            j.blob((0.64, 0.02, 0.4), (0.04, 0.06, 0.12), -35, sd=0.015)), j.hu(40)),
        _Organ("gallbladder", (j.blob((0.6, -0.36, -0.35), (0.07, 0.12, 0.08), 30),),
               j.hu(8, 5), "hollow"),
        _Organ("urinary_bladder", (j.blob((0.05, -0.35, 0.0), (0.12, 0.25, 0.3)),),
               j.hu(10, 5), "hollow"),
    ]
    artery_hu, vein_hu = 45 + 170 * contrast, 40 + 110 * contrast
    split_a, split_v = 0.3 + rng.normal(0.0, 0.03), 0.22 + rng.normal(0.0, 0.03)  # bifurcations
    aorta = j.blob((1.0, 0.08, 0.08), (inf, 0.12, 0.1), drift=(0.1, 0.0), wrange=(split_a, inf), sd=0.01)
    ivc = j.blob((1.0, 0.12, -0.15), (inf, 0.09, 0.12), wrange=(split_v, inf), sd=0.01)
    organs += [_Organ("aorta", (aorta,), artery_hu, texture=4),
               _Organ("inferior_vena_cava", (ivc,), vein_hu, texture=4)]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        drift = (0.3, -1.2 * sign)  # the iliac vessels diverge laterally towards the feet
        artery = j.blob((split_a, 0.08, 0.08 * sign), (inf, 0.07, 0.07), drift=drift,
                        wrange=(-inf, split_a), sd=0.005)
        vein = j.blob((split_v, 0.14, 0.1 * sign - 0.02), (inf, 0.07, 0.08), drift=drift,
                      wrange=(-inf, split_v), sd=0.005)
        organs += [_Organ(f"iliac_artery_{side}", (artery,), artery_hu, texture=4),
                   _Organ(f"iliac_vena_{side}", (vein,), vein_hu, texture=4)]
    return organs


def _spine(rng: np.random.Generator, j: _Jitter) -> list[_Organ]:
    """Sacrum, L5..L1 and T12 stacked along ``w`` (discs between), then the spinal cord in the canal."""
    start, height = rng.uniform(-0.15, -0.05), rng.uniform(0.16, 0.19)
    cv, disc = 0.33 + rng.normal(0.0, 0.02), 0.22 * height
    levels = ("sacrum", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
              "vertebrae_T12")
    organs = []
    for i, name in enumerate(levels):
        lo, hi = start + i * height, start + (i + 1) * height - disc
        if name == "sacrum":
            parts = (j.blob((0, cv + 0.05, 0), (inf, 0.14, 0.2), wrange=(lo, hi), sd=0.005),
                     j.blob((0, cv + 0.1, 0), (inf, 0.1, 0.42), wrange=(lo, hi), sd=0.005))  # alae
        else:
            parts = (
                # vertebral body, arch (around the canal), spinous and transverse processes
                j.blob((0, cv, 0), (inf, 0.16, 0.19), wrange=(lo, hi), sd=0.005),
                j.blob((0, cv + 0.29, 0), (inf, 0.13, 0.14), wrange=(lo + 0.1 * height, hi), sd=0.005),
                j.blob((0, cv + 0.45, 0), (inf, 0.1, 0.04), wrange=(lo + 0.2 * height, hi), sd=0.005),
                j.blob((0, cv + 0.22, 0), (inf, 0.035, 0.32),
                       wrange=(lo + 0.3 * height, hi - 0.1 * height), sd=0.005),
            )
        organs.append(_Organ(name, parts, j.hu(330, 30), "bone", texture=20))
    cord = j.blob((0.5, cv + 0.28, 0), (inf, 0.07, 0.08), sd=0.003)  # painted last: hollows the arches
    organs.append(_Organ("spinal_cord", (cord,), j.hu(25, 5)))
    return organs
