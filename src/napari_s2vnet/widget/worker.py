"""The plugin's one persistent model thread.

A single ``threading.Thread`` owns the :class:`~napari_s2vnet.inference.Predictor` and the current
:class:`~napari_s2vnet.inference.Session` (a Session is not thread-safe: only this thread calls
it). The dock submits tasks to a queue; results come back through Qt signals, which Qt queues to
the main thread (the receivers are main-thread widgets), so only the main thread touches layers.

Cancellation: every interactive submission (a round of clicks, auto-segment, undo, redo, reset,
imported edits) bumps :attr:`ModelWorker.epoch`. Running propagation / auto loops compare their
epoch between slices and abandon their generator when superseded (the Session keeps the partial
result); feature caching yields to pending interactive tasks and resumes afterwards. The slice the
user looks at (:meth:`ModelWorker.set_focus`) is copied to ``session.focus`` between slices.
"""

from __future__ import annotations

import queue
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
from qtpy.QtCore import QObject, Signal

from napari_s2vnet.errors import InputError

#: task kinds that supersede running propagation and yield feature caching
INTERACTIVE = frozenset({"round", "propagate", "auto", "undo", "redo", "remove_class", "set_labels", "restore"})


@dataclass
class ModelInfo:
    """What the dock shows about the loaded model."""

    class_names: dict[int, str]
    model_id: str
    device: str


@dataclass
class ClickSpec:
    """A click in internal voxel indices (plain data: the worker builds the Session's ``Click``)."""

    z: int
    y: int
    x: int
    label: int
    positive: bool = True


@dataclass
class _Task:
    kind: str
    token: int
    epoch: int
    payload: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _clicks_as_dicts(clicks: list[Any]) -> list[dict[str, Any]]:
    out = []
    for c in clicks:
        out.append({"z": int(c.z), "y": int(c.y), "x": int(c.x), "label": int(c.label), "positive": bool(c.positive)})
    return out


