"""The S2VNet dock widget: image + model selection, class list, clicks, propagation, undo, save.

Threading: the model lives on :class:`~napari_s2vnet.widget.worker.ModelWorker`'s one persistent
thread. This widget (main thread) submits tasks and applies the results it receives as queued Qt
signals: it writes labels slice by slice into its Labels layer and refreshes only when the changed
slice is on screen (or in 3D view). Every result carries a session token; results of a previous
image are dropped.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QWidget

from napari_s2vnet.inference.prompts import Prompt
from napari_s2vnet.inference.state import Click
from napari_s2vnet.widget import autosave
from napari_s2vnet.widget.dock_persistence import DockPersistence
from napari_s2vnet.widget.dock_prompts import DockPrompts
from napari_s2vnet.widget.dock_ui import BUNDLED, FROM_FILE, DockUI, count_text
from napari_s2vnet.widget.dock_view import DockView
from napari_s2vnet.widget.reader import META_KEY
from napari_s2vnet.widget.worker import ModelInfo, ModelWorker, TaskResult

LABELS_NAME = "S2VNet labels"


class S2VNetDock(DockUI, DockPersistence, DockPrompts, DockView, QWidget):
    """Dock widget of the plugin (npe2 widget contribution; ``napari_viewer`` is injected)."""

    def __init__(self, napari_viewer: Any, predictor: Any = None, load_default: bool = True) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = ModelWorker(self)
        self.model_info: ModelInfo | None = None
        self.image_layer: Any = None
        self.labels_layer: Any = None
        self.token = -1
        self.pending: list[Prompt] = []  # clicks, boxes and scribbles not yet sent to the worker
        self.restored_clicks: list[Prompt] = []  # autosaved prompts shown, not yet in effect
        self.clicks: list[Click] = []  # clicks in effect in the session
        self.prompts: list[Prompt] = []  # prompts in effect in the session (a box: one prompt)
        self._in_flight: list[tuple[list[Prompt], list[Prompt]]] = []  # sent, not done: (added, removed)
        self.doubt: np.ndarray | None = None  # (Z,) review scores of the session's labels
        self.visited: set[int] = set()  # slices checked since the last round ("Next slice to check")
        self.rounds = 0
        self.features_ready = False
        self.last_error = ""
        self.last_warning = ""
        self._warned: set[str] = set()  # warnings already shown for the current image
        self.fingerprint = ""
        self.sidecar: Path | None = None
        self.autosave_root: str | None = None
        self._found_autosave: autosave.AutosaveState | None = None
        self._hand_edited = False
        self._painted: set[int] = set()
        self._progress: dict[str, Any] = {}
        self._needs_refresh = False
        self._bound_keys: list[str] = []
        self._autosave_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2vnet-autosave")
        self._autosave_future: concurrent.futures.Future | None = None
        self._closed = False
        self._view_fitted = False
        self._fitted_camera: tuple[float, tuple] | None = None  # the camera as the docking re-fit left it

        self._build_ui()
        self._connect_worker()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(30)
        self._refresh_timer.timeout.connect(self._refresh_labels)
        self._round_timer = QTimer(self)
        self._round_timer.setSingleShot(True)
        self._round_timer.setInterval(120)
        self._round_timer.timeout.connect(self.submit_round)

        self.viewer.layers.events.inserted.connect(self._update_image_choices)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.changed.connect(self._update_image_choices)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.dims.events.ndisplay.connect(self._on_ndisplay)
        self._bind_keys()
        self.destroyed.connect(lambda *_: self.cleanup())

        self._update_image_choices()
        if predictor is not None:
            self.set_predictor(predictor)
        elif load_default:
            self.load_model(None)

    # ================================================================== model
    def _on_model_choice(self, index: int) -> None:
        if self.model_combo.itemText(index) == FROM_FILE:
            path, _ = QFileDialog.getOpenFileName(self, "S2VNet weights", "", "Weights (*.safetensors)")
            if not path:
                self.model_combo.setCurrentIndex(0 if self._model_source is None else self.model_combo.count() - 1)
                return
            self.load_model(path)
        elif self.model_combo.itemText(index) == BUNDLED:
            self.load_model(None)
        else:
            self.load_model(self.model_combo.itemText(index))

    def load_model(self, source: str | None) -> None:
        """Load the bundled weights (``None``) or a ``.safetensors`` file on the chosen device."""
        self._model_source = source
        if source and self.model_combo.findText(source) < 0:
            self.model_combo.addItem(source)
        if source:
            self.model_combo.setCurrentIndex(self.model_combo.findText(source))
        self._set_status("loading model…")
        self.worker.load_model(source, self.device_combo.currentText())

    def set_predictor(self, predictor: Any) -> None:
        """Use an already built ``Predictor`` (tests, scripting)."""
        self.worker.set_predictor(predictor)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self.classes.set_model_classes(info.class_names)
        cpu = info.device.startswith("cpu")
        self.device_note.setText("Running on CPU: feature caching and propagation are slower than on a GPU." if cpu else "")
        self.device_note.setVisible(cpu)
        names = ", ".join(sorted(info.class_names.values())) or "none"
        self._set_status(f"model ready: {count_text(len(info.class_names), 'class', 'classes')} on {info.device}",
                         f"model {info.model_id}\nclasses: {names}")
        if self.image_layer is not None:
            if self.token >= 0:  # a new model: the labels carry over, the old clicks are display only
                self.restored_clicks, self.clicks, self.prompts = self.prompts + self.restored_clicks, [], []
            self._start_session(keep_labels=True)

    def _on_worker_error(self, context: str, message: str) -> None:
        self.last_error = f"{context}: {message}"
        self._set_status(f"Error ({context}): {message}")
        self._close_progress()
        self._notify(f"S2VNet {context}: {message}")

    def _on_worker_warning(self, context: str, message: str) -> None:
        """One notification per distinct warning and image (a warning repeated by every round shows once)."""
        if message in self._warned:
            return
        self._warned.add(message)
        self.last_warning = message
        self._set_status(f"Warning ({context}): {message}")
        self._notify(f"S2VNet: {message}")

    @staticmethod
    def _notify(text: str) -> None:
        """A napari warning notification (nothing where napari's notifications are unavailable)."""
        try:
            from napari.utils.notifications import show_warning

            show_warning(text)
        except Exception:
            pass

    # ================================================================== images / session
    def _image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [l for l in self.viewer.layers if isinstance(l, Image) and l.ndim == 3 and not l.rgb]

    def _update_image_choices(self, *_: Any) -> None:
        if self._closed:
            return
        layers = self._image_layers()
        names = [l.name for l in layers]
        current = self.image_combo.currentText()
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentIndex(names.index(current))
        self.image_combo.blockSignals(False)
        if names and (self.image_layer is None or self.image_layer not in layers):
            self.image_combo.setCurrentIndex(names.index(current) if current in names else 0)
            self._on_image_choice(self.image_combo.currentIndex())

    def _on_layer_removed(self, event: Any) -> None:
        if self._closed:
            return
        if getattr(event, "value", None) is self.labels_layer:
            self.labels_layer = None
        if getattr(event, "value", None) is self.image_layer:
            self.image_layer = None
            self.worker.close_session()
            self.token = -1
        self._update_image_choices()

    def _on_image_choice(self, index: int) -> None:
        layers = {l.name: l for l in self._image_layers()}
        layer = layers.get(self.image_combo.itemText(index))
        if layer is None or layer is self.image_layer:
            return
        self.select_image(layer)

    def select_image(self, layer: Any) -> None:
        """Use ``layer`` as the image: new session, labels layer, autosave lookup, feature caching."""
        self.autosave_wait()
        self.image_layer = layer
        if self.image_combo.currentText() != layer.name:
            self.image_combo.blockSignals(True)
            self.image_combo.setCurrentIndex(self.image_combo.findText(layer.name))
            self.image_combo.blockSignals(False)
        data = np.asarray(layer.data)
        self.classes.set_grid(data.shape, tuple(layer.scale))
        self.classes.clear()
        self.pending.clear()
        self.restored_clicks = []
        self.clicks = []
        self.prompts, self._in_flight = [], []
        self.rounds = 0
        self._hand_edited = False
        self._painted = set()
        self._set_doubt(None)
        has_labels = self._make_labels_layer()
        meta = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
        self.fingerprint = autosave.image_fingerprint(data, meta.get("affine"))
        self._update_sidecar()
        self._start_session(keep_labels=has_labels)

    def _make_labels_layer(self) -> bool:
        """Find this image's S2VNet Labels layer or create one; True if it already holds labels.

        Each image keeps its own labels layer (switching images never discards work).
        """
        img = self.image_layer
        shape = tuple(img.data.shape)
        meta = dict(img.metadata.get(META_KEY, {})) if isinstance(img.metadata, dict) else {}
        meta.update({"kind": "s2vnet_labels", "image": img.name})
        existing = None
        for layer in self.viewer.layers:
            lmeta = layer.metadata.get(META_KEY, {}) if isinstance(layer.metadata, dict) else {}
            if (lmeta.get("kind") == "s2vnet_labels" and lmeta.get("image") == img.name
                    and tuple(layer.data.shape) == shape):
                existing = layer
        if self.labels_layer is not None and self.labels_layer is not existing:
            try:
                self.labels_layer.events.paint.disconnect(self._on_paint)
            except Exception:
                pass
        if existing is None:
            existing = self.viewer.add_labels(
                np.zeros(shape, dtype=np.uint16), name=LABELS_NAME, scale=tuple(img.scale), opacity=0.55,
                metadata={META_KEY: meta},
            )
        self.labels_layer = existing
        self.labels_layer.events.paint.disconnect(self._on_paint)
        self.labels_layer.events.paint.connect(self._on_paint)
        self._apply_colormap()
        self.viewer.layers.selection.active = self.image_layer
        return bool(np.any(self.labels_layer.data))

    def _start_session(self, keep_labels: bool) -> None:
        if self.image_layer is None or self.model_info is None:
            if self.image_layer is not None:
                self._set_status("waiting for the model…")
            return
        img = self.image_layer
        meta = img.metadata.get(META_KEY, {}) if isinstance(img.metadata, dict) else {}
        data = np.asarray(img.data, dtype=np.float32)
        modality = meta.get("modality")
        if modality not in ("CT", "MR"):
            from napari_s2vnet.data.io import guess_modality

            modality = guess_modality(data)
        labels = np.array(self.labels_layer.data, copy=True) if keep_labels and self.labels_layer is not None else None
        self._close_progress()
        self.features_ready = False
        self._warned.clear()
        # the progress bar first: creating it can process Qt events, and a fast cache could otherwise
        # report "done" before the bar exists (which then never closed)
        self._open_progress("features", data.shape[0], "S2VNet: caching slice features")
        self.token = self.worker.open_session(data, tuple(float(s) for s in img.scale[-3:]), modality, labels)
        self._apply_limits()  # this slice only, slice range: the new session starts with the dock's
        self._on_step()
        self._set_status(f"{img.name}: caching slice features…")

    def _on_session_ready(self, token: int) -> None:
        if token == self.token and self.model_info is not None:
            self._set_status(f"{self.image_layer.name if self.image_layer else ''}: ready for clicks (features caching)")

    def _on_features_progress(self, token: int, done: int, total: int) -> None:
        if token != self.token:
            return
        self._update_progress("features", done, total)

    def _on_features_done(self, token: int, ok: bool) -> None:
        if token != self.token:
            return
        self.features_ready = ok
        self._close_progress("features")
        name = self.image_layer.name if self.image_layer else ""
        if not ok:
            self._set_status(f"{name}: feature caching stopped (slices are encoded when needed)")
        elif self.rounds == 0:
            self._set_status(f"{name}: features cached; add a class and click")

    def stop(self) -> None:
        """Cancel feature caching and running propagation / auto-segmentation (partial results kept)."""
        self._round_timer.stop()
        self.worker.stop()
        self._set_status("stopping…")

    def _on_step(self, *_: Any) -> None:
        if self._closed or self.image_layer is None:
            return
        z = self.current_slice()
        if z is not None:
            self.worker.set_focus(z)
            self.review_strip.set_current(z)
        if self._needs_refresh:
            self._refresh_timer.start()

    def current_slice(self) -> int | None:
        """Index of the axial slice on screen (internal ``z``)."""
        if self.image_layer is None:
            return None
        try:
            data_pos = self.image_layer.world_to_data(self.viewer.dims.point)
        except Exception:
            return None
        z = int(round(float(data_pos[-3])))
        return min(max(z, 0), self.image_layer.data.shape[0] - 1)

    def _on_ndisplay(self, *_: Any) -> None:
        self._refresh_timer.start()

    # ================================================================== progress
    def _open_progress(self, key: str, total: int, desc: str) -> None:
        from napari.utils import progress

        self._close_progress(key)
        self._progress[key] = progress(total=max(1, int(total)), desc=desc)

    def _update_progress(self, key: str, done: int, total: int | None = None) -> None:
        pbar = self._progress.get(key)
        if pbar is None:
            return
        if total is not None and pbar.total != total:
            pbar.total = max(1, int(total))
        pbar.n = min(int(done), pbar.total)
        pbar.refresh()

    def _close_progress(self, key: str | None = None) -> None:
        keys = [key] if key else list(self._progress)
        for k in keys:
            pbar = self._progress.pop(k, None)
            if pbar is not None:
                pbar.close()

    # ================================================================== clicks and rounds
    def _on_negative_toggled(self, on: bool) -> None:
        self.classes.negative_mode = self.shapes.negative_mode = bool(on)

    def _on_click_added(self, label: int, z: int, y: int, x: int, positive: bool) -> None:
        self._queue_prompt(Click(z, y, x, label, positive))

    def _flush_hand_edits(self) -> None:
        """Import labels painted by hand as a round (locked unless 'overwrite' is chosen)."""
        if not self._hand_edited or self.labels_layer is None:
            return
        self._hand_edited = False
        locked = self.locked_labels()
        self.worker.set_labels(np.array(self.labels_layer.data, dtype=np.uint16, copy=True), locked)

    def locked_labels(self) -> set[int]:
        """Labels the model must not overwrite: locked classes and hand-painted ones."""
        if self.overwrite_check.isChecked():
            return set()
        return set(self.classes.locked_labels()) | set(self._painted)

    def _on_lock_changed(self, *_: Any) -> None:
        if self.token >= 0:
            self.worker.set_locked(self.locked_labels())

    def _ready(self) -> bool:
        if self.token < 0 or self.model_info is None:
            self._set_status("load a model and select an image first")
            return False
        return True

    def submit_round(self, propagate: bool | None = None) -> bool:
        """Send the pending clicks of all classes as ONE round (clicked slices first, then propagation)."""
        self._round_timer.stop()
        if not self.pending or not self._ready():
            return False
        self._flush_hand_edits()
        clicks, self.pending = list(self.pending), []
        run_propagation = self.live_check.isChecked() if propagate is None else propagate
        self._in_flight.append((clicks, []))
        # the progress bar and the status first: opening a bar can process Qt events, the task's
        # results among them, which a later "running…" would then overwrite (and the bar stay open)
        if run_propagation:
            self._open_progress("propagate", self.image_layer.data.shape[0], "S2VNet: propagating")
        self._set_status(f"running {len(clicks)} prompt(s)…")
        self.worker.round(clicks, propagate=run_propagation)
        return True

    def propagate(self) -> None:
        """Run the pending clicks with propagation, or re-propagate the last round."""
        if self.pending:
            self.submit_round(propagate=True)
        elif self._ready():
            self._open_progress("propagate", self.image_layer.data.shape[0], "S2VNet: propagating")
            self.worker.propagate()

    def auto_segment(self, classes: list[int] | None = None) -> None:
        """Automatic result (checked model classes, or all) as the new state that clicks refine."""
        if not self._ready():
            return
        if classes is None:
            checked = [c for c in self.classes.checked_labels() if c in self.model_info.class_names]
            classes = checked or None
        for label in classes or sorted(self.model_info.class_names):
            if label not in self.classes.entries:
                self.classes.add_class(self.model_info.class_names[label], label, create_points=False)
        self._flush_hand_edits()
        self.pending.clear()
        self._open_progress("auto", self.image_layer.data.shape[0], "S2VNet: auto-segmenting")
        self._set_status("auto-segmenting…")
        self.worker.auto(classes)

    def undo(self) -> None:
        """Undo the last round (pending, not yet run clicks are dropped first)."""
        if self.pending:
            self.pending.clear()
            self._round_timer.stop()
            self._show_prompts()
            return
        if self._ready():
            self.worker.undo()

    def redo(self) -> None:
        if self._ready():
            self.worker.redo()

    def reset_class(self, label: int | None = None) -> None:
        """Remove the clicks and voxels of a class (the selected one by default) as one round."""
        label = self.classes.selected_label() if label is None else label
        if label is None or not self._ready():
            self._set_status("select a class to reset")
            return
        self.pending = [c for c in self.pending if c.label != label]
        self.restored_clicks = [c for c in self.restored_clicks if c.label != label]
        self._painted.discard(label)
        self._flush_hand_edits()
        self.worker.remove_class(int(label))

    # ================================================================== results (main thread)
    def _connect_worker(self) -> None:
        w = self.worker
        w.model_loaded.connect(self._on_model_loaded)
        w.error.connect(self._on_worker_error)
        w.warning.connect(self._on_worker_warning)
        w.session_ready.connect(self._on_session_ready)
        w.features_progress.connect(self._on_features_progress)
        w.features_done.connect(self._on_features_done)
        w.slices.connect(self._on_slices)
        w.task_done.connect(self._on_task_done)

    def _on_slices(self, token: int, kind: str, items: dict[int, np.ndarray]) -> None:
        if token != self.token or self.labels_layer is None:
            return
        data = self.labels_layer.data
        on_screen = self.current_slice()
        for z, labels in items.items():
            data[z] = labels
            if z == on_screen or self.viewer.dims.ndisplay == 3:
                self._needs_refresh = True
        if kind in ("propagate", "auto"):
            pbar = self._progress.get(kind)
            if pbar is not None:
                self._update_progress(kind, pbar.n + len(items))
        if self._needs_refresh and not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _refresh_labels(self) -> None:
        if self.labels_layer is None or self._closed:
            return
        self._needs_refresh = False
        self.labels_layer.refresh(thumbnail=False, extent=False, highlight=False)

    def _on_task_done(self, token: int, kind: str, info: TaskResult) -> None:
        if token != self.token:
            return
        self.clicks, self.prompts = list(info.clicks), list(info.prompts)
        self._task_prompts_done(kind)
        self._set_doubt(info.doubt)
        if kind == "restore":  # the restored clicks are now the session's own
            self.restored_clicks = []
            self._show_prompts()
        self._close_progress("propagate" if kind in ("round", "propagate", "prompts") else kind)
        if kind in ("undo", "redo", "remove_class", "prompts") or info.error:
            self._show_prompts()
            if info.error:
                self._set_status(f"clicks not used: {info.error}")
                return
            if kind != "remove_class" and not info.changed:
                self._set_status(f"nothing to {kind}")
                return
        self.rounds += 1
        if self._needs_refresh:
            self._refresh_labels()
        done = "cancelled (superseded)" if info.cancelled else "done"
        self._set_status(f"{kind} {done}; round {self.rounds}")
        if kind not in ("set_labels", "restore"):
            self.schedule_autosave()

    # ================================================================== review guidance
    def _set_doubt(self, doubt: np.ndarray | None) -> None:
        """New review scores (after every task): the slices checked so far count as unchecked again."""
        self.doubt = None if doubt is None else np.asarray(doubt, dtype=np.float32)
        self.visited = set()
        self.review_strip.set_scores(self.doubt)
        self.review_strip.set_current(self.current_slice())

    def next_slice_to_check(self) -> int | None:
        """Go to the most doubtful slice not checked since the last round (the order of
        ``Session.uncertain_slices``, on the dock's copy of the scores); None when none is left."""
        if self.doubt is None or self.image_layer is None:
            self._set_status("nothing to check yet: click or auto-segment first")
            return None
        order = [int(z) for z in np.argsort(-self.doubt, kind="stable") if self.doubt[z] > 0 and int(z) not in self.visited]
        if not order:
            self._set_status("every doubtful slice has been checked since the last round")
            return None
        z = order[0]
        self.go_to_slice(z)
        rank = int((self.doubt > self.doubt[z]).sum()) + 1
        self._set_status(f"slice {z}: doubt rank {rank} of {int((self.doubt > 0).sum())}; "
                         f"{len(order) - 1} doubtful slice(s) left to check")
        return z

    def go_to_slice(self, z: int) -> None:
        """Show axial slice ``z`` (internal index) and count it as checked."""
        if self.image_layer is None:
            return
        z = int(min(max(z, 0), self.image_layer.data.shape[0] - 1))
        world = self.image_layer.data_to_world([z, 0, 0])
        self.viewer.dims.set_point(self.viewer.dims.ndim - 3, float(world[0]))
        self.visited.add(z)
        self.review_strip.set_current(z)

    def _on_paint(self, event: Any) -> None:
        """Hand painting in the Labels layer: imported (and locked) before the next round."""
        self._hand_edited = True
        for atom in getattr(event, "value", []) or []:
            new = getattr(atom, "new_value", None)  # napari 0.9 masked atoms
            if new is None:
                try:
                    new = atom[2]  # (indices, old values, new value)
                except (IndexError, TypeError):
                    continue
            values = np.unique(np.asarray(new)).tolist()
            self._painted.update(int(v) for v in values if int(v) != 0)

    def _apply_colormap(self) -> None:
        if self.labels_layer is not None and self.labels_layer in self.viewer.layers:
            self.labels_layer.colormap = self.classes.colormap()

    # ================================================================== teardown
    def cleanup(self) -> None:
        """Stop the worker, unbind keys and disconnect from the viewer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._round_timer.stop()
            self._refresh_timer.stop()
        except RuntimeError:
            pass
        self._close_progress()
        for emitter, callback in (
            (self.viewer.layers.events.inserted, self._update_image_choices),
            (self.viewer.layers.events.removed, self._on_layer_removed),
            (self.viewer.layers.events.changed, self._update_image_choices),
            (self.viewer.dims.events.current_step, self._on_step),
            (self.viewer.dims.events.ndisplay, self._on_ndisplay),
        ):
            try:
                emitter.disconnect(callback)
            except Exception:
                pass
        self._unbind_keys()
        self.worker.shutdown()
        try:
            self.autosave_wait()
        except Exception:
            pass
        self._autosave_pool.shutdown(wait=True)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        self.cleanup()
        super().closeEvent(event)
