"""Fixtures and helpers of the napari plugin tests (imported by ``tests/test_widget_*.py``).

* Settings/caches of napari go to a temporary folder (XDG variables, set before napari reads them).
* :class:`ScriptedPredictor` / :class:`ScriptedSession` implement the ``Predictor``/``Session``
  contract of ``docs/architecture.md`` with deterministic painting (a disc per click, shrinking
  as it propagates; boxes for auto) and a per-slice delay, so the widget's threading, cancellation,
  undo, autosave and layer updates can be tested fast and exactly. The real engine with the bundled
  weights is exercised in ``tests/test_widget_real.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pytest

_tmp = tempfile.mkdtemp(prefix="s2vnet-widget-tests-")
for _var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
    os.environ.setdefault(_var, os.path.join(_tmp, _var.lower()))
os.environ.setdefault("XDG_RUNTIME_DIR", os.path.join(_tmp, "runtime"))
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)

from napari_s2vnet.errors import InputError  # noqa: E402
from napari_s2vnet.inference.prompts import Box, Scribble, normalised  # noqa: E402
from napari_s2vnet.inference.state import Click  # noqa: E402
from napari_s2vnet.model.weights import default_weights_path  # noqa: E402

BUNDLED_WEIGHTS = default_weights_path()
needs_weights = pytest.mark.skipif(
    not BUNDLED_WEIGHTS.exists(), reason=f"bundled weights not there yet ({BUNDLED_WEIGHTS.name})"
)


def wait_until(qtbot: Any, condition: Callable[[], bool], timeout: float = 60.0, message: str = "") -> None:
    """Process Qt events until ``condition()`` holds (fails the test after ``timeout`` s)."""
    qtbot.waitUntil(condition, timeout=int(timeout * 1000))


def wait_idle(qtbot: Any, dock: Any, timeout: float = 60.0) -> None:
    """Wait for the dock's worker to finish all queued work and its signals to be delivered."""
    qtbot.waitUntil(lambda: dock.worker.idle() and not dock._round_timer.isActive(), timeout=int(timeout * 1000))
    qtbot.wait(50)


def ready_dock(qtbot: Any, factory: Callable, predictor: Any = None, image: np.ndarray | None = None):
    """A dock on ``image`` (default :func:`small_image`) with features cached: ``(viewer, dock, session)``."""
    predictor = predictor or ScriptedPredictor()
    viewer, dock = factory(predictor=predictor, image=small_image() if image is None else image)
    wait_until(qtbot, lambda: dock.features_ready, 20)
    return viewer, dock, predictor.sessions[-1]


