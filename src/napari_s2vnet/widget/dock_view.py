"""Scripting waits and the view fit of the S2VNet dock (:class:`DockView`, a mixin of ``S2VNetDock``).

* :meth:`DockView.wait_ready` / :meth:`DockView.wait_idle`: for scripts and notebooks, which drive
  the dock from the main thread while the model works on its worker thread (Qt events are processed
  while waiting, the worker's errors raised).
* The first time the dock is shown, a view napari had fitted before the dock narrowed the canvas is
  fitted again (an image opened before the dock would otherwise stay cropped until Home).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

#: the docking re-fit is repeated after this delay (ms) if the view was not touched meanwhile
REFIT_AGAIN_MS = 300


class DockView:
    """Waits and view fit; the dock provides ``viewer``, ``worker``, ``model_info``, ``image_layer``,
    ``token``, ``last_error``, ``_round_timer``, ``_closed``, ``_view_fitted``, ``_fitted_camera``."""

    def wait_ready(self: Any, timeout: float = 120.0) -> None:
        """Return once the model is loaded and, when an image is selected, its session is open, so
        that ``classes.add_class("liver")`` gets the model's id and clicks are taken.

        Processes Qt events while it waits (call it from the main thread, e.g. a script or notebook).
        Raises ``TimeoutError`` after ``timeout`` s and ``RuntimeError`` if the worker reports an error.
        """
        self._wait_for(lambda: self.model_info is not None and (self.image_layer is None or self.token >= 0),
                       timeout, "the model to load")

    def wait_idle(self: Any, timeout: float = 600.0) -> None:
        """Return once the worker has finished everything asked of it: the clicks made so far (their
        round and propagation, with *live* on), Auto-segment, Undo/Redo, feature caching; the
        layers then hold the results. Same rules as :meth:`wait_ready`."""
        self.wait_ready(timeout)
        self._wait_for(lambda: not self._round_timer.isActive() and self.worker.idle(), timeout, "the worker")

    def _wait_for(self: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
        error, deadline = self.last_error, time.monotonic() + timeout
        while True:
            QApplication.processEvents()  # the worker's results and errors arrive as queued signals
            if self.last_error != error:
                raise RuntimeError(f"S2VNet {self.last_error}")
            if condition():
                QApplication.processEvents()  # what the worker sent last, an error among it
                if self.last_error != error:
                    raise RuntimeError(f"S2VNet {self.last_error}")
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"S2VNet: waited {timeout:g} s for {what}")
            time.sleep(0.01)

    # ------------------------------------------------------------------ view
    def showEvent(self: Any, event: Any) -> None:  # noqa: N802 (Qt name)
        """The first time the dock is shown, a view the user has not panned is re-fitted to the
        narrower canvas once the layout settles: an image opened before the dock would otherwise
        stay cropped left and right until Home."""
        super().showEvent(event)
        if not self._view_fitted:
            self._view_fitted = True
            if self._view_is_centred():
                QTimer.singleShot(0, self._fit_view)
                # the dock's layout can resize the canvas once more after the first pass of events
                QTimer.singleShot(REFIT_AGAIN_MS, self._fit_view_if_untouched)

    def _view_is_centred(self: Any) -> bool:
        """Whether the camera is centred where Home (``reset_view``) puts it, i.e. napari's own fit
        when the image was added, made for a canvas that may since have changed size (zooming with
        the mouse or panning moves the centre)."""
        if not len(self.viewer.layers):
            return False
        camera = self.viewer.camera
        zoom, center, angles = float(camera.zoom), tuple(camera.center), tuple(camera.angles)
        self.viewer.reset_view()
        fitted = np.asarray(camera.center, dtype=float)
        camera.zoom, camera.center, camera.angles = zoom, center, angles
        tol = 1e-3 * max(1.0, float(np.max(np.abs(fitted))))
        return bool(np.allclose(center, fitted, atol=tol))

    def _fit_view(self: Any) -> None:
        if not self._closed and len(self.viewer.layers):
            self.viewer.reset_view()
            camera = self.viewer.camera
            self._fitted_camera = (float(camera.zoom), tuple(camera.center))

    def _fit_view_if_untouched(self: Any) -> None:
        """Fit again, unless the user zoomed or panned since the first fit."""
        camera = self.viewer.camera
        if self._fitted_camera == (float(camera.zoom), tuple(camera.center)):
            self._fit_view()
