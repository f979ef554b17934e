"""napari-s2vnet: S2VNet clustering propagation for 3D medical image segmentation.

The engine (``model``, ``data``, ``train``, ``inference``, ``cli``) is pure PyTorch/NumPy and never
imports napari or Qt; the napari plugin lives in ``napari_s2vnet.widget``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