class ModelWorker(QObject):
    """Persistent model thread with a task queue; results are emitted as Qt signals.

    Signals (all carry the session ``token`` so that the dock can drop results of a closed image):

    * ``model_loaded(ModelInfo)``, ``error(str context, str message)``
    * ``session_ready(token)``; ``features_progress(token, done, total)``; ``features_done(token, ok)``
    * ``slices(token, kind, {z: (Y, X) uint16 copy})``: new labels of some slices
    * ``volume(token, kind, labels (Z, Y, X) copy)``: the whole label volume (undo, redo, reset…)
    * ``task_done(token, kind, info)``: ``info`` = ``{"clicks": [...], "cancelled": bool, "changed": bool}``
    * ``busy(bool)``: the worker started / finished a task
    """

    model_loaded = Signal(object)
    error = Signal(str, str)
    session_ready = Signal(int)
    features_progress = Signal(int, int, int)
    features_done = Signal(int, bool)
    slices = Signal(int, str, object)
    volume = Signal(int, str, object)
    task_done = Signal(int, str, object)
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending_interactive = 0
        self.epoch = 0
        self.token = 0
        self._focus: int | None = None
        self._stop = False
        self.predictor: Any = None
        self.session: Any = None
        self._session_token = -1
        self._features_ready = False
        self._stop_features = False
        self._last_round: dict[int, set[int]] = {}  # start slice -> classes of the last round
        self._thread = threading.Thread(target=self._run, name="s2vnet-model", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ main-thread API
    def submit(self, kind: str, payload: Any = None, **extra: Any) -> int:
        """Queue a task for the current session; interactive tasks supersede running work."""
        with self._lock:
            if kind in INTERACTIVE:
                self.epoch += 1
                self._pending_interactive += 1
            task = _Task(kind, self.token, self.epoch, payload, extra)
        self._queue.put(task)
        return task.epoch

    def load_model(self, source: str | None, device: str) -> None:
        """Load the bundled weights (``source=None``) or a weights file on ``device``."""
        self._queue.put(_Task("model", self.token, self.epoch, (source, device)))

    def set_predictor(self, predictor: Any) -> None:
        """Use an already built predictor (tests, notebooks)."""
        self._queue.put(_Task("predictor", self.token, self.epoch, predictor))

    def open_session(self, image_zyx: np.ndarray, spacing_zyx: tuple[float, ...], modality: str, labels: np.ndarray | None = None) -> int:
        """Start a new session (new token): pending and running work of the old one is dropped."""
        with self._lock:
            self.token += 1
            self.epoch += 1
            token = self.token
        self._focus = None
        self._queue.put(_Task("session", token, self.epoch, (image_zyx, tuple(spacing_zyx), modality, labels)))
        return token

    def close_session(self) -> None:
        with self._lock:
            self.token += 1
            self.epoch += 1
        self._queue.put(_Task("close_session", self.token, self.epoch))

    def set_focus(self, z: int) -> None:
        """The slice the user looks at: done first by running propagation (applied between slices)."""
        self._focus = int(z)

    def stop(self) -> None:
        """The user's Stop: cancel running propagation / auto and feature caching (the Session keeps
        what was done; features of other slices are computed when needed)."""
        self._stop_features = not self._features_ready
        self.interrupt()

    def interrupt(self) -> None:
        """Supersede running propagation / auto without queuing anything."""
        with self._lock:
            self.epoch += 1

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread (running work is cancelled at the next slice)."""
        self._stop = True
        self.interrupt()
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def idle(self) -> bool:
        """No task queued or running (used by tests to wait)."""
        return self._queue.unfinished_tasks == 0

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None or self._stop:
                    return
                if task.kind in INTERACTIVE:
                    with self._lock:
                        self._pending_interactive -= 1
                self.busy.emit(True)
                self._dispatch(task)
            except Exception as exc:  # report, keep the thread alive
                message = f"{type(exc).__name__}: {exc}"
                self.error.emit(task.kind if task else "worker", message)
                traceback.print_exc()
            finally:
                self._queue.task_done()
                if self._queue.unfinished_tasks == 0:
                    self.busy.emit(False)

    def _stale(self, task: _Task) -> bool:
        return task.token != self.token or self._stop

    def _superseded(self, task: _Task) -> bool:
        return task.epoch != self.epoch or task.token != self.token or self._stop

    def _apply_focus(self) -> None:
        if self.session is not None and self._focus is not None:
            z = min(max(self._focus, 0), self.session.shape[0] - 1)
            if getattr(self.session, "focus", None) != z:
                self.session.focus = z

    def _dispatch(self, task: _Task) -> None:
        kind = task.kind
        if kind == "model":
            self._load_model(*task.payload)
            return
        if kind == "predictor":
            self.predictor = task.payload
            self._emit_model_info()
            return
        if kind == "close_session":
            self.session, self._session_token = None, -1
            return
        if self._stale(task):
            return
        if kind == "session":
            self._open_session(task)
            return
        if self.session is None or self._session_token != task.token:
            self.error.emit(kind, "no model session: load a model and select an image first")
            return
        handler: Callable[[_Task], None] = getattr(self, f"_do_{kind}")
        self._apply_focus()
        handler(task)

    def _emit_model_info(self) -> None:
        p = self.predictor
        device = str(getattr(p, "device", "cpu"))
        self.model_loaded.emit(ModelInfo(dict(p.class_names), str(getattr(p, "model_id", "?")), device))

    def _load_model(self, source: str | None, device: str) -> None:
        from napari_s2vnet.inference.predictor import Predictor

        # Predictor resolves "auto" (cuda, then mps, then cpu) and rejects unavailable devices
        self.predictor = Predictor.from_pretrained(device=device) if not source else Predictor.from_file(source, device=device)
        self._emit_model_info()

    def _open_session(self, task: _Task) -> None:
        image, spacing, modality, labels = task.payload
        if self.predictor is None:
            self.error.emit("session", "no model loaded")
            return
        self.session = None
        self.session = self.predictor.session(image, spacing, modality=modality)
        self._session_token = task.token
        self._last_round = {}
        self._features_ready = False
        if labels is not None and np.any(labels):
            self.session.set_labels(np.asarray(labels, dtype=np.uint16))
        self.session_ready.emit(task.token)
        self._queue.put(_Task("features", task.token, task.epoch))

    def _do_features(self, task: _Task) -> None:
        if self._features_ready:
            return
        token = task.token

        def progress(done: int, total: int) -> None:
            self.features_progress.emit(token, int(done), int(total))

        def cancel() -> bool:
            return self._pending_interactive > 0 or self._stale(task) or self._stop_features

        ok = bool(self.session.prepare_features(progress=progress, cancel=cancel))
        if ok:
            self._features_ready = True
            self.features_done.emit(token, True)
        elif self._stop_features:  # stopped by the user: features are then computed on demand
            self._stop_features = False
            self.features_done.emit(token, False)
        elif not self._stale(task):  # yielded to interactive work: resume after it
            self._queue.put(_Task("features", token, self.epoch))

    def _emit_slices(self, task: _Task, kind: str, items: dict[int, np.ndarray]) -> None:
        if items:
            self.slices.emit(task.token, kind, {int(z): np.array(s, dtype=np.uint16, copy=True) for z, s in items.items()})

    def _run_steps(self, task: _Task, kind: str, steps: Iterator[tuple[int, np.ndarray]]) -> bool:
        """Drive a slice generator, emitting each slice; False if it was superseded."""
        try:
            while True:
                if self._superseded(task):
                    return False
                self._apply_focus()
                try:
                    z, labels = next(steps)
                except StopIteration:
                    return True
                self._emit_slices(task, kind, {z: labels})
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()

    def _done(self, task: _Task, kind: str, cancelled: bool = False, changed: bool = True, error: str = "") -> None:
        info = {"clicks": _clicks_as_dicts(self.session.clicks()), "cancelled": cancelled, "changed": changed,
                "error": error}
        self.task_done.emit(task.token, kind, info)

    def _do_round(self, task: _Task) -> None:
        from napari_s2vnet.inference.state import Click

        clicks = [Click(c.z, c.y, c.x, c.label, c.positive) for c in task.payload]
        try:
            updated = self.session.add_clicks(clicks)
        except InputError as exc:
            self.error.emit("clicks", str(exc))
            self._done(task, "round", cancelled=True, changed=False, error=str(exc))
            return
        self._emit_slices(task, "round", updated)
        starts: dict[int, set[int]] = {}
        for c in clicks:
            starts.setdefault(int(c.z), set()).add(int(c.label))
        self._last_round = starts
        if not task.extra.get("propagate", True):
            self._done(task, "round")
            return
        self._propagate(task, "round")

    def _propagate(self, task: _Task, kind: str) -> None:
        """Run the session's pending propagation. Passes that a newer round cut short are finished
        by the Session inside that newer round, so nothing is re-queued here."""
        finished = self._run_steps(task, "propagate", self.session.propagate())
        self._done(task, kind, cancelled=not finished)

    def _do_propagate(self, task: _Task) -> None:
        """The Propagate button: finish pending passes; with none, re-run the last round's slices."""
        if self.session.pending:
            self._propagate(task, "propagate")
            return
        finished = True
        for z in sorted(self._last_round):
            try:
                steps = self.session.propagate(start=z)
            except InputError:  # its clicks were undone or removed meanwhile
                continue
            self._emit_slices(task, "round", {z: self.session.labels()[z]})
            if not self._run_steps(task, "propagate", steps):
                finished = False
                break
        self._done(task, "propagate", cancelled=not finished)

    def _do_auto(self, task: _Task) -> None:
        classes = task.payload
        cancelled = not self._run_steps(task, "auto", self.session.auto_steps(classes=classes))
        self._done(task, "auto", cancelled)

    def _volume(self, task: _Task, kind: str) -> None:
        self.volume.emit(task.token, kind, np.array(self.session.labels(), dtype=np.uint16, copy=True))

    def _do_undo(self, task: _Task) -> None:
        changed = bool(self.session.undo())
        self._volume(task, "undo")
        self._done(task, "undo", changed=changed)

    def _do_redo(self, task: _Task) -> None:
        changed = bool(self.session.redo())
        self._volume(task, "redo")
        self._done(task, "redo", changed=changed)

    def _do_remove_class(self, task: _Task) -> None:
        self.session.remove_class(int(task.payload))
        self._volume(task, "remove_class")
        self._done(task, "remove_class")

    def _do_set_labels(self, task: _Task) -> None:
        labels, locked = task.payload
        self.session.set_labels(np.asarray(labels, dtype=np.uint16))
        if locked is not None:
            self.session.locked = set(int(v) for v in locked)
        self._done(task, "set_labels")

    def _do_restore(self, task: _Task) -> None:
        """An autosave back in effect: its labels, and its clicks (features sampled again)."""
        from napari_s2vnet.inference.state import Click

        labels, clicks, locked = task.payload
        restored = [Click(int(c["z"]), int(c["y"]), int(c["x"]), int(c["label"]), bool(c.get("positive", True)))
                    for c in clicks]
        self.session.restore(np.asarray(labels, dtype=np.uint16), restored)
        if locked is not None:
            self.session.locked = set(int(v) for v in locked)
        self._done(task, "restore")

    def _do_locked(self, task: _Task) -> None:
        self.session.locked = set(int(v) for v in task.payload)
