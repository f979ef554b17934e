"""Autosave crash safety: a process killed (SIGKILL) in the middle of a save or of a propagation leaves
an autosave that restores exactly its last completed round, and no partial file is ever read.

The writer runs in a subprocess (``tests/autosave_child.py``); the test kills it at random points
and reopens the folder as the dock does (:func:`autosave.find`, :func:`autosave.load_labels`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_s2vnet.widget import autosave

sys.path.insert(0, str(Path(__file__).parent))
import autosave_child as child  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


class _Child:
    """The writer process, its stdout lines collected by a thread."""

    def __init__(self, mode: str, folder: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "autosave_child.py"), mode, str(folder)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, line: str, timeout: float = 120.0) -> None:
        end = time.time() + timeout
        while line not in self.lines:
            if self.proc.poll() is not None:
                raise AssertionError(f"the writer ended: {self.proc.stderr.read()[-2000:]}")
            if time.time() > end:
                raise AssertionError(f"no {line!r} from the writer in {timeout} s; got {self.lines[-5:]}")
            time.sleep(0.001)

    def kill(self) -> list[str]:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._thread.join(10)
        return list(self.lines)


def _journaled(folder: Path) -> list[int]:
    journal = folder.parent / "journal.txt"
    return [int(x) for x in journal.read_text().split()] if journal.exists() else []


def _started(lines: list[str], tag: str) -> list[int]:
    return [int(x.split()[1]) for x in lines if x.startswith(tag + " ")]


def _leftovers(folder: Path, state: autosave.AutosaveState) -> list[str]:
    """Files a killed writer left: temporary files and labels files the state does not point at."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")
                  or (p.name.startswith("labels") and p.name != state.labels_file))


def _check_reopen(folder: Path, lines: list[str], expected, metadata, shape, scale) -> tuple[int, list[str]]:
    """Reopen after the kill: the last completed round exactly. -> (round, leftover files)."""
    state = autosave.find(folder, child.FINGERPRINT)
    done, begun = _journaled(folder), _started(lines, "W")
    assert state is not None, (lines[-6:], sorted(os.listdir(folder)))
    # the restored round finished its save (it is at least the last one journaled as returned), and no
    # later one finished: a save that was cut short does not count
    assert done == [] or state.rounds >= done[-1]
    assert state.rounds <= max(begun) and state.rounds in begun
    labels = autosave.load_labels(folder, metadata, shape, scale, state)
    np.testing.assert_array_equal(labels, expected(state.rounds))
    assert state.clicks == child.clicks_of(state.rounds)
    return state.rounds, _leftovers(folder, state)


def _continue_after(folder: Path, monkeypatch, labels: np.ndarray, metadata, scale) -> None:
    """A new save after the crash removes what the killed writer left and commits the new round."""
    monkeypatch.setattr(autosave, "STALE_TEMP_S", 0.0)
    state = autosave.AutosaveState(fingerprint=child.FINGERPRINT, rounds=10**6)
    autosave.save(folder, labels, state, metadata, scale)
    again = autosave.find(folder, child.FINGERPRINT)
    assert again is not None and again.rounds == 10**6 and _leftovers(folder, again) == []


def test_sigkill_in_the_middle_of_saves(tmp_path, monkeypatch):
    rng = random.Random(11)
    scale = (3.0, 1.0, 1.0)
    cut_short = 0
    for trial in range(5):
        folder = tmp_path / f"t{trial}" / "image.s2vnet"
        proc = _Child("save", folder)
        proc.wait_for("D 2")  # two rounds are on disk; then kill inside a later save, at a random moment
        k = 3 + rng.randrange(3)
        proc.wait_for(f"W {k}")
        time.sleep(rng.uniform(0.0, 0.08))
        lines = proc.kill()
        restored, left = _check_reopen(folder, lines, child.save_labels_of, None, child.SAVE_SHAPE, scale)
        cut_short += bool(left) or restored < max(_started(lines, "W"))
        if trial == 0:
            _continue_after(folder, monkeypatch, child.save_labels_of(99), None, scale)
    assert cut_short >= 1  # at least one kill really landed inside a save (a partial or orphan file was left)


