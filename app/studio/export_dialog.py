"""The export dialog: formats, frame range, destination; runs an :class:`ExportJob` with
progress and cancel (GUI thread; the job's callbacks arrive through queued signals)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.studio.export_job import ExportJob, ExportOutcome, ExportRequest
from inference.mesh_sequence import FORMATS

JobFactory = Callable[..., ExportJob]
"""``(request, on_progress, on_done, on_error) -> ExportJob`` (not started)."""


class _JobBridge(QObject):
    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(object)


class ExportDialog(QDialog):
    """Choose formats, range and destination, then export in the background.

    Parameters
    ----------
    count : int
        Sets in the take (the range is 0 .. count-1).
    make_job : callable
        Builds the job for a request (see :data:`JobFactory`).
    destination : str
        Initial output folder.
    meshes_available : int
        How many sets already have a mesh (shown to the user).
    """

    finished_export = Signal(object)
    """(ExportOutcome) when a job ends (also after a cancel)."""

    def __init__(
        self,
        count: int,
        make_job: JobFactory,
        destination: str,
        meshes_available: int = 0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export mesh sequence")
        self.make_job = make_job
        self.job: ExportJob | None = None
        self.outcome: ExportOutcome | None = None
        self.error: BaseException | None = None
        self._bridge = _JobBridge(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._bridge.progress.connect(self._on_progress, queued)
        self._bridge.done.connect(self._on_done, queued)
        self._bridge.failed.connect(self._on_failed, queued)
        self.format_boxes = {f: QCheckBox(f.upper()) for f in FORMATS}
        self.format_boxes["usd"].setChecked(True)
        self.format_boxes["ply"].setChecked(True)
        fmt_row = QWidget()
        row = QHBoxLayout(fmt_row)
        row.setContentsMargins(0, 0, 0, 0)
        for box in self.format_boxes.values():
            row.addWidget(box)
        self.first_box = QSpinBox()
        self.last_box = QSpinBox()
        for box in (self.first_box, self.last_box):
            box.setRange(0, max(0, count - 1))
        self.last_box.setValue(max(0, count - 1))
        range_row = QWidget()
        row = QHBoxLayout(range_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.first_box)
        row.addWidget(QLabel("to"))
        row.addWidget(self.last_box)
        self.dest_edit = QLineEdit(destination)
        browse = QPushButton("…")
        browse.setFixedWidth(30)
        browse.clicked.connect(self._browse)
        dest_row = QWidget()
        row = QHBoxLayout(dest_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.dest_edit, 1)
        row.addWidget(browse)
        self.reconstruct_box = QCheckBox(
            f"reconstruct sets without a mesh ({meshes_available} of {count} have one)"
        )
        self.reconstruct_box.setChecked(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, max(1, count))
        self.progress.setValue(0)
        self.status = QLabel("")
        self.start_button = QPushButton("Export")
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        buttons = QWidget()
        row = QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            row.addWidget(b)
        form = QFormLayout(self)
        form.addRow("Formats", fmt_row)
        form.addRow("Sets", range_row)
        form.addRow("Destination", dest_row)
        form.addRow("", self.reconstruct_box)
        form.addRow(self.progress)
        form.addRow(self.status)
        form.addRow(buttons)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to", self.dest_edit.text())
        if path:
            self.dest_edit.setText(path)

    def request(self) -> ExportRequest:
        """The request the dialog's fields describe (ConfigError when they are invalid)."""
        formats = tuple(f for f, box in self.format_boxes.items() if box.isChecked())
        return ExportRequest(
            Path(self.dest_edit.text().strip() or "."),
            formats,
            self.first_box.value(),
            self.last_box.value(),
            reconstruct_missing=self.reconstruct_box.isChecked(),
        )

    @property
    def running(self) -> bool:
        """Whether an export job is running."""
        return self.job is not None and self.job.running

    def start(self) -> None:
        """Start the export in the background (errors are shown in the dialog)."""
        if self.running:
            return
        self.outcome = self.error = None
        try:
            request = self.request()
            b = self._bridge
            self.job = self.make_job(request, b.progress.emit, b.done.emit, b.failed.emit)
        except Exception as exc:  # invalid fields or take: shown, the dialog stays open
            self._on_failed(exc)
            return
        self.progress.setRange(0, request.last - request.first + 1)
        self.progress.setValue(0)
        self.status.setText("exporting…")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.job.start()

    def cancel(self) -> None:
        """Ask the running job to stop after its current frame."""
        if self.job is not None:
            self.job.cancel()
            self.status.setText("cancelling…")

    def closeEvent(self, event) -> None:
        if self.running:
            self.job.cancel()
            self.job.join(2.0)
        super().closeEvent(event)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        self.status.setText(f"{done} / {total} sets")

    def _on_done(self, outcome: ExportOutcome) -> None:
        self.outcome = outcome
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if outcome.cancelled:
            self.status.setText(f"cancelled after {outcome.exported} frames")
        else:
            note = f", {outcome.skipped} sets had no mesh" if outcome.skipped else ""
            self.status.setText(
                f"wrote {outcome.exported} frames ({len(outcome.paths)} files){note}"
            )
        self.finished_export.emit(outcome)

    def _on_failed(self, exc: BaseException) -> None:
        self.error = exc
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(f"export failed: {exc}")
        self.status.setStyleSheet("color: #ff4040;")
