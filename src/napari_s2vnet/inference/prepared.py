"""A volume made ready for the network, and the way back to the input grid.

``PreparedImage`` holds the normalised slices resampled in-plane to the model spacing and padded to
a multiple of 16 (``(Z, 2, H, W)``, CPU float32), plus what is needed to map click coordinates in
and per-class scores back out to the exact input grid (scores are resampled linearly, then argmax;
:meth:`PreparedImage.labels_on_input` gives the same labels while resizing only what can win).
``FeatureCache`` keeps per-slice encoder features (``{stride: (1, D, H/s, W/s)}``) under a byte budget
(least recently used slices are dropped and recomputed on demand).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_s2vnet.data.checks import check_spacing, finite_image, image_warnings
from napari_s2vnet.data.preprocess import mr_range, normalize_intensity, resample_inplane, target_hw
from napari_s2vnet.model.cluster_decoder import DecoderOutput
from napari_s2vnet.model.s2vnet import S2VNet, group_probabilities


@dataclass
class PreparedImage:
    net: torch.Tensor  # (Z, C, H, W) padded network input
    shape: tuple[int, int, int]  # (Z, Y, X) internal input shape
    hw: tuple[int, int]  # (h, w) resampled size inside the padding

    @property
    def scale(self) -> tuple[float, float]:
        return self.hw[0] / self.shape[1], self.hw[1] / self.shape[2]

    def to_net(self, y: float, x: float) -> tuple[float, float]:
        """Input pixel ``(y, x)`` -> network pixel coordinates (pixel centres aligned)."""
        sy, sx = self.scale
        return (y + 0.5) * sy - 0.5, (x + 0.5) * sx - 0.5

    def labels_on_input(self, scores: torch.Tensor) -> np.ndarray:
        """``(1, G, H/s, W/s)`` scores (``s`` = the embedding stride, 2 or 4) -> ``(Y, X)`` group index
        (uint8, int32 beyond 256 groups): bilinear scores to the network grid ``(H, W)``, crop to ``hw``, bilinear to the input grid,
        then argmax.

        The labels of that straightforward path, computed cheaply: the labels on the network grid
        first (:func:`bilinear_argmax`: every group compared, but only where the four score
        pixels around a pixel disagree); then only where four network pixels disagree is anything
        interpolated again, over the groups that win somewhere on the network grid, and over any
        other group whose largest score could beat the winner there.
        """
        s = scores[0].float().cpu()  # the band's gathers are small: the CPU does them, whatever the device
        h, w = self.hw
        pad = tuple(self.net.shape[-2:])
        net = bilinear_argmax(s, pad)[:h, :w]
        if (h, w) == tuple(self.shape[1:]):
            return net.numpy()
        out, band = _band(net, tuple(self.shape[1:]))
        if band.size:
            group = _band_winners(s, net.long(), band, lambda maps: _resized(maps, pad, (h, w)))
            out[band.iy, band.ix] = group.to(out.dtype)
        return out.numpy()


def padded_hw(hw: tuple[int, int]) -> tuple[int, int]:
    """The network input size: ``hw`` rounded up to multiples of 16 (the backbone's stride)."""
    return hw[0] + (-hw[0]) % 16, hw[1] + (-hw[1]) % 16


def _source_index(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corner indices and weight of bilinear resizing ``in_size -> out_size`` (align_corners=False),
    computed as ``torch.nn.functional.interpolate`` does."""
    src = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(in_size - 1)
    i1 = (i0 + 1).clamp_max(in_size - 1)
    return i0, i1, (src - i0).float()


@dataclass
class _Band:
    """Pixels of a bilinear resize whose four source pixels disagree: ``iy, ix`` ``(n,)``, the flat
    source index of each corner ``(n,)`` and its weight ``(n, 1)`` (00, 01, 10, 11)."""

    iy: torch.Tensor
    ix: torch.Tensor
    corners: tuple[torch.Tensor, ...]
    weights: tuple[torch.Tensor, ...]

    @property
    def size(self) -> int:
        return int(self.iy.numel())


def _band(low: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, _Band]:
    """``low`` ``(h, w)`` labels -> nearest-corner labels on ``out_hw`` (right wherever the four corners
    agree; uint8, int32 beyond 256) and the band where they do not."""
    h, w = low.shape
    ny, nx = (torch.arange(h) + 1).clamp_max(h - 1), (torch.arange(w) + 1).clamp_max(w - 1)
    down = low[ny]
    uniform = (low == low[:, nx]) & (low == down) & (low == down[:, nx])  # the cell (i, j)..(i+1, j+1) agrees
    y0, y1, wy = _source_index(out_hw[0], h)
    x0, x1, wx = _source_index(out_hw[1], w)
    small = torch.uint8 if int(low.max()) < 256 else torch.int32
    out = low.to(small).index_select(0, y0).index_select(1, x0)
    iy, ix = (~uniform).index_select(0, y0).index_select(1, x0).nonzero(as_tuple=True)
    fy, fx = wy[iy, None], wx[ix, None]
    r0, r1, c0, c1 = y0[iy] * w, y1[iy] * w, x0[ix], x1[ix]
    return out, _Band(iy, ix, (r0 + c0, r0 + c1, r1 + c0, r1 + c1),
                      ((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx))


def _band_scores(scores: torch.Tensor, band: _Band) -> torch.Tensor:
    """Bilinear ``scores`` ``(K, h, w)`` at the band's pixels -> ``(n, K)`` (one row gather per corner)."""
    rows = scores.flatten(1).T.contiguous()  # (h*w, K)
    c, wt = band.corners, band.weights
    return rows[c[0]] * wt[0] + rows[c[1]] * wt[1] + rows[c[2]] * wt[2] + rows[c[3]] * wt[3]


def _resized(scores: torch.Tensor, size: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """``(K, h, w)`` -> bilinear ``(K, *size)`` cropped to its top-left ``crop``, contiguous."""
    return F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0, :, : crop[0], : crop[1]].contiguous()


def _band_winners(scores: torch.Tensor, low: torch.Tensor, band: _Band, resize=None) -> torch.Tensor:
    """The argmax over all K classes of ``scores`` ``(K, h0, w0)`` (``resize``d to the grid of ``low``,
    if given) interpolated at the band's pixels -> ``(n,)`` class index.

    Compared first over the classes that win somewhere on that grid (``low``, its argmax), then over
    any other class whose largest score could beat the winner somewhere in the band (no
    interpolated score of a class exceeds its largest score).
    """
    resize = resize or (lambda maps: maps)
    winners = torch.bincount(low.flatten(), minlength=scores.shape[0]).nonzero()[:, 0]
    best, pick = _band_scores(resize(scores[winners]), band).max(1)
    group = winners[pick]
    peak = scores.flatten(1).amax(1)
    peak[winners] = -math.inf
    rest = (peak >= best.min()).nonzero()[:, 0]
    if len(rest):
        other, pick = _band_scores(resize(scores[rest]), band).max(1)
        group = torch.where(other > best, rest[pick], group)
    return group


def bilinear_argmax(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``argmax_k bilinear(scores (K, h, w))`` on an ``out_hw`` grid without resizing the K maps;
    -> ``(Y, X)`` uint8 (int32 beyond 256 classes).

    Bilinear interpolation is, for every class, the same convex combination of the four
    surrounding pixels; where those four pixels share their argmax, that class is also the argmax of
    the combination. So only output pixels whose four corners disagree (the band along borders) are
    interpolated (:func:`_band_winners`). ``max(0).indices`` (the first maximum, as ``argmax``) is
    used because it is several times faster on CPU.
    """
    low = scores.max(0).indices
    out, band = _band(low, out_hw)
    if band.size:
        out[band.iy, band.ix] = _band_winners(scores, low, band).to(out.dtype)
    return out


def checked_image(image_zyx: np.ndarray, spacing_zyx, target_mm: float) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The image and spacing as the model may take them (``data/checks.py``): an ``InputError`` for
    a non-3-D image, unusable voxel sizes or no finite voxel; non-finite voxels replaced and doubtful
    images (constant, too thin, very anisotropic in-plane) reported as ``InputWarning``."""
    from napari_s2vnet.errors import InputError

    image_zyx = np.asarray(image_zyx)
    if image_zyx.ndim != 3:
        raise InputError(f"expected a 3-D (Z, Y, X) image, got shape {image_zyx.shape}")
    if len(tuple(spacing_zyx)) != 3:
        raise InputError(f"expected 3 voxel sizes (z, y, x), got {tuple(spacing_zyx)}")
    spacing = check_spacing(spacing_zyx)
    image_zyx = finite_image(image_zyx)
    image_warnings(image_zyx, spacing, target_mm)
    return image_zyx, spacing


def prepare_image(image_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], modality: str, target_mm: float,
                  chunk: int = 32) -> PreparedImage:
    """Normalise and resample slice chunks (memory stays at one chunk of the input in float32)."""
    z_count = image_zyx.shape[0]
    hw = target_hw(image_zyx.shape[1:], tuple(spacing_zyx[1:]), target_mm)
    window = mr_range(image_zyx) if str(modality).upper() in ("MR", "MRI") else None
    net = torch.zeros(z_count, 2, *padded_hw(hw))
    for z0 in range(0, z_count, chunk):
        norm = normalize_intensity(image_zyx[z0 : z0 + chunk], modality, window)
        small = resample_inplane(norm, hw, "linear")  # (C, z, h, w)
        net[z0 : z0 + chunk, :, : hw[0], : hw[1]] = torch.from_numpy(np.ascontiguousarray(small)).permute(1, 0, 2, 3)
    return PreparedImage(net, tuple(int(s) for s in image_zyx.shape), hw)


def from_normalized(norm: np.ndarray, shape: tuple[int, int, int]) -> PreparedImage:
    """Pad normalised slices ``(C, Z, h, w)`` already at the model spacing; ``shape`` = input grid."""
    hw = (int(norm.shape[2]), int(norm.shape[3]))
    pad_h, pad_w = padded_hw(hw)
    net = torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32)).permute(1, 0, 2, 3)
    net = F.pad(net, (0, pad_w - hw[1], 0, pad_h - hw[0])).contiguous()
    return PreparedImage(net, shape, hw)


