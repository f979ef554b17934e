"""Voxel geometry: file order, internal order and the RAS world.

* **File order** ``(i, j, k)``: the array exactly as a reader returns it. ``Geometry.affine`` maps a
  file-order voxel index ``(i, j, k, 1)`` to **RAS millimetres** (NIfTI/nibabel scanner convention:
  world +x points to patient **R**ight, +y to **A**nterior, +z to **S**uperior).
* **Internal order** ``(z, y, x)``: axial slices indexed ``arr[z, y, x]`` with ``z`` increasing towards
  **S**uperior, ``y`` towards **P**osterior and ``x`` towards patient **L**eft (radiological display:
  anterior at the top, patient right on the left of the screen).

The file -> internal reorientation is an exact axis permutation plus flips chosen from the axes of
the affine closest to S, P and L (nibabel ``io_orientation``), so it never resamples: it is lossless
and ``from_internal(to_internal(a)) == a`` for arrays of any dtype. ``internal_affine`` is the affine
of the reoriented array, so both orders map to the same RAS positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from ..errors import InputError

#: nibabel orientation of the internal array: axis 0 -> S, axis 1 -> P, axis 2 -> L.
INTERNAL_AXCODES: tuple[str, str, str] = ("S", "P", "L")
_INTERNAL_ORNT = axcodes2ornt(INTERNAL_AXCODES)


@dataclass(frozen=True, eq=False)
class Geometry:
    """File-order voxel grid and its voxel -> RAS mm affine.

    Equality compares values (same shape, ``np.allclose`` affines); the hash uses the shape only,
    which is consistent with that equality.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        affine = np.array(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise InputError(f"invalid affine: expected a finite 4x4 matrix, got {affine.shape} "
                             f"{'with NaN/Inf' if affine.shape == (4, 4) else ''}; fix the file's header")
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"invalid volume shape {shape}: expected 3 positive sizes")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12 or np.isnan(io_orientation(affine)).any():
            raise InputError("invalid affine: the voxel axes are degenerate (a zero voxel size, or parallel axes); "
                             "fix the file's header (NIfTI sform/qform, TIFF voxel size)")
        affine.setflags(write=False)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_spacing(
        cls, spacing_zyx: Sequence[float], shape_zyx: Sequence[int]
    ) -> Geometry:
        """Geometry of a plain ``(Z, Y, X)`` array without orientation (e.g. TIFF).

        The array is taken to be in internal order already (``to_internal`` is the identity), with
        the origin at voxel ``(0, 0, 0)``.
        """
        sz, sy, sx = (float(s) for s in spacing_zyx)
        affine = np.array(
            [[0.0, 0.0, -sx, 0.0], [0.0, -sy, 0.0, 0.0], [sz, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        )
        return cls(affine, tuple(shape_zyx))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Geometry):
            return NotImplemented
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine))

    def __hash__(self) -> int:
        return hash(self.shape)

    # ---- file order -------------------------------------------------------------------------
    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each file axis (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Direction each file axis increases towards, e.g. ``("R", "A", "S")``."""
        return tuple(aff2axcodes(self.affine))

    # ---- internal order ---------------------------------------------------------------------
    @cached_property
    def _to_internal_ornt(self) -> np.ndarray:
        return ornt_transform(io_orientation(self.affine), _INTERNAL_ORNT)

    @cached_property
    def _from_internal_ornt(self) -> np.ndarray:
        return ornt_transform(_INTERNAL_ORNT, io_orientation(self.affine))

    @cached_property
    def _internal_to_file(self) -> np.ndarray:
        """Integer 4x4 matrix mapping internal index ``(z, y, x, 1)`` to file index ``(i, j, k, 1)``."""
        return np.rint(inv_ornt_aff(self._to_internal_ornt, self.shape)).astype(np.int64)

    @cached_property
    def _file_to_internal(self) -> np.ndarray:
        return np.rint(np.linalg.inv(self._internal_to_file)).astype(np.int64)

    @property
    def internal_shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)`` shape of the internal-order array."""
        perm = self._to_internal_ornt[:, 0].astype(int)
        out = [0, 0, 0]
        for file_axis, internal_axis in enumerate(perm):
            out[internal_axis] = self.shape[file_axis]
        return tuple(out)

    @property
    def internal_affine(self) -> np.ndarray:
        """4x4 affine mapping internal index ``(z, y, x, 1)`` to RAS mm."""
        return self.affine @ self._internal_to_file

    @property
    def internal_spacing(self) -> tuple[float, float, float]:
        """Voxel size ``(sz, sy, sx)`` in mm of the internal-order array."""
        return tuple(float(v) for v in np.linalg.norm(self.internal_affine[:3, :3], axis=0))

    def to_internal(self, arr: np.ndarray) -> np.ndarray:
        """File-order 3-D array -> internal ``(z, y, x)`` array (C-contiguous copy)."""
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise ValueError(f"array shape {arr.shape} does not match the geometry {self.shape}")
        return np.ascontiguousarray(apply_orientation(arr, self._to_internal_ornt))

    def from_internal(self, arr: np.ndarray) -> np.ndarray:
        """Internal ``(z, y, x)`` array -> file-order array (C-contiguous copy)."""
        arr = np.asarray(arr)
        if arr.shape != self.internal_shape:
            raise ValueError(
                f"array shape {arr.shape} does not match the internal shape {self.internal_shape}"
            )
        return np.ascontiguousarray(apply_orientation(arr, self._from_internal_ornt))

    # ---- point transforms -------------------------------------------------------------------
    def world_to_file(self, xyz_ras: Sequence[float] | np.ndarray) -> np.ndarray:
        """RAS mm point(s) ``(..., 3)`` -> fractional file-order voxel index ``(..., 3)``."""
        xyz = np.asarray(xyz_ras, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def file_to_internal_index(self, ijk: Sequence[float]) -> tuple[int, int, int]:
        """File-order voxel index (rounded to the nearest voxel) -> internal ``(z, y, x)``.

        No bounds check: the result lies outside ``internal_shape`` when ``ijk`` lies outside
        ``shape``.
        """
        ijk1 = np.append(np.floor(np.asarray(ijk, dtype=np.float64) + 0.5), 1.0)
        return tuple(int(v) for v in (self._file_to_internal @ ijk1)[:3])

    def internal_to_file_index(self, zyx: Sequence[int]) -> tuple[int, int, int]:
        """Internal voxel index ``(z, y, x)`` -> file-order index ``(i, j, k)``."""
        zyx1 = np.append(np.asarray(zyx, dtype=np.int64), 1)
        return tuple(int(v) for v in (self._internal_to_file @ zyx1)[:3])
