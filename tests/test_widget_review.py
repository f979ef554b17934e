"""Review guidance in the dock and the widget-engine contract: "Next slice to check" (button,
shortcut, strip), edits applied as changed slices only, and the session Protocol checked against the
real Session and the tests' scripted one."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from widget_fixtures import ScriptedPredictor, ScriptedSession, dock_factory, ready_dock, small_image, wait_idle, wait_until  # noqa: F401

napari = pytest.importorskip("napari")

pytestmark = pytest.mark.gui


def _ready(qtbot, factory):
    return ready_dock(qtbot, factory)


def _click(qtbot, dock, z, y=20, x=20, label=5):
    if label not in dock.classes.entries:
        dock.classes.add_class("liver", label)
    before = dock.rounds
    dock.classes.add_click_point(label, z, y, x)
    wait_until(qtbot, lambda: dock.rounds > before)
    wait_idle(qtbot, dock)


def test_next_slice_to_check_goes_to_the_most_doubtful_unchecked_slice(qtbot, dock_factory):
    from qtpy.QtCore import QPoint, Qt

    from napari_s2vnet.widget.dock_ui import SHORTCUTS

    viewer, dock, session = _ready(qtbot, dock_factory)
    _click(qtbot, dock, 12)
    doubt = session.slice_doubt()
    np.testing.assert_array_equal(dock.doubt, doubt)  # the dock holds the session's scores
    np.testing.assert_array_equal(dock.review_strip.scores, doubt)
    expected = session.uncertain_slices(3)
    seen = []
    for _ in range(2):
        qtbot.mouseClick(dock.next_button, Qt.MouseButton.LeftButton)
        seen.append(dock.current_slice())
    key = next(k for k in viewer.keymap if str(k).replace("+", "-") == SHORTCUTS["next"])
    viewer.keymap[key](viewer)  # the shortcut does the same
    seen.append(dock.current_slice())
    assert seen == expected and "Shift+C" in dock.next_button.text()
    assert dock.review_strip.current == seen[-1]
    # a new round: every slice counts as unchecked again
    _click(qtbot, dock, 3)
    assert dock.visited == set()
    qtbot.mouseClick(dock.next_button, Qt.MouseButton.LeftButton)
    assert dock.current_slice() == session.uncertain_slices(1)[0]
    # clicking the strip goes to the slice under the mouse
    strip = dock.review_strip
    strip.resize(240, 28)
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(int(240 * 20.5 / 24), 10))
    assert dock.current_slice() == 20


def test_every_slice_checked_says_so(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, dock_factory)
    assert dock.next_slice_to_check() is None  # nothing segmented yet
    _click(qtbot, dock, 12)
    n = len(session.uncertain_slices())
    assert [dock.next_slice_to_check() for _ in range(n)] == session.uncertain_slices()
    assert dock.next_slice_to_check() is None and "checked" in dock.status.text()


def test_undo_and_reset_apply_only_the_changed_slices(qtbot, dock_factory):
    viewer, dock, session = _ready(qtbot, dock_factory)
    _click(qtbot, dock, 12)
    first = dock.labels_layer.data.copy()
    _click(qtbot, dock, 12, 34, 28, label=7)
    second = dock.labels_layer.data.copy()
    sent = []
    dock.worker.slices.connect(lambda token, kind, items: sent.append((kind, sorted(items))))
    dock.undo()
    wait_idle(qtbot, dock)
    np.testing.assert_array_equal(dock.labels_layer.data, first)
    by_slice = (first != second).reshape(24, -1).any(1)
    assert sent[-1] == ("undo", list(np.flatnonzero(by_slice))) and 0 < by_slice.sum() < 24
    dock.reset_class(5)
    wait_idle(qtbot, dock)
    assert sent[-1] == ("remove_class", list(np.flatnonzero((first == 5).reshape(24, -1).any(1))))
    assert not dock.labels_layer.data.any() and not hasattr(dock.worker, "volume")


def _members(proto):
    return [n for n in dir(proto) if not n.startswith("_")]


def test_session_protocol_is_what_both_sessions_offer(predictor):
    from napari_s2vnet.inference import Session
    from napari_s2vnet.inference.contract import InteractiveSession

    real = predictor.session(np.zeros((6, 40, 40), np.float32) + np.arange(40)[None, None] * 10, (3.0, 1.5, 1.5), "CT")
    scripted = ScriptedPredictor().session(small_image(), (3.0, 1.5, 1.5))
    for session, cls in ((real, Session), (scripted, ScriptedSession)):
        assert isinstance(session, InteractiveSession)
        for name in _members(InteractiveSession):
            want = getattr(InteractiveSession, name)
            if callable(want):
                got = inspect.signature(getattr(cls, name))
                assert list(got.parameters) == list(inspect.signature(want).parameters), (cls.__name__, name)
    for session in (real, scripted):  # every edit returns only the changed slices
        assert session.undo() is None and session.remove_class(5) == {}
        assert session.slice_doubt().shape == (session.shape[0],)
