"""The studio main window: camera grid, 3D viewport, transport, performance, log, status bar.

Threads: GUI thread only. The :class:`~app.studio.engine.StudioEngine` does the work on its
threads; its callbacks reach this window through :class:`~app.studio.bridge.EngineBridge`
(queued connections); the window pulls the latest frame set and result on timers.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QImage
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.studio.bridge import EngineBridge, QtLogHandler
from app.studio.camera_grid import CameraDetail, CameraGrid
from app.studio.config import StudioConfig
from app.studio.engine import Activity, StudioEngine
from app.studio.export_dialog import ExportDialog
from app.studio.export_job import ExportJob, ExportRequest
from app.studio.perf import PerfHistory, PerfSample
from app.studio.perf_panel import PerfPanel
from app.studio.settings import SettingsDialog, save_config
from app.studio.transport import ReplayBar, TransportBar
from app.studio.viewport import ViewportPanel, make_viewport

log = logging.getLogger(__name__)

MESH_POLL_MS = 16
GRID_POLL_MS = 100
STATUS_POLL_MS = 500

EngineFactory = Callable[..., StudioEngine]
"""``(config, on_error, on_event) -> StudioEngine``."""


class StudioWindow(QMainWindow):
    """The main window.

    Parameters
    ----------
    config : StudioConfig
        What to capture from and which model to run.
    settings : QSettings
        Where settings edited in the dialog are remembered.
    engine_factory : callable, optional
        Builds the engine from ``(config, on_error, on_event)`` (tests inject fakes).
    autostart : bool
        Load the model and start the configured source once the window is shown.
    error_dialogs : bool
        Show worker errors in a (non-modal) dialog as well as in the log panel.
    """

    def __init__(
        self,
        config: StudioConfig,
        settings: QSettings,
        engine_factory: EngineFactory | None = None,
        autostart: bool = True,
        error_dialogs: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("tempeh studio")
        self.resize(1280, 800)
        self.config, self.settings = config, settings
        self.error_dialogs = error_dialogs
        self.errors: list[tuple[str, BaseException]] = []
        self.bridge = EngineBridge(self)
        queued = Qt.ConnectionType.QueuedConnection
        self.bridge.error.connect(self._on_error, queued)
        self.bridge.event.connect(self._on_event, queued)
        factory = engine_factory or StudioEngine
        self.engine = factory(config, self.bridge.report_error, self.bridge.report_event)
        self._closed = False
        self._last_result_seq: int | None = None
        self._last_result_obj: Any = None
        self._placeholder = True
        self._details: dict[int, CameraDetail] = {}
        self._error_box: QMessageBox | None = None
        self._record_timer: QTimer | None = None
        self.export_dialog: ExportDialog | None = None
        self.results_shown = 0

        # --- widgets
        self.viewport = make_viewport()
        self.viewport_panel = ViewportPanel(self.viewport)
        self.grid = CameraGrid()
        self.grid.camera_clicked.connect(self.open_camera)
        self.transport = TransportBar()
        self.replay_bar = ReplayBar()
        self.perf_history = PerfHistory()
        self.perf_panel = PerfPanel(self.perf_history)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(self.viewport_panel)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([480, 800])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.transport)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.replay_bar)
        self.setCentralWidget(central)

        perf_dock = QDockWidget("Performance", self)
        perf_dock.setObjectName("performance")
        perf_dock.setWidget(self.perf_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, perf_dock)
        log_dock = QDockWidget("Log", self)
        log_dock.setObjectName("log")
        log_dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, log_dock)
        self._docks = (perf_dock, log_dock)
        self._docks_sized = False

        # --- status bar
        self.device_label = QLabel()
        self.model_label = QLabel("model: loading…")
        self.rig_label = QLabel("rig: –")
        self.sync_label = QLabel("sync: –")
        for w in (self.device_label, self.model_label, self.rig_label, self.sync_label):
            self.statusBar().addPermanentWidget(w)
        self.device_label.setText(f"device: {config.device}")

        # --- menus
        file_menu = self.menuBar().addMenu("&File")
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.triggered.connect(self.open_settings)
        self.export_action = QAction("&Export meshes…", self)
        self.export_action.triggered.connect(self.open_export)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        for a in (self.settings_action, self.export_action, quit_action):
            file_menu.addAction(a)
        view_menu = self.menuBar().addMenu("&View")
        for dock in (perf_dock, log_dock):
            view_menu.addAction(dock.toggleViewAction())

        # --- logging into the log panel
        self.log_handler = QtLogHandler(logging.INFO)
        self.log_handler.emitter.record.connect(self._append_log, queued)
        root = logging.getLogger()
        if root.level > logging.INFO or root.level == logging.NOTSET:
            # The panel shows INFO; the console keeps the verbosity it was given.
            quiet = root.level or logging.WARNING
            for handler in root.handlers:
                if handler.level == logging.NOTSET:
                    handler.setLevel(quiet)
            root.setLevel(logging.INFO)
        root.addHandler(self.log_handler)

        # --- transport
        self.transport.live_requested.connect(self.start_live)
        self.transport.record_toggled.connect(self.set_recording)
        self.transport.stop_requested.connect(self.stop)
        self.transport.open_take_requested.connect(self.choose_take)

        # --- timers
        self._mesh_timer = self._timer(MESH_POLL_MS, self._poll_mesh)
        self._grid_timer = self._timer(GRID_POLL_MS, self._poll_frames)
        self._status_timer = self._timer(STATUS_POLL_MS, self._poll_status)
        if autostart:
            QTimer.singleShot(0, self.autostart)

    def _timer(self, ms: int, slot: Callable[[], None]) -> QTimer:
        t = QTimer(self)
        t.setInterval(ms)
        t.timeout.connect(slot)
        t.start()
        return t

    # ------------------------------------------------------------------ actions

    def autostart(self) -> None:
        """Load the model, then start the configured source (live, or the replay take)."""
        self.engine.load_model()
        if self.config.source == "replay":
            if self.config.take:
                self.engine.open_take(self.config.take)
            else:
                log.warning("replay source without a take: choose one with 'Replay take…'")
        else:
            self.engine.start_live()

    def start_live(self) -> None:
        """Start the live source (stops a replay)."""
        self.engine.start_live()

    def set_recording(self, on: bool) -> None:
        """Start or stop recording the live session."""
        if on:
            self.engine.start_recording()
        else:
            self.engine.stop_recording()

    def record_for(self, seconds: float) -> None:
        """Record ``seconds`` from now, then stop recording (the session keeps streaming)."""
        self.engine.start_recording()
        self._record_timer = QTimer(self)
        self._record_timer.setSingleShot(True)
        self._record_timer.timeout.connect(self.engine.stop_recording)
        self._record_timer.start(int(seconds * 1000))

    def stop(self) -> None:
        """Stop whatever runs."""
        self.engine.stop()

    def choose_take(self) -> None:
        """Ask for a take folder and replay it."""
        start = str(self.engine.last_take or self.config.takes_dir or Path.home())
        path = QFileDialog.getExistingDirectory(self, "Replay take", start)
        if path:
            self.open_take(path)

    def open_take(self, path: str | Path) -> None:
        """Replay the take at ``path``."""
        self.engine.open_take(path)

    def open_camera(self, index: int) -> CameraDetail:
        """Enlarge camera ``index`` with the mesh overlaid (one dialog per camera)."""
        dlg = self._details.get(index)
        if dlg is None:
            rig = self.grid.rig
            name = rig.cameras[index].name if rig is not None else str(index)
            dlg = CameraDetail(index, name, self)
            dlg.finished.connect(lambda _=0, i=index: self._details.pop(i, None))
            self._details[index] = dlg
        dlg.show()
        dlg.raise_()
        self._poll_frames()
        return dlg

    def open_settings(self) -> SettingsDialog:
        """Edit and remember the settings; applied by restarting the source."""
        dlg = SettingsDialog(self.config, self)
        dlg.accepted.connect(lambda: self.apply_config(dlg.config()))
        dlg.open()
        return dlg

    def apply_config(self, config: StudioConfig) -> None:
        """Remember ``config`` and restart with it."""
        save_config(self.settings, config)
        model_changed = (config.model, config.device, config.flame) != (
            self.config.model,
            self.config.device,
            self.config.flame,
        )
        self.config = config
        self.device_label.setText(f"device: {config.device}")
        self.engine.reconfigure(config, reload_model=model_changed)
        self.autostart()

    def open_export(self) -> ExportDialog | None:
        """Export the meshes of the take being replayed (or the last recorded one)."""
        take = self.engine.status().take or (
            str(self.engine.last_take) if self.engine.last_take else ""
        )
        if not take or self.engine.loaded is None:
            QMessageBox.information(
                self, "Export", "Record or replay a take first; its meshes are exported."
            )
            return None
        from capture.take import TakeReader

        try:
            reader = TakeReader(take)
        except Exception as exc:  # a broken take: shown, not fatal
            self._on_error("export", exc)
            return None
        engine, faces = self.engine, self.engine.loaded.template.faces
        t0 = reader.records[0].time_ns if reader.records else 0
        times = [(r.time_ns - t0) / 1e9 for r in reader.records]
        ids = [r.sequence for r in reader.records]
        if any(b <= a for a, b in itertools.pairwise(ids)):
            ids = list(range(len(ids)))

        def make_job(request: ExportRequest, on_progress, on_done, on_error) -> ExportJob:
            job_reader = TakeReader(take)  # the export thread decodes with its own reader
            return ExportJob(
                request,
                faces,
                reader.fps,
                times,
                ids,
                engine.take_mesh,
                lambda pos: engine.reconstruct_take_position(job_reader, pos),
                on_progress,
                on_done,
                on_error,
                source=str(take),
            )

        dest = str(Path(take).with_name(Path(take).name + "-meshes"))
        dlg = ExportDialog(len(reader.records), make_job, dest, engine.take_mesh_count(), self)
        self.export_dialog = dlg
        dlg.show()
        return dlg

    # ------------------------------------------------------------------ bridge slots

    def _on_error(self, where: str, exc: BaseException) -> None:
        self.errors.append((where, exc))
        text = f"{where}: {type(exc).__name__}: {exc}"
        self._append_log(f"ERROR {text}", logging.ERROR)
        self.statusBar().showMessage(text, 10000)
        if not self.error_dialogs or self._closed:
            return
        if self._error_box is None or not self._error_box.isVisible():
            self._error_box = QMessageBox(
                QMessageBox.Icon.Warning, "tempeh studio: error", text, parent=self
            )
            self._error_box.setWindowModality(Qt.WindowModality.NonModal)
            self._error_box.show()
        else:  # one dialog collects the errors; the newest ten are listed
            lines = [*self._error_box.text().split("\n"), text][-10:]
            self._error_box.setText("\n".join(lines))

    def _on_event(self, name: str, value: Any) -> None:
        if self._closed:
            return
        if name == "model":
            self.viewport.set_template(value.template)
            self.viewport.show_mesh(value.template.vertices)
            self._placeholder = True
            self._last_result_obj = None
            self._show_model_label(value)
        elif name == "rig":
            self.grid.set_rig(value)
            for dlg in list(self._details.values()):
                dlg.close()
            self.rig_label.setText(f"rig: {value.name} ({len(value)} cameras)")
        elif name == "activity":
            self.transport.set_activity(value.value)
            if value is not Activity.REPLAY:
                self.replay_bar.set_player(None)
        elif name == "replay":
            self.replay_bar.set_player(value)
            self.transport.set_activity("replay", Path(value.reader.path).name)
        elif name == "recorded":
            self.statusBar().showMessage(f"recorded {value}", 10000)

    def _show_model_label(self, loaded: Any) -> None:
        if not loaded.trained:
            self.model_label.setText(f"MODEL: {loaded.label}")
            self.model_label.setStyleSheet(
                "color: white; background: #c0392b; font-weight: bold; padding: 1px 6px;"
            )
            self.viewport_panel.info.setText(f"⚠ {loaded.label}: meshes are not heads")
            self.viewport_panel.info.setStyleSheet("color: #ff5050; font-weight: bold;")
        else:
            self.model_label.setText(f"model: {loaded.label}")
            self.model_label.setStyleSheet("")
        self.device_label.setText(f"device: {loaded.device}")

    def _append_log(self, text: str, level: int) -> None:
        if self._closed:
            return
        color = (
            "#ff5050" if level >= logging.ERROR else "#e0a030" if level >= logging.WARNING else ""
        )
        if color:
            self.log_view.appendHtml(f'<span style="color:{color}">{_escape(text)}</span>')
        else:
            self.log_view.appendPlainText(text)

    # ------------------------------------------------------------------ polling

    def _poll_mesh(self) -> None:
        result = self.engine.latest_result()
        if result is None or result is self._last_result_obj:
            return
        self._last_result_obj = result
        self._last_result_seq = result.sequence
        self._placeholder = False
        self.viewport.show_mesh(
            result.vertices, result.coarse, self.engine.reference_for(result.sequence)
        )
        self.results_shown += 1
        loaded = self.engine.loaded
        if loaded is not None and loaded.trained:
            self.viewport_panel.info.setText(
                f"set {result.sequence} · {result.timings_ms.get('total', math.nan):.0f} ms · "
                f"{len(result.views_used)} views"
            )

    def _poll_frames(self) -> None:
        fs = self.engine.latest_frameset()
        if fs is None:
            return
        st = self.engine.status()
        self.grid.update_frames(fs, st.lost_cameras, st.missing_views)
        if self._details:
            result = self._last_result_obj
            faces = self.viewport.template.faces if self.viewport.template is not None else None
            vertices = None if result is None else result.vertices
            for dlg in self._details.values():
                dlg.show_view(fs, vertices, faces)

    def _poll_status(self) -> None:
        st = self.engine.status()
        result = self._last_result_obj
        latency = dict(result.timings_ms) if result is not None else {}
        self.perf_panel.add(
            PerfSample(
                time.monotonic(),
                st.capture_fps,
                st.inference_fps,
                latency,
                st.skipped,
                st.sets_incomplete,
            )
        )
        if math.isfinite(st.spread_ms):
            quality = "good" if st.spread_ms < 2 else "fair" if st.spread_ms < 10 else "poor"
            self.sync_label.setText(f"sync: {st.spread_ms:.1f} ms spread ({quality})")
        if st.activity is Activity.RECORDING:
            self.transport.set_activity("recording", f"{st.recording_sets} sets")
        self.replay_bar.refresh()

    # ------------------------------------------------------------------ screenshots, closing

    def showEvent(self, event) -> None:
        """Size the docks once the window has its size (before that Qt ignores it)."""
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            perf, log_dock = self._docks
            self.resizeDocks([perf], [340], Qt.Orientation.Horizontal)
            self.resizeDocks([log_dock], [120], Qt.Orientation.Vertical)

    def screenshot(self, path: str | Path) -> QImage:
        """Save a PNG of the whole window, the GL viewport included; returns the image."""
        image = self.grab().toImage()
        if not image.save(str(path), "PNG"):
            raise OSError(f"cannot write screenshot {path}")
        return image

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop every worker (≤ 2 s) and the timers, then close."""
        if not self._closed:
            self._closed = True
            t0 = time.monotonic()
            for t in (self._mesh_timer, self._grid_timer, self._status_timer, self._record_timer):
                if t is not None:
                    t.stop()
            if self.export_dialog is not None and self.export_dialog.running:
                self.export_dialog.job.cancel()
            self.engine.shutdown(timeout=2.0)
            if hasattr(self.viewport, "close_renderer"):
                self.viewport.close_renderer()
            if self.export_dialog is not None and self.export_dialog.job is not None:
                self.export_dialog.job.join(max(0.1, 2.0 - (time.monotonic() - t0)))
            logging.getLogger().removeHandler(self.log_handler)
            log.info("studio closed in %.2f s", time.monotonic() - t0)
        super().closeEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
