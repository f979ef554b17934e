"""Inference: :class:`Predictor` (load once, automatic segmentation) and :class:`Session` (clicks)."""

from napari_s2vnet.inference.predictor import Predictor
from napari_s2vnet.inference.session import Session
from napari_s2vnet.inference.state import Click, SessionState

__all__ = ["Predictor", "Session", "Click", "SessionState"]