def test_sigkill_in_the_middle_of_propagation(tmp_path, monkeypatch):
    metadata, scale = child.mr_metadata()
    rng = random.Random(5)
    shape = (20, 91, 117)
    for trial in range(3):
        folder = tmp_path / f"t{trial}" / "mr.s2vnet"
        proc = _Child("propagate", folder)
        k = 3 + rng.randrange(4)
        proc.wait_for(f"P {k}")  # round k propagates while round k-1 is being saved
        time.sleep(rng.uniform(0.0, 0.1))
        lines = proc.kill()

        def expected(r: int, base: Path = folder.parent) -> np.ndarray:
            return np.load(base / f"expected-{r}.npy")

        restored, _ = _check_reopen(folder, lines, expected, metadata, shape, scale)
        assert restored >= k - 2
        if trial == 0:
            _continue_after(folder, monkeypatch, expected(restored), metadata, scale)


def test_a_save_interrupted_before_its_commit_keeps_the_previous_round(tmp_path, monkeypatch):
    folder = tmp_path / "img.s2vnet"
    first = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
    autosave.save(folder, first, autosave.AutosaveState(fingerprint="f", rounds=1), None)

    def crash(path, text):
        raise KeyboardInterrupt("killed before state.json was replaced")

    monkeypatch.setattr(autosave, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        autosave.save(folder, first + 1, autosave.AutosaveState(fingerprint="f", rounds=2), None)
    monkeypatch.undo()
    state = autosave.find(folder, "f")
    assert state is not None and state.rounds == 1
    np.testing.assert_array_equal(autosave.load_labels(folder, None, first.shape, None, state), first)
    assert len(list(folder.glob("labels-*.nii.gz"))) == 2  # the orphan of round 2 is never read ...
    autosave.save(folder, first + 2, autosave.AutosaveState(fingerprint="f", rounds=3), None)
    assert len(list(folder.glob("labels-*.nii.gz"))) == 1  # ... and the next save removes it


def test_a_damaged_or_foreign_labels_file_is_never_read(tmp_path):
    folder = tmp_path / "img.s2vnet"
    labels = np.random.default_rng(0).integers(0, 9, (3, 16, 16)).astype(np.uint16)
    autosave.save(folder, labels, autosave.AutosaveState(fingerprint="f", rounds=4), None)
    state = autosave.find(folder, "f")
    path = folder / state.labels_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated in place (a disk or copy problem)
    assert autosave.find(folder, "f") is None
    with pytest.raises(ValueError, match="digest"):
        autosave.load_labels(folder, None, labels.shape, None, state)
    path.write_bytes(data)
    assert autosave.find(folder, "f") is not None
    # a state.json naming a file outside the folder is refused
    raw = (folder / autosave.STATE_FILE).read_text().replace(state.labels_file, "../../etc/passwd")
    (folder / autosave.STATE_FILE).write_text(raw)
    assert autosave.find(folder, "f") is None


def test_first_format_autosave_is_still_read(tmp_path):
    from napari_s2vnet.widget.writer import atomic_write_labels

    folder = tmp_path / "old.s2vnet"
    labels = np.full((2, 4, 4), 3, np.uint16)
    atomic_write_labels(folder / autosave.LABELS_FILE, labels, None)
    old = {"fingerprint": "f", "image_name": "", "model_id": None, "classes": [], "clicks": [], "rounds": 2,
           "saved_at": 0.0, "format": autosave.FORMAT}
    (folder / autosave.STATE_FILE).write_text(__import__("json").dumps(old))
    state = autosave.find(folder, "f")
    assert state is not None and state.labels_file == autosave.LABELS_FILE
    np.testing.assert_array_equal(autosave.load_labels(folder, None, labels.shape, None, state), labels)
