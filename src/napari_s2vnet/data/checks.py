"""Checks of images and voxel sizes before they reach the model (see ``docs/robustness.md``).

Each problem is one readable line: an :class:`InputError` when the input cannot be used, an
:class:`InputWarning` when it was used but changed or is doubtful. Policy:

* non-finite voxels: NaN and -Inf become the lowest finite value of the image (background), +Inf
  the highest, with a warning; an image without any finite voxel is refused;
* voxel sizes must be finite and positive;
* a constant image, slices thinner than 8 px at the model's pixel spacing, and in-plane voxels more
  than 3x longer one way than the other are used with a warning; a working slice wider than
  4096 px (a voxel size in the wrong unit, usually) is refused;
* sheared voxel axes (non-orthogonal affine columns) are used as they are, with a warning: slices
  follow the voxel grid, and the output keeps the input's affine.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import InputError, InputWarning

#: narrowest working slice (px at the model spacing) that is segmented without a warning
MIN_WORKING_PX = 8
#: widest working slice (px at the model spacing) that is accepted at all
MAX_WORKING_PX = 4096
#: in-plane voxel aspect ratio above which a warning is given
MAX_INPLANE_ASPECT = 3.0
#: deviation from 90 degrees between voxel axes above which a warning is given
MAX_SHEAR_DEG = 0.5


def warn(message: str) -> None:
    warnings.warn(message, InputWarning, stacklevel=3)


def check_spacing(spacing: Sequence[float], what: str = "voxel size") -> tuple[float, ...]:
    """Voxel sizes as floats; zero, negative or non-finite sizes are an :class:`InputError`."""
    values = tuple(float(s) for s in spacing)
    if not all(np.isfinite(v) and v > 0 for v in values):
        shown = ", ".join(f"{v:g}" for v in values)
        raise InputError(f"{what} ({shown}) mm: every voxel size must be a positive number; "
                         "fix the file's header (or the spacing you passed)")
    return values


def finite_image(array: np.ndarray, name: str = "the image") -> np.ndarray:
    """``array`` with NaN/-Inf set to its lowest finite value and +Inf to its highest (warning)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return array
    finite = np.isfinite(array)
    if finite.all():
        return array
    if not finite.any():
        raise InputError(f"{name} has no finite voxel (all NaN or Inf): nothing to segment; check the file")
    lo, hi = array[finite].min(), array[finite].max()
    n_nan, n_inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
    out = np.nan_to_num(array, nan=lo, posinf=hi, neginf=lo)
    warn(f"{name} has {n_nan} NaN and {n_inf} infinite voxels: NaN and -Inf were set to the lowest finite "
         f"value ({lo:g}), +Inf to the highest ({hi:g})")
    return out


def image_warnings(image_zyx: np.ndarray, spacing_zyx: Sequence[float], target_mm: float) -> None:
    """Warn about images the model can segment only poorly; refuse absurd working sizes."""
    sz, sy, sx = check_spacing(spacing_zyx)
    _z, y, x = image_zyx.shape
    hy, hx = y * sy / target_mm, x * sx / target_mm
    if max(hy, hx) > MAX_WORKING_PX:
        raise InputError(
            f"an axial slice of {y} x {x} voxels of {sy:g} x {sx:g} mm spans {y * sy / 1000:.1f} x {x * sx / 1000:.1f} m: "
            "the voxel size is probably in the wrong unit; fix the header (sizes are in mm)")
    if min(hy, hx) < MIN_WORKING_PX:
        warn(f"axial slices are only {y} x {x} voxels ({hy:.0f} x {hx:.0f} px at the model's {target_mm:g} mm): "
             "S2VNet segments axial slices and needs wider ones; results will be poor (is this a thin slab "
             "along another axis?)")
    if max(sy, sx) > MAX_INPLANE_ASPECT * min(sy, sx):
        warn(f"in-plane voxels are {sy:g} x {sx:g} mm: slices are resampled to {target_mm:g} mm squares, so "
             f"detail along the finer axis is lost (slice thickness, {sz:g} mm here, is harmless)")
    flat = np.asarray(image_zyx).ravel()
    if flat.size and flat.min() == flat.max():
        warn(f"the image is constant (every voxel is {flat[0]:g}): there is nothing to tell apart, "
             "the labels will be empty or meaningless")


def shear_degrees(affine: np.ndarray) -> float:
    """Largest deviation from 90 degrees between two voxel axes of ``affine``."""
    cols = np.asarray(affine, dtype=np.float64)[:3, :3]
    unit = cols / np.linalg.norm(cols, axis=0)
    cosines = np.abs(unit.T @ unit)[np.triu_indices(3, 1)]
    return float(np.degrees(np.arcsin(np.clip(cosines.max(), 0.0, 1.0))))


def affine_warnings(affine: np.ndarray, name: str) -> None:
    shear = shear_degrees(affine)
    if shear > MAX_SHEAR_DEG:
        warn(f"the voxel axes of {name} are not orthogonal (sheared by {shear:.1f} degrees): slices follow the "
             "voxel grid as if it were orthogonal, and the output keeps the input's affine (it overlays the input)")
