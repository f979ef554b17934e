"""A thin strip of the review scores along z (one bar per slice; the slice on screen marked).

``set_scores`` takes the session's ``slice_doubt()`` (``(Z,)``, any scale: bars are relative to the
largest score); clicking the strip emits ``slice_chosen(z)``.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget


class ReviewStrip(QWidget):
    slice_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scores: np.ndarray | None = None
        self.current: int | None = None
        self.setMinimumHeight(28)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("how unsure the model is about its labels, per slice (first slice on the left); click to go there")

    def set_scores(self, scores: np.ndarray | None) -> None:
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float32)
        self.update()

    def set_current(self, z: int | None) -> None:
        self.current = z
        self.update()

    def slice_at(self, x: float) -> int | None:
        """The slice under horizontal position ``x`` (widget pixels)."""
        if self.scores is None or not len(self.scores) or self.width() <= 0:
            return None
        return int(np.clip(x / self.width() * len(self.scores), 0, len(self.scores) - 1))

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        z = self.slice_at(event.position().x() if hasattr(event, "position") else event.x())
        if z is not None:
            self.slice_chosen.emit(z)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor(40, 40, 48))
        if self.scores is not None and len(self.scores):
            n = len(self.scores)
            top = float(self.scores.max())
            bar = w / n
            if top > 0:
                for z, v in enumerate(self.scores):
                    if v > 0:
                        frac = float(v) / top
                        painter.fillRect(QRectF(z * bar, h * (1 - frac), max(1.0, bar), h * frac),
                                         QColor(int(120 + 135 * frac), int(200 - 120 * frac), 60))
            if self.current is not None and 0 <= self.current < n:
                painter.setPen(QColor(255, 255, 255))
                x = (self.current + 0.5) * bar
                painter.drawLine(int(x), 0, int(x), h)
        painter.setPen(QColor(Qt.GlobalColor.gray))
        painter.drawRect(0, 0, w - 1, h - 1)
        painter.end()
