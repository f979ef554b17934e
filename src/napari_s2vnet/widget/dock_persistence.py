"""Save, autosave and restore for the S2VNet dock (:class:`DockPersistence`, a mixin of ``S2VNetDock``).

Autosave runs after every round: the labels and the state are snapshotted on the main thread and
written by a one-thread pool (atomic writes, see :mod:`.autosave`), so the UI never waits for disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QFileDialog

from napari_s2vnet.inference.prompts import prompt_from_dict, prompt_to_dict
from napari_s2vnet.widget import autosave
from napari_s2vnet.widget.dock_ui import count_text
from napari_s2vnet.widget.reader import META_KEY
from napari_s2vnet.widget.writer import atomic_write_labels


class DockPersistence:
    """Save / autosave / restore; expects the attributes set by ``S2VNetDock.__init__``."""

    def _default_save_path(self: Any) -> Path:
        meta = self.image_layer.metadata.get(META_KEY, {}) if self.image_layer is not None else {}
        source = meta.get("source")
        if source and not autosave._inside_package(Path(source)):
            src = Path(source)
            return src.with_name(f"{autosave._stem(src.name)}_s2vnet.nii.gz")
        return Path.home() / f"{autosave._stem(self.image_layer.name) if self.image_layer else 'labels'}_s2vnet.nii.gz"

    def save_labels(self: Any, path: str | Path | None = None) -> Path | None:
        """Write the labels as NIfTI on the source grid (or TIFF by extension); asks for a path if none."""
        if self.labels_layer is None or self.image_layer is None:
            self._set_status("nothing to save")
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save S2VNet labels", str(self._default_save_path()), "NIfTI (*.nii.gz *.nii);;TIFF (*.tif *.tiff)"
            )
            if not chosen:
                return None
            path = chosen
        out = atomic_write_labels(path, np.asarray(self.labels_layer.data), self.image_layer.metadata, tuple(self.image_layer.scale))
        self._set_status(f"saved {out}")
        return out

    def _update_sidecar(self: Any) -> None:
        img = self.image_layer
        meta = img.metadata.get(META_KEY, {}) if isinstance(img.metadata, dict) else {}
        self.sidecar = autosave.default_sidecar(meta.get("source"), img.name, self.fingerprint, self.autosave_root)
        self.autosave_label.setText(f"Autosave: {self.sidecar}")
        self._found_autosave = autosave.find(self.sidecar, self.fingerprint)
        if self._found_autosave is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self._found_autosave.saved_at))
            self.restore_label.setText(f"Autosave of this image from {when} ({count_text(len(self._found_autosave.classes), 'class', 'classes')}).")
        self.restore_row.setVisible(self._found_autosave is not None)

    def _choose_autosave_root(self: Any) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder")
        if folder:
            self.set_autosave_root(folder)

    def set_autosave_root(self: Any, folder: str | None) -> None:
        """Autosave into ``folder`` instead of next to the image."""
        self.autosave_root = folder
        if self.image_layer is not None:
            self._update_sidecar()

    def _state(self: Any) -> autosave.AutosaveState:
        return autosave.AutosaveState(
            fingerprint=self.fingerprint,
            image_name=self.image_layer.name if self.image_layer else "",
            model_id=self.model_info.model_id if self.model_info else None,
            classes=[autosave.ClassEntry(e.label, e.name, list(e.color), e.from_model) for e in self.classes.entries.values()],
            clicks=[prompt_to_dict(p) for p in list(self.prompts) + list(self.restored_clicks)],
            rounds=self.rounds,
        )

    def schedule_autosave(self: Any) -> None:
        """Snapshot labels + state now (main thread), write them on a background thread."""
        if self.sidecar is None or self.labels_layer is None or self.image_layer is None:
            return
        labels = np.array(self.labels_layer.data, copy=True)
        state, folder = self._state(), self.sidecar
        metadata, scale = dict(self.image_layer.metadata), tuple(self.image_layer.scale)
        previous = self._autosave_future

        def job() -> Path:
            if previous is not None:
                previous.result()
            return autosave.save(folder, labels, state, metadata, scale)

        self._autosave_future = self._autosave_pool.submit(job)

    def autosave_wait(self: Any, timeout: float = 30.0) -> Path | None:
        """Block until the last autosave is written (tests, closing)."""
        future = self._autosave_future
        return future.result(timeout) if future is not None else None

    def restore_autosave(self: Any) -> bool:
        """Load the autosaved labels, classes and clicks of this image into the dock and the session."""
        state = self._found_autosave
        if state is None or self.sidecar is None or self.image_layer is None:
            return False
        labels = autosave.load_labels(self.sidecar, self.image_layer.metadata, self.image_layer.data.shape,
                                     self.image_layer.scale, state)
        for entry in state.classes:
            self.classes.add_class(entry.name, entry.label, entry.color, create_points=False)
        self.labels_layer.data[...] = labels
        self.labels_layer.refresh()
        self.restored_clicks = [prompt_from_dict(c) for c in state.clicks]  # shown now; in effect once the session has them
        self._show_prompts()
        self.rounds = state.rounds
        if self.token >= 0:
            self.worker.restore(labels, list(self.restored_clicks), self.locked_labels())
        self.restore_row.setVisible(False)
        self._set_status(f"restored the autosave from {self.sidecar}")
        return True
