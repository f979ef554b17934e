"""npe2 sample data: the bundled real abdominal CT and MR (with their reference labels) and a phantom."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_s2vnet.widget.reader import META_KEY, LayerData, geometry_metadata, volume_to_layer_data


def _real_sample(kind: str) -> list[LayerData]:
    from napari_s2vnet.data.io import read_volume
    from napari_s2vnet.data.samples import sample_class_names, sample_path

    image = read_volume(sample_path(kind), modality="CT" if kind == "ct" else "MR")
    labels = read_volume(sample_path(f"{kind}_labels"))
    if labels.geometry != image.geometry:  # the bundled pairs share a grid; keep the image's
        labels.geometry = image.geometry
    name = "abdomen CT" if kind == "ct" else "abdomen MR"
    image_layer = volume_to_layer_data(image, name)
    ref = volume_to_layer_data(labels, f"{name} reference labels", as_labels=True)
    ref[1]["metadata"][META_KEY]["class_names"] = {
        str(k): v for k, v in sample_class_names(kind, present_only=True).items()  # type: ignore[arg-type]
    }
    ref[1]["opacity"] = 0.4
    ref[1]["visible"] = False
    ref[1]["colormap"] = _dock_colormap(ref[0])
    return [image_layer, ref]


def _dock_colormap(labels: np.ndarray) -> Any:
    """The colours the dock gives these label ids (its default class colours), to compare by eye."""
    from napari_s2vnet.widget.classes_panel import default_color, label_colormap

    ids = np.unique(np.asarray(labels)).astype(int)
    return label_colormap({int(i): default_color(int(i)) for i in ids if i > 0})


def ct_sample() -> list[LayerData]:
    """Real abdominal CT (TotalSegmentator example, Apache-2.0) and its reference labels."""
    return _real_sample("ct")


def mr_sample() -> list[LayerData]:
    """Real abdominal MR (TotalSegmentator example, Apache-2.0) and its reference labels."""
    return _real_sample("mr")


def phantom_sample(seed: int = 0) -> list[LayerData]:
    """Procedural CT-like abdomen phantom (already internal order) and its labels."""
    from napari_s2vnet.data.phantom import make_phantom, phantom_geometry

    phantom = make_phantom(seed)
    geometry = phantom_geometry(phantom.spacing, phantom.image.shape)
    meta: dict[str, Any] = geometry_metadata(geometry, "CT", None)
    image_kwargs = {
        "name": f"phantom {seed}",
        "scale": tuple(geometry.internal_spacing),
        "metadata": {META_KEY: {**meta, "kind": "image"}},
        "contrast_limits": (-160.0, 240.0),
        "colormap": "gray",
    }
    label_meta = {**meta, "kind": "labels", "class_names": {str(k): v for k, v in phantom.class_names.items()}}
    label_kwargs = {
        "name": f"phantom {seed} labels",
        "scale": tuple(geometry.internal_spacing),
        "metadata": {META_KEY: label_meta},
        "opacity": 0.4,
        "visible": False,
        "colormap": _dock_colormap(phantom.labels),
    }
    return [
        (phantom.image, image_kwargs, "image"),
        (np.asarray(phantom.labels, dtype=np.uint8), label_kwargs, "labels"),
    ]
