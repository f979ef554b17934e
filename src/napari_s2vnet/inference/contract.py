"""What the napari plugin needs from an interactive session (a ``typing.Protocol``).

:class:`~napari_s2vnet.inference.session.Session` satisfies it, and so does the tests' scripted
session (``tests/widget_fixtures.py``); ``tests/test_widget_contract.py`` checks both, member by member
and parameter by parameter. Every edit returns (or yields) only the slices it changed:
``{z: (Y, X) uint16}``, so the dock never copies the whole volume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from napari_s2vnet.inference.prompts import Prompt
from napari_s2vnet.inference.state import Click

Slices = dict[int, np.ndarray]


@runtime_checkable
class InteractiveSession(Protocol):
    shape: tuple[int, int, int]
    focus: int | None
    locked: set[int]
    slice_only: bool
    z_range: tuple[int, int] | None

    @property
    def pending(self) -> list[tuple[int, list[int]]]: ...

    def labels(self) -> np.ndarray: ...

    def clicks(self) -> list[Click]: ...

    def prepare_features(self, progress: Callable[[int, int], None] | None = None,
                         cancel: Callable[[], bool] | None = None) -> bool: ...

    def add_clicks(self, clicks: Iterable[Click]) -> Slices: ...

    def add_prompts(self, prompts: Iterable[Prompt]) -> Slices: ...

    def prompts(self) -> list[Prompt]: ...

    def edit_prompts(self, remove: Iterable[Prompt], add: Iterable[Prompt] = ()) -> Slices: ...

    def propagate(self, start: int | None = None) -> Iterator[tuple[int, np.ndarray]]: ...

    def repropagate(self) -> Iterator[tuple[int, np.ndarray]]: ...

    def auto_steps(self, classes: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]: ...

    def undo(self) -> Slices | None: ...

    def redo(self) -> Slices | None: ...

    def remove_class(self, label: int) -> Slices: ...

    def set_labels(self, labels_zyx: np.ndarray) -> None: ...

    def restore(self, labels_zyx: np.ndarray, clicks: Iterable[Prompt], rounds: Iterable[int] | None = None) -> None: ...

    def slice_doubt(self) -> np.ndarray: ...

    def uncertain_slices(self, k: int | None = None, skip: Iterable[int] = ()) -> list[int]: ...
