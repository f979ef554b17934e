"""Targets of interactive episodes: "segment what I clicked", not "recognise these classes".

An interactive episode segments 1-3 *targets* at once; each is drawn from one of five kinds, so the
model learns to follow the user's clicks on structures that no label map names:

* ``class``: one labelled class (the only kind that also trains the class head);
* ``union``: a class together with 1-2 classes that touch it on the first slice;
* ``part``: one 3D connected component of a class (one kidney pole, one rib, one vessel branch);
* ``region``: a label-free supervoxel of the image (3D SLIC on the episode's slices, as the
  pseudo-masks used to train universal interactive models: SAM-Med3D, nnInteractive);
* ``lesion``: a synthetic lesion painted into an organ (or into the body where no organ is
  labelled): a 3D blob with an irregular border, its own contrast (hypo- or hyper-dense), a grainy
  texture and a soft margin, following label-free tumour synthesis (Hu et al., "Label-free liver
  tumor segmentation", CVPR 2023: shape from thresholded smooth noise inside an ellipsoid, texture
  from smoothed Gaussian noise, edge blurring; their liver-specific HU ranges are replaced here by a
  contrast relative to the host organ, so the same generator serves CT, MR and any organ). With
  ``lesion_donor`` > 0, that share of lesions instead takes the intensity of another tissue of the
  episode (a *donor* class that differs visibly from the host): a solid tumour in the lung has the
  density of soft tissue, whatever the lung's own spread, which a contrast relative to the host
  cannot give.

Every target must be visible on the episode's first slice (where the first click goes).
Shapes: images ``(T, C, S, S)``, labels ``(T, S, S)``; a target map ``(T, S, S)`` holds 0 for the
rest and ``g`` for target ``g`` (painted in order, later targets on top).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

KINDS = ("class", "union", "part", "region", "lesion")
KIND_WEIGHTS = (0.35, 0.1, 0.15, 0.15, 0.25)
MIN_AREA = 8  # pixels a target needs on the first slice


@dataclass
class EpisodeTargets:
    images: np.ndarray  # (T, C, S, S) with any synthetic lesion painted in
    targets: np.ndarray  # (T, S, S) int64, 0 = background, g = target g
    class_ids: list[int]  # per target: the label id when the kind is "class", else 0
    kinds: list[str]


def smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise smoothed with ``sigma`` (pixels), rescaled to unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def lesion_mask(shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float,
                z_scale: float, rng: np.random.Generator) -> np.ndarray:
    """A 3D blob ``(T, S, S)``: an ellipsoid (``radius`` px in-plane, ``radius / z_scale`` slices
    along z) whose border is made irregular by smooth noise."""
    t, h, w = shape
    z, y, x = np.ogrid[:t, :h, :w]
    ry, rx = radius * rng.uniform(0.7, 1.3, size=2)
    dist = ((z - centre[0]) * z_scale / radius) ** 2 + ((y - centre[1]) / ry) ** 2 + ((x - centre[2]) / rx) ** 2
    rough = 0.35 * smooth_noise(shape, max(1.0, radius / 3), rng)
    return np.sqrt(dist) + rough * 0.3 < 1.0


def _host_region(host: np.ndarray) -> np.ndarray:
    """Where a lesion's host intensities are read: the host, or the whole episode under 21 voxels."""
    return host if host.sum() > 20 else np.ones_like(host)


def _spread(values: np.ndarray) -> float:
    return max(float(values.std()), 0.02)


