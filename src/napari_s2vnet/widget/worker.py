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
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
from qtpy.QtCore import QObject, Signal

from napari_s2vnet.errors import InputError, InputWarning
from napari_s2vnet.inference.prompts import Prompt
from napari_s2vnet.inference.state import Click


@dataclass
class ModelInfo:
    """What the dock shows about the loaded model."""

    class_names: dict[int, str]
    model_id: str
    device: str


@dataclass
class TaskResult:
    """What ``task_done`` carries: the session's clicks, prompts and review scores after the task."""

    clicks: list[Click] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)  # Session.prompts(): clicks, boxes, scribbles
    cancelled: bool = False
    changed: bool = True
    error: str = ""
    doubt: np.ndarray | None = None  # (Z,) Session.slice_doubt()


@dataclass
class _Task:
    name: str  # what task_done reports as its kind
    run: Callable[..., None]  # runs on the worker thread with (task, *args)
    token: int
    epoch: int
    args: tuple = ()
    interactive: bool = True  # supersedes running propagation and makes feature caching yield
    needs_session: bool = True


class ModelWorker(QObject):
    """Persistent model thread with a task queue; results are emitted as Qt signals.

    Tasks are methods (:meth:`round`, :meth:`edit_prompts`, :meth:`propagate`, :meth:`auto`, :meth:`undo`,
    :meth:`redo`, :meth:`remove_class`, :meth:`set_labels`, :meth:`restore`, :meth:`set_locked`,
    :meth:`set_limits`), each queued with
    the worker-thread handler that runs it. Signals (all carry the session ``token`` so that the dock
    can drop results of a closed image):

    * ``model_loaded(ModelInfo)``, ``error(str context, str message)``, ``warning(str context, str
      message)``: an :class:`~napari_s2vnet.errors.InputWarning` a task raised (the input was used,
      but changed or doubtful: non-finite voxels replaced, a very thin or constant image, ...)
    * ``session_ready(token)``; ``features_progress(token, done, total)``; ``features_done(token, ok)``
    * ``slices(token, kind, {z: (Y, X) uint16 copy})``: new labels of the slices a task changed (every
      task reports its changes this way: rounds, propagation, auto, undo, redo, class removal)
    * ``task_done(token, kind, TaskResult)``
    * ``busy(bool)``: the worker started / finished a task
    """

    model_loaded = Signal(object)
    error = Signal(str, str)
    warning = Signal(str, str)
    session_ready = Signal(int)
    features_progress = Signal(int, int, int)
    features_done = Signal(int, bool)
    slices = Signal(int, str, object)
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
        self.session: Any = None  # an inference.contract.InteractiveSession
        self._session_token = -1
        self._features_ready = False
        self._stop_features = False
        self._thread = threading.Thread(target=self._run, name="s2vnet-model", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ main-thread API
    def _submit(self, name: str, run: Callable[..., None], *args: Any, interactive: bool = True) -> int:
        """Queue a task for the current session; interactive tasks supersede running work."""
        with self._lock:
            if interactive:
                self.epoch += 1
                self._pending_interactive += 1
            task = _Task(name, run, self.token, self.epoch, args, interactive)
        self._queue.put(task)
        return task.epoch

    def round(self, prompts: list[Prompt], propagate: bool = True) -> int:
        """One round of prompts (clicks, boxes, scribbles; all classes), then its propagation unless
        ``propagate`` is False."""
        return self._submit("round", self._do_round, list(prompts), propagate)

    def edit_prompts(self, remove: list[Prompt], add: list[Prompt] = (), propagate: bool = True) -> int:
        """Prompts deleted or moved: their classes recomputed as one round (``Session.edit_prompts``)."""
        return self._submit("prompts", self._do_edit_prompts, list(remove), list(add), propagate)

    def propagate(self) -> int:
        """The Propagate button: finish pending passes, or re-run the last round (``Session.repropagate``)."""
        return self._submit("propagate", self._do_propagate)

    def auto(self, classes: list[int] | None = None) -> int:
        return self._submit("auto", self._do_auto, classes)

    def undo(self) -> int:
        return self._submit("undo", self._do_edit, "undo")

    def redo(self) -> int:
        return self._submit("redo", self._do_edit, "redo")

    def remove_class(self, label: int) -> int:
        return self._submit("remove_class", self._do_edit, "remove_class", int(label))

    def set_labels(self, labels: np.ndarray, locked: set[int] | None = None) -> int:
        """Import hand edits (a copy) as a round; ``locked``: labels the model must not overwrite."""
        return self._submit("set_labels", self._do_set_labels, labels, locked)

    def restore(self, labels: np.ndarray, clicks: list[Prompt], locked: set[int] | None = None) -> int:
        return self._submit("restore", self._do_restore, labels, list(clicks), locked)

    def set_locked(self, labels: set[int] | list[int]) -> None:
        self._submit("locked", self._do_locked, sorted(int(v) for v in labels), interactive=False)

    def set_limits(self, slice_only: bool, z_range: tuple[int, int] | None) -> None:
        """Where the next rounds write: only their clicked slices, and / or only inside ``z_range``."""
        self._submit("limits", self._do_limits, bool(slice_only), z_range, interactive=False)

    def load_model(self, source: str | None, device: str) -> None:
        """Load the bundled weights (``source=None``) or a weights file on ``device``."""
        self._queue.put(_Task("model", self._load_model, self.token, self.epoch, (source, device), False, False))

    def set_predictor(self, predictor: Any) -> None:
        """Use an already built predictor (tests, notebooks)."""
        self._queue.put(_Task("predictor", self._use_predictor, self.token, self.epoch, (predictor,), False, False))

    def open_session(self, image_zyx: np.ndarray, spacing_zyx: tuple[float, ...], modality: str, labels: np.ndarray | None = None) -> int:
        """Start a new session (new token): pending and running work of the old one is dropped."""
        with self._lock:
            self.token += 1
            self.epoch += 1
            token = self.token
        self._focus = None
        self._queue.put(_Task("session", self._open_session, token, self.epoch,
                              (image_zyx, tuple(spacing_zyx), modality, labels), False, False))
        return token

    def close_session(self) -> None:
        with self._lock:
            self.token += 1
            self.epoch += 1
        self._queue.put(_Task("close_session", self._close_session, self.token, self.epoch, (), False, False))

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
                if task.interactive:
                    with self._lock:
                        self._pending_interactive -= 1
                self.busy.emit(True)
                self._dispatch_reporting_warnings(task)
            except Exception as exc:  # report, keep the thread alive
                message = f"{type(exc).__name__}: {exc}"
                self.error.emit(task.name if task else "worker", message)
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

    def _dispatch_reporting_warnings(self, task: _Task) -> None:
        """Run ``task``; its :class:`InputWarning` s go to the ``warning`` signal (the dock shows them),
        every other warning to Python's usual display."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InputWarning)
            try:
                self._dispatch(task)
            finally:
                for w in caught:
                    if issubclass(w.category, InputWarning):
                        self.warning.emit(task.name, str(w.message))
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

    def _dispatch(self, task: _Task) -> None:
        if task.needs_session:
            if self._stale(task):
                return
            if self.session is None or self._session_token != task.token:
                self.error.emit(task.name, "no model session: load a model and select an image first")
                return
            self._apply_focus()
        elif task.name == "session" and self._stale(task):
            return
        task.run(task, *task.args)

    def _emit_model_info(self) -> None:
        p = self.predictor
        device = str(getattr(p, "device", "cpu"))
        self.model_loaded.emit(ModelInfo(dict(p.class_names), str(getattr(p, "model_id", "?")), device))

    def _load_model(self, task: _Task, source: str | None, device: str) -> None:
        from napari_s2vnet.inference.predictor import Predictor

        # Predictor resolves "auto" (cuda, then mps, then cpu) and rejects unavailable devices
        self.predictor = Predictor.from_pretrained(device=device) if not source else Predictor.from_file(source, device=device)
        self._emit_model_info()

    def _use_predictor(self, task: _Task, predictor: Any) -> None:
        self.predictor = predictor
        self._emit_model_info()

    def _close_session(self, task: _Task) -> None:
        self.session, self._session_token = None, -1

    def _open_session(self, task: _Task, image, spacing, modality, labels) -> None:
        if self.predictor is None:
            self.error.emit("session", "no model loaded")
            return
        self.session = None
        self.session = self.predictor.session(image, spacing, modality=modality)
        self._session_token = task.token
        self._features_ready = False
        if labels is not None and np.any(labels):
            self.session.set_labels(np.asarray(labels, dtype=np.uint16))
        self.session_ready.emit(task.token)
        self._queue.put(_Task("features", self._do_features, task.token, task.epoch, (), False, True))

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
            self._queue.put(_Task("features", self._do_features, token, self.epoch, (), False, True))

    def _emit_slices(self, task: _Task, kind: str, items: dict[int, np.ndarray] | None) -> None:
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

    def _done(self, task: _Task, cancelled: bool = False, changed: bool = True, error: str = "") -> None:
        doubt = np.array(self.session.slice_doubt(), dtype=np.float32, copy=True)
        self.task_done.emit(task.token, task.name, TaskResult(list(self.session.clicks()), list(self.session.prompts()),
                                                              cancelled, changed, error, doubt))

    def _do_round(self, task: _Task, prompts: list[Prompt], propagate: bool) -> None:
        self._prompt_round(task, "round", lambda: self.session.add_prompts(prompts), propagate)

    def _do_edit_prompts(self, task: _Task, remove: list[Prompt], add: list[Prompt], propagate: bool) -> None:
        self._prompt_round(task, "prompts", lambda: self.session.edit_prompts(remove, add), propagate)

    def _prompt_round(self, task: _Task, kind: str, start: Callable[[], dict[int, np.ndarray]], propagate: bool) -> None:
        """A round of prompts (new ones, or edits): its first slices at once, then its propagation."""
        try:
            updated = start()
        except InputError as exc:
            self.error.emit("clicks", str(exc))
            self._done(task, cancelled=True, changed=False, error=str(exc))
            return
        self._emit_slices(task, kind, updated)
        if not propagate:
            self._done(task)
            return
        # passes that a newer round cut short are finished by the Session inside that newer round
        finished = self._run_steps(task, "propagate", self.session.propagate())
        self._done(task, cancelled=not finished)

    def _do_propagate(self, task: _Task) -> None:
        finished = self._run_steps(task, "propagate", self.session.repropagate())
        self._done(task, cancelled=not finished)

    def _do_auto(self, task: _Task, classes: list[int] | None) -> None:
        cancelled = not self._run_steps(task, "auto", self.session.auto_steps(classes=classes))
        self._done(task, cancelled)

    def _do_edit(self, task: _Task, what: str, *args: Any) -> None:
        """Undo, redo or class removal: the changed slices go out like any other result."""
        changes = getattr(self.session, what)(*args)
        self._emit_slices(task, what, changes)
        self._done(task, changed=changes is not None)

    def _do_set_labels(self, task: _Task, labels: np.ndarray, locked) -> None:
        self.session.set_labels(np.asarray(labels, dtype=np.uint16))
        if locked is not None:
            self.session.locked = set(int(v) for v in locked)
        self._done(task)

    def _do_restore(self, task: _Task, labels: np.ndarray, clicks: list[Prompt], locked) -> None:
        """An autosave back in effect: its labels, and its clicks (features sampled again)."""
        self.session.restore(np.asarray(labels, dtype=np.uint16), clicks)
        if locked is not None:
            self.session.locked = set(int(v) for v in locked)
        self._done(task)

    def _do_locked(self, task: _Task, labels: list[int]) -> None:
        self.session.locked = set(labels)

    def _do_limits(self, task: _Task, slice_only: bool, z_range: tuple[int, int] | None) -> None:
        self.session.slice_only = slice_only
        try:
            self.session.z_range = z_range
        except InputError as exc:
            self.error.emit("slice range", str(exc))