def slice_scores(out: DecoderOutput, groups: torch.Tensor, valid: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Per-group probabilities ``(B, G, h, w)``, class groups damped by their objectness."""
    probs = group_probabilities(out.mask_logits, groups, valid, num_groups)
    obj = torch.sigmoid(out.objectness.float()).masked_fill(~valid, 0)
    onehot = F.one_hot(groups, num_groups).to(obj.dtype)  # (B, K, G)
    group_obj = (onehot * obj.unsqueeze(-1)).amax(1)  # (B, G)
    group_obj[:, 0] = 1.0
    return probs * group_obj[:, :, None, None]


class FeatureCache:
    """Per-slice encoder features, computed in batches, kept under ``max_bytes`` (LRU)."""

    def __init__(self, model: S2VNet, prepared: PreparedImage, device: torch.device, max_bytes: int = 1 << 30,
                 batch: int = 8) -> None:
        self.model, self.prepared, self.device = model, prepared, device
        self.max_bytes, self.batch = max_bytes, batch
        self._feats: OrderedDict[int, dict[int, torch.Tensor]] = OrderedDict()
        self._bytes = 0

    def __contains__(self, z: int) -> bool:
        return z in self._feats

    def __len__(self) -> int:
        return len(self._feats)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @torch.inference_mode()
    def compute(self, zs: list[int]) -> None:
        todo = [z for z in zs if z not in self._feats]
        for i in range(0, len(todo), self.batch):
            chunk = todo[i : i + self.batch]
            feats = self.model.encode(self.prepared.net[chunk].to(self.device))
            for j, z in enumerate(chunk):
                item = {s: f[j : j + 1].clone() for s, f in feats.items()}
                self._feats[z] = item
                self._bytes += sum(t.numel() * t.element_size() for t in item.values())
        keep = set(zs)
        while self._bytes > self.max_bytes and next(iter(self._feats)) not in keep:
            _, old = self._feats.popitem(last=False)
            self._bytes -= sum(t.numel() * t.element_size() for t in old.values())

    def get(self, z: int, ahead: list[int] | tuple[int, ...] = ()) -> dict[int, torch.Tensor]:
        """Features of slice ``z``; on a miss, ``ahead`` (the next slices to visit) is encoded too."""
        if z not in self._feats:
            z_count = self.prepared.net.shape[0]
            zs = [z] + [a for a in ahead if 0 <= a < z_count and a not in self._feats][: self.batch - 1]
            self.compute(zs)
        self._feats.move_to_end(z)
        return self._feats[z]
