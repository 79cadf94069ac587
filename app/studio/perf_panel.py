"""The performance panel: pyqtgraph plots of the last minute (GUI thread)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.studio.perf import STAGES, PerfHistory, PerfSample

STAGE_COLORS = {"preprocess": "#8c8cff", "coarse": "#ffb44c", "refine": "#5fd35f", "total": "#eee"}


class PerfPanel(QWidget):
    """Capture sets/s, inference frames/s, per-stage latency, skipped and incomplete sets/s.

    Parameters
    ----------
    history : PerfHistory
        The samples to plot (the main window adds to it; :meth:`add` is a shortcut).
    """

    def __init__(self, history: PerfHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rate_plot = self._plot("rate", "sets/s")
        self.latency_plot = self._plot("latency per stage", "ms")
        self.loss_plot = self._plot("skipped / incomplete", "sets/s")
        for p in (self.rate_plot, self.latency_plot, self.loss_plot):
            layout.addWidget(p)
        self.curves = {
            "capture_fps": self.rate_plot.plot(pen=pg.mkPen("#4cc3ff", width=2), name="capture"),
            "inference_fps": self.rate_plot.plot(
                pen=pg.mkPen("#ff6f91", width=2), name="inference"
            ),
            "skipped_per_s": self.loss_plot.plot(pen=pg.mkPen("#ffb44c", width=2), name="skipped"),
            "incomplete_per_s": self.loss_plot.plot(
                pen=pg.mkPen("#ff4040", width=2), name="incomplete"
            ),
        }
        for stage in STAGES:
            self.curves[stage] = self.latency_plot.plot(
                pen=pg.mkPen(STAGE_COLORS[stage], width=2), name=stage
            )

    @staticmethod
    def _plot(title: str, unit: str) -> pg.PlotWidget:
        p = pg.PlotWidget(title=title)
        p.setLabel("left", unit)
        p.setLabel("bottom", "s")
        p.setXRange(-60, 0, padding=0)
        p.addLegend(offset=(5, 5))
        p.showGrid(x=True, y=True, alpha=0.25)
        p.setMinimumHeight(110)
        p.setMinimumWidth(160)
        # Never zoom into noise around zero: rates and latencies are >= 0 and a unit is visible.
        p.getViewBox().setLimits(yMin=0.0, minYRange=1.0)
        p.enableAutoRange(axis="y")
        return p

    def add(self, sample: PerfSample) -> None:
        """Record a sample and redraw."""
        self.history.add(sample)
        self.refresh()

    def refresh(self) -> None:
        """Redraw every curve from the history (NaNs are left out)."""
        data = self.history.arrays()
        t = data["t"]
        for name, curve in self.curves.items():
            y = data[name]
            ok = np.isfinite(y)
            curve.setData(t[ok], y[ok])