class ScriptedSession:
    """Deterministic stand-in for ``napari_s2vnet.inference.Session`` (same public API)."""

    radius = 6
    delay = 0.0  # seconds per propagated slice
    feature_delay = 0.002  # seconds per encoded slice

    def __init__(self, image_zyx: np.ndarray, spacing_zyx: tuple[float, ...], modality: str, class_ids: Iterable[int]):
        self.shape = tuple(int(s) for s in image_zyx.shape)
        self.class_ids = list(class_ids)
        self._labels = np.zeros(self.shape, np.uint16)
        self._clicks: list[tuple[Click, Any]] = []  # (click, the prompt it came from)
        self._undo: list[tuple[np.ndarray, list, np.ndarray]] = []
        self._redo: list[tuple[np.ndarray, list, np.ndarray]] = []
        self._pending: list[Click] = []
        self._doubt = np.zeros(self.shape[0], np.float32)  # a propagated slice's doubt: 1 + its distance to the click
        self._last: list[int] = []
        self.focus: int | None = None
        self.locked: set[int] = set()
        self.slice_only = False  # a round paints its clicked slices only
        self.z_range: tuple[int, int] | None = None  # propagation stays inside these slices
        self.rounds = 0
        self.features = 0
        self.order: list[int] = []  # slices in the order propagate() wrote them

    # -- views
    def labels(self) -> np.ndarray:
        view = self._labels.view()
        view.flags.writeable = False
        return view

    def clicks(self) -> list[Click]:
        return [c for c, _ in self._clicks]

    def prompts(self) -> list[Any]:
        return list(dict.fromkeys(source for _, source in self._clicks))

    # -- features
    def prepare_features(self, progress=None, cancel=None) -> bool:
        while self.features < self.shape[0]:
            if cancel is not None and cancel():
                return False
            time.sleep(self.feature_delay)
            self.features += 1
            if progress is not None:
                progress(self.features, self.shape[0])
        return True

    # -- rounds
    def _new_round(self) -> None:
        self._undo.append((self._labels.copy(), list(self._clicks), self._doubt.copy()))
        self._redo.clear()
        self.rounds += 1

    def _swap(self, source: list, target: list) -> dict[int, np.ndarray] | None:
        if not source:
            return None
        target.append((self._labels.copy(), list(self._clicks), self._doubt.copy()))
        labels, self._clicks, doubt = source.pop()
        changed = np.flatnonzero((labels != self._labels).reshape(self.shape[0], -1).any(1))
        self._labels[...] = labels
        self._doubt[...] = doubt
        self._pending = []
        return {int(z): self._labels[z].copy() for z in changed}

    def undo(self) -> dict[int, np.ndarray] | None:
        return self._swap(self._undo, self._redo)

    def redo(self) -> dict[int, np.ndarray] | None:
        return self._swap(self._redo, self._undo)

    def slice_doubt(self) -> np.ndarray:
        return self._doubt.copy()

    def uncertain_slices(self, k: int | None = None, skip: Iterable[int] = ()) -> list[int]:
        skip = set(skip)
        order = [int(z) for z in np.argsort(-self._doubt, kind="stable") if self._doubt[z] > 0 and int(z) not in skip]
        return order if k is None else order[:k]

    def _disc(self, z: int, y: int, x: int, r: float, label: int | None) -> np.ndarray:
        yy, xx = np.ogrid[: self.shape[1], : self.shape[2]]
        mask = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        new = self._labels[z].copy()
        protected = np.isin(new, list(self.locked)) if self.locked else np.zeros(new.shape, bool)
        new[mask & ~protected] = 0 if label is None else label
        self._labels[z] = new
        return new.copy()

    def add_clicks(self, clicks: Iterable[Click]) -> dict[int, np.ndarray]:
        return self.add_prompts(clicks)

    @staticmethod
    def _expand(prompts: Iterable[Any]) -> list[tuple[Click, Any]]:
        """A box: one positive click at its centre; a scribble: a click per vertex."""
        out = []
        for p in (normalised(p) for p in prompts):
            if isinstance(p, Box):
                out.append((Click(p.z, (p.y0 + p.y1) // 2, (p.x0 + p.x1) // 2, p.label), p))
            elif isinstance(p, Scribble):
                out += [(Click(p.z, y, x, p.label, p.positive), p) for y, x in p.points]
            else:
                out.append((p, p))
        return out

    def add_prompts(self, prompts: Iterable[Any]) -> dict[int, np.ndarray]:
        pairs = self._expand(prompts)
        if not pairs:
            return {}
        self._new_round()
        clicks = [c for c, _ in pairs]
        out = {}
        for c, source in pairs:
            self._clicks.append((c, source))
            out[c.z] = self._disc(c.z, c.y, c.x, self.radius, c.label if c.positive else None)
            self._doubt[c.z] = 1.0
        self._last = sorted({c.z for c in clicks})
        unfinished = [c for c in self._pending if not any(n.z == c.z and n.label == c.label for n in clicks)]
        new = [] if self.slice_only else [c for c in clicks if c.positive]
        self._pending = new + unfinished  # a cut-short round finishes here
        return out

    def edit_prompts(self, remove: Iterable[Any], add: Iterable[Any] = ()) -> dict[int, np.ndarray]:
        """Drop ``remove``, add ``add``; each touched class is cleared and painted again from its
        remaining positive clicks (then propagated)."""
        remove = [normalised(p) for p in remove]
        missing = [p for p in remove if p not in self.prompts()]
        if missing:
            raise InputError(f"{missing[0]} is not a prompt in effect")
        pairs = self._expand(add)
        labels = {c.label for c, s in self._clicks if s in remove} | {c.label for c, _ in pairs}
        if not labels:
            return {}
        self._new_round()
        before = self._labels.copy()
        self._clicks = [(c, s) for c, s in self._clicks if s not in remove] + pairs
        clear = np.isin(self._labels, list(labels)) & ~np.isin(self._labels, list(self.locked))
        self._labels[clear] = 0
        again = [c for c, _ in self._clicks if c.label in labels and c.positive]
        for c in again:
            self._disc(c.z, c.y, c.x, self.radius, c.label)
        self._last = sorted({c.z for c in again})
        self._pending = again + [c for c in self._pending if c.label not in labels]
        changed = np.flatnonzero((before != self._labels).reshape(self.shape[0], -1).any(1))
        return {int(z): self._labels[z].copy() for z in changed}

    @property
    def pending(self) -> list[tuple[int, list[int]]]:
        return [(c.z, [c.label]) for c in self._pending]

    def add_click(self, z, y, x, label, positive=True) -> np.ndarray:
        return self.add_clicks([Click(z, y, x, label, positive)])[z]

    def propagate(self, start: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        if start is not None:
            self._new_round()
            self._pending = [c for c, _ in self._clicks if c.z == start and c.positive]
        heads = []
        for c in list(self._pending):  # a click stays pending until both its directions are done
            for step in (1, -1):
                heads.append([c.z + step, step, c])
        while heads:
            target = self.focus
            i = 0 if target is None else min(range(len(heads)), key=lambda k: abs(heads[k][0] - target))
            z, step, c = heads[i]
            r = self.radius - abs(z - c.z) / 2
            outside = self.z_range is not None and not self.z_range[0] <= z <= self.z_range[1]
            if r < 1 or not 0 <= z < self.shape[0] or outside:
                heads.pop(i)
                if not any(h[2] is c for h in heads) and c in self._pending:
                    self._pending.remove(c)
                continue
            time.sleep(self.delay)
            heads[i][0] = z + step
            self.order.append(z)
            self._doubt[z] = 1.0 + abs(z - c.z)
            yield z, self._disc(z, c.y, c.x, r, c.label)
            if target is None:
                heads.append(heads.pop(i))

    def repropagate(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._pending:
            yield from self.propagate()
            return
        for z in self._last:
            if any(c.z == z for c, _ in self._clicks):
                yield z, self._labels[z].copy()
                yield from self.propagate(start=z)

    def auto_steps(self, classes: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        wanted = list(self.class_ids if classes is None else classes)
        self._new_round()
        for z in range(self.shape[0]):
            for k, label in enumerate(wanted):
                y0 = 4 + 10 * k
                new = self._labels[z].copy()
                new[y0 : y0 + 6, 4:14] = label
                self._labels[z] = new
            self._doubt[z] = 1.0 + z % 3
            yield z, self._labels[z].copy()

    def auto(self, classes=None) -> np.ndarray:
        for _ in self.auto_steps(classes):
            pass
        return self.labels()

    def remove_class(self, label: int) -> dict[int, np.ndarray]:
        self._new_round()
        self._clicks = [(c, s) for c, s in self._clicks if c.label != label]
        changed = np.flatnonzero((self._labels == label).reshape(self.shape[0], -1).any(1))
        self._labels[self._labels == label] = 0
        return {int(z): self._labels[z].copy() for z in changed}

    def set_labels(self, labels_zyx: np.ndarray) -> None:
        self._new_round()
        self._labels[...] = labels_zyx

    def restore(self, labels_zyx: np.ndarray, clicks: Iterable[Click], rounds=None) -> None:
        self.set_labels(labels_zyx)
        self._clicks.extend(self._expand(clicks))


class ScriptedPredictor:
    """Stand-in for ``Predictor``: classes spleen (1) and liver (5); sessions are ScriptedSession."""

    class_names = {1: "spleen", 5: "liver"}
    model_id = "scripted:000000000000"
    device = "cpu"

    def __init__(self, delay: float = 0.0, feature_delay: float = 0.002) -> None:
        self.delay, self.feature_delay = delay, feature_delay
        self.sessions: list[ScriptedSession] = []

    def session(self, image_zyx, spacing_zyx, modality=None, **kwargs) -> ScriptedSession:
        s = ScriptedSession(image_zyx, spacing_zyx, modality or "CT", self.class_names)
        s.delay, s.feature_delay = self.delay, self.feature_delay
        self.sessions.append(s)
        return s


def small_image(shape: tuple[int, int, int] = (24, 48, 40)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 100, shape).astype(np.float32)


@pytest.fixture
def dock_factory(make_napari_viewer, qtbot):
    """``dock_factory(predictor=None, show=False, image=None, **add_image_kwargs) -> (viewer, dock)``."""
    from napari_s2vnet.widget.dock import S2VNetDock

    docks = []

    def factory(predictor: Any = None, show: bool = False, image: np.ndarray | None = None, **kwargs: Any):
        viewer = make_napari_viewer(show=show)
        if image is not None:
            viewer.add_image(image, **kwargs)
        dock = S2VNetDock(viewer, predictor=predictor, load_default=predictor is None)
        viewer.window.add_dock_widget(dock, name="S2VNet")
        docks.append(dock)
        return viewer, dock

    yield factory
    for dock in docks:
        dock.cleanup()