def _soft_margin(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The lesion's blending weight: ``mask`` blurred by 0.5-1.5 px in-plane (0.3 slices along z)."""
    return ndimage.gaussian_filter(mask.astype(np.float32), (0.3, *(2 * [rng.uniform(0.5, 1.5)])))


def paint_lesion(images: np.ndarray, mask: np.ndarray, host: np.ndarray, rng: np.random.Generator,
                 value_range: tuple[float, float] | None = (0.0, 1.0), donor: np.ndarray | None = None) -> np.ndarray:
    """Images ``(T, C, S, S)`` with a lesion of contrast relative to ``host`` (a boolean region).

    Works on normalised network input (clipped to ``value_range``) and on raw intensities (HU or MR
    values, ``value_range=None``, one channel): the contrast is 1.5-5 standard deviations of the
    host's intensities, darker in 65 % of the draws. With a ``donor`` region (``(T, S, S)`` boolean,
    :func:`donor_tissue`) the lesion takes the donor's intensity instead: per channel its median, plus
    a texture of 0.3-1 times its standard deviation, blended in through the soft margin."""
    if donor is not None:
        return _paint_donor(images, mask, donor, rng, value_range)
    out = images.copy()
    region = _host_region(host)
    ch0 = images[:, 0][region]
    spread = _spread(ch0)
    sign = -1.0 if rng.random() < 0.65 else 1.0  # most lesions are hypo-intense on contrast CT
    delta = sign * rng.uniform(1.5, 5.0) * spread
    texture = rng.uniform(0.2, 0.8) * spread * smooth_noise(mask.shape, rng.uniform(0.6, 1.5), rng)
    margin = _soft_margin(mask, rng)
    change0 = margin * delta + mask * texture
    for c in range(images.shape[1]):
        vals = images[:, c][region]
        # each channel is a monotone map of the same intensity: carry the change with its local slope
        slope = 1.0 if c == 0 else float(np.cov(ch0, vals)[0, 1] / max(np.var(ch0), 1e-8))
        changed = images[:, c] + slope * change0
        out[:, c] = changed if value_range is None else np.clip(changed, *value_range)
    return out


def _paint_donor(images: np.ndarray, mask: np.ndarray, donor: np.ndarray, rng: np.random.Generator,
                 value_range: tuple[float, float] | None) -> np.ndarray:
    out = images.copy()
    noise = rng.uniform(0.3, 1.0) * smooth_noise(mask.shape, rng.uniform(0.6, 1.5), rng)
    margin = _soft_margin(mask, rng)
    for c in range(images.shape[1]):
        vals = images[:, c][donor]
        tissue = float(np.median(vals)) + float(vals.std()) * noise
        changed = images[:, c] + margin * (tissue - images[:, c])
        out[:, c] = changed if value_range is None else np.clip(changed, *value_range)
    return out


def donor_tissue(images: np.ndarray, labels: np.ndarray, host_id: int | None, host: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray | None:
    """A labelled class of the episode (``(T, S, S)`` boolean) whose median intensity differs from the
    host's by at least 1.5 host standard deviations (a lesion of its tissue is visible), drawn uniformly;
    None when no class does."""
    ch0 = images[:, 0]
    hosted = ch0[_host_region(host)]
    level, spread = float(np.median(hosted)), _spread(hosted)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    visible = [int(i) for i, n in zip(ids, counts) if i != host_id and n >= 4 * MIN_AREA
               and abs(float(np.median(ch0[labels == i])) - level) >= 1.5 * spread]
    return labels == int(rng.choice(visible)) if visible else None


def _supervoxels(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from skimage.segmentation import slic

    t = image.shape[0]
    spacing = (float(rng.uniform(1.0, 3.0)), 1.0, 1.0) if t > 1 else (1.0, 1.0, 1.0)
    return slic(image.astype(np.float64), n_segments=int(rng.integers(12, 48)), compactness=0.08,
                channel_axis=None, start_label=1, spacing=spacing)


def _pick_class(first: np.ndarray, rng: np.random.Generator, min_area: int) -> int | None:
    ids, counts = np.unique(first[first > 0], return_counts=True)
    ids = ids[counts >= min_area]
    return int(rng.choice(ids)) if len(ids) else None


def _target(kind: str, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            cache: dict, lesion_donor: float = 0.0) -> tuple[np.ndarray, int, np.ndarray | None] | None:
    """-> (mask (T,S,S), class id or 0, new images or None) for one target of ``kind``; None if impossible.
    ``lesion_donor``: the share of lesions painted with another tissue's intensity (:func:`donor_tissue`)."""
    first = labels[0]
    if kind in ("class", "union", "part"):
        cid = _pick_class(first, rng, MIN_AREA)
        if cid is None:
            return None
        mask = labels == cid
        if kind == "class":
            return mask, cid, None
        if kind == "union":
            ring = ndimage.binary_dilation(first == cid, iterations=2) & (first != cid) & (first > 0)
            neighbours = np.unique(first[ring])
            if not len(neighbours):
                return None
            chosen = rng.choice(neighbours, size=min(len(neighbours), int(rng.integers(1, 3))), replace=False)
            return np.isin(labels, [cid, *chosen.tolist()]), 0, None
        comps, n = ndimage.label(mask)
        if n < 2:
            return None
        ids, counts = np.unique(comps[0][comps[0] > 0], return_counts=True)
        ids = ids[counts >= MIN_AREA]
        return (comps == int(rng.choice(ids)), 0, None) if len(ids) else None
    if kind == "region":
        if "slic" not in cache:
            cache["slic"] = _supervoxels(images[:, 0], rng)
        seg = cache["slic"]
        body = images[0, -1] > 0.02  # not the zero padding around a crop
        ids, counts = np.unique(seg[0][body], return_counts=True)
        ids = ids[counts >= 4 * MIN_AREA]
        if not len(ids):
            return None
        return seg == int(rng.choice(ids)), 0, None
    # lesion: inside an organ large enough on the first slice, else anywhere in the body
    t, s = labels.shape[0], labels.shape[1]
    host_id = _pick_class(first, rng, 80)
    host = labels == host_id if host_id is not None else np.broadcast_to(images[:, 0, :, :].mean(0) > 0.05, labels.shape)
    inner = ndimage.binary_erosion(host[0], iterations=2) if host[0].any() else host[0]
    pts = np.argwhere(inner)
    if not len(pts):
        return None
    cy, cx = pts[rng.integers(len(pts))]
    depth = ndimage.distance_transform_edt(host[0])[cy, cx]
    radius = float(rng.uniform(2.0, max(2.5, min(12.0, 1.2 * depth))))
    mask = lesion_mask((t, s, s), (0.0, float(cy), float(cx)), radius, float(rng.uniform(0.5, 2.5)), rng)
    if host_id is not None and rng.random() < 0.8:
        mask &= ndimage.binary_dilation(host, iterations=1)  # most lesions stay inside their organ
    if mask[0].sum() < MIN_AREA:
        return None
    # the stream draws nothing more when lesion_donor is 0, so recipes without it replay exactly
    donor = donor_tissue(images, labels, host_id, host, rng) if lesion_donor and rng.random() < lesion_donor else None
    return mask, 0, paint_lesion(images, mask, host, rng, donor=donor)


def parse_mix(text: str) -> tuple[float, ...]:
    """``"class:1,lesion:0.25"`` -> a weight per kind of :data:`KINDS` (unnamed kinds 0); "" = default."""
    if not text:
        return KIND_WEIGHTS
    given = dict(item.split(":") for item in text.split(","))
    unknown = set(given) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown target kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
    weights = np.array([float(given.get(k, 0.0)) for k in KINDS])
    if weights.sum() <= 0:
        raise ValueError("the target mix needs a positive weight")
    return tuple(weights / weights.sum())


def episode_targets(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                    max_targets: int = 3, mix: tuple[float, ...] = KIND_WEIGHTS,
                    lesion_donor: float = 0.0) -> EpisodeTargets:
    """Draw 1..``max_targets`` targets of kinds drawn with weights ``mix`` for one episode (``lesion_donor``:
    the share of lesions with another tissue's intensity, :func:`donor_tissue`)."""
    wanted = int(rng.integers(1, max_targets + 1))
    targets = np.zeros(labels.shape, np.int64)
    class_ids: list[int] = []
    kinds: list[str] = []
    cache: dict = {}
    # lesions are painted last, on top of the other targets, so a drawn lesion is never covered
    draws = sorted((str(k) for k in rng.choice(KINDS, size=3 * wanted, p=mix)), key=lambda k: k == "lesion")
    draws += ["class", "region"]  # if every draw failed: the kinds that fit almost any episode
    for kind in draws:
        if len(kinds) == wanted:
            break
        made = _target(kind, images, labels, rng, cache, lesion_donor)
        if made is None:
            continue
        mask, cid, new_images = made
        if kind in ("class", "union", "part") and cid in class_ids and cid:
            continue
        if kind == "lesion" and (mask & np.isin(targets, [g + 1 for g, k in enumerate(kinds) if k == "lesion"])).any():
            continue
        if new_images is not None:
            images = new_images
        targets[mask] = len(kinds) + 1
        class_ids.append(cid)
        kinds.append(kind)
    # a later target may have covered an earlier one on the first slice: drop and renumber
    keep = [g for g in range(1, len(kinds) + 1) if (targets[0] == g).sum() >= MIN_AREA]
    remap = np.zeros(len(kinds) + 1, np.int64)
    remap[keep] = np.arange(1, len(keep) + 1)
    return EpisodeTargets(images, remap[targets], [class_ids[g - 1] for g in keep], [kinds[g - 1] for g in keep])
