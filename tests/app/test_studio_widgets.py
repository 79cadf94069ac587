"""Studio widgets and their Qt-free logic, under ``QT_QPA_PLATFORM=offscreen`` (no GL needed).

Camera grid and overlay, transport / timeline with gaps and the take player, performance
panel, export dialog (cancel), settings persistence, the main window's error path and the
``tempeh studio`` display check.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="PySide6 cannot load")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")

from PySide6.QtCore import QPoint, QSettings, Qt

from app.studio.camera_grid import CameraGrid, CameraRates
from app.studio.coloring import heat_colors, region_colors
from app.studio.config import StudioConfig
from app.studio.export_dialog import ExportDialog
from app.studio.export_job import ExportJob, ExportRequest
from app.studio.orbit import OrbitCamera
from app.studio.overlay import draw_wireframe, front_faces
from app.studio.perf import PerfHistory, PerfSample
from app.studio.perf_panel import PerfPanel
from app.studio.player import TakePlayer, timeline_model
from app.studio.settings import SettingsDialog, load_config, save_config
from app.studio.transport import ReplayBar, TimelineWidget, TransportBar
from capture.camera import project
from capture.default_rigs import load_shipped_rig
from capture.frames import Frame, FrameSet
from capture.rig_json import write_rig_json
from capture.take import (
    RIG_FILE,
    SESSION_FILE,
    TAKE_FORMAT,
    TAKE_VERSION,
    TIMESTAMPS_FILE,
    StreamWriter,
    TakeReader,
    video_path,
)
from inference.procedural_head import load_procedural_head


@pytest.fixture(scope="module")
def template():
    return load_procedural_head().template


@pytest.fixture(scope="module")
def rig():
    return load_shipped_rig("test4").resized(160, 120)


def frameset(rig, seq: int, missing=(), frame_id=None, t_ns=None) -> FrameSet:
    frames = []
    for i, cam in enumerate(rig.cameras):
        if i in missing:
            frames.append(None)
            continue
        img = np.full((cam.height, cam.width), 40 + 30 * i, np.uint8)
        fid = seq if frame_id is None else frame_id
        frames.append(Frame(img, i, cam.name, fid, t_ns if t_ns is not None else seq * 10**8))
    return FrameSet(seq, tuple(frames), rig, key=seq)


def make_take(folder: Path, n: int = 12, gap_after: int = 5, incomplete=(3,), fps=10.0) -> Path:
    """A PNG take of the test4 rig: ``n`` sets, 3 sets lost and a pause after ``gap_after``,
    camera 0 missing from the sets in ``incomplete``."""
    rig = load_shipped_rig("test4")
    (folder / "video").mkdir(parents=True)
    write_rig_json(rig, folder / RIG_FILE)
    session = {"format": TAKE_FORMAT, "version": TAKE_VERSION, "codec": "png", "fps": fps,
               "cameras": rig.names, "config": {}}  # fmt: skip
    (folder / SESSION_FILE).write_text(json.dumps(session))
    writers = [
        StreamWriter(video_path(folder, i, c.name, "png"), "png", c.width, c.height, False)
        for i, c in enumerate(rig.cameras)
    ]
    lines = []
    for s in range(n):
        late = s > gap_after
        t = 10**9 + int(s * 1e9 / fps) + (int(0.5e9) if late else 0)
        video, host = [], []
        for i, c in enumerate(rig.cameras):
            if s in incomplete and i == 0:
                video.append(None)
                host.append(None)
                continue
            img = np.full((c.height, c.width), (s * 20 + i * 5) % 256, np.uint8)
            video.append(writers[i].write(img))
            host.append(t + i)
        lines.append({"seq": s, "key": s + (3 if late else 0), "spread_ns": 3, "host_ns": host,
                      "device_ns": [None] * len(rig), "frame_id": [s] * len(rig),
                      "video": video, "written_ns": t})  # fmt: skip
    (folder / TIMESTAMPS_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


# --------------------------------------------------------------------------- camera grid


def test_camera_rates_from_frame_ids(rig) -> None:
    rates = CameraRates(len(rig), window_s=0.5)
    for k in range(0, 30, 3):  # the GUI samples every third set of a 20 fps stream
        r = rates.update(frameset(rig, k, t_ns=int(k * 0.05e9)))
    assert r == pytest.approx([20.0] * len(rig), rel=1e-6)


def test_camera_grid_tiles_states_and_click(qtbot, rig) -> None:
    grid = CameraGrid(rig)
    qtbot.addWidget(grid)
    grid.resize(400, 300)
    grid.show()
    assert [t.name for t in grid.tiles] == rig.names
    grid.update_frames(frameset(rig, 0, missing=(2,)), lost=(rig.names[3],), dropped=(0, 0, 5, 9))
    assert [t.has_image for t in grid.tiles] == [True, True, False, True]
    assert [t.state.label for t in grid.tiles] == ["ok", "ok", "MISSING", "LOST"]
    assert "5 dropped" in grid.tiles[2].caption.text()
    assert "LOST" in grid.tiles[3].caption.text()
    with qtbot.waitSignal(grid.camera_clicked, timeout=1000) as blocker:
        qtbot.mouseClick(grid.tiles[1], Qt.MouseButton.LeftButton)
    assert blocker.args == [1]
    grid.set_rig(load_shipped_rig("default16"))
    assert len(grid.tiles) == 16


def test_wireframe_overlay_draws_the_head_where_it_projects(rig, template) -> None:
    cam = rig.cameras[0]
    v = template.vertices
    front = front_faces(cam, v, template.faces)
    assert 0.25 < len(front) / len(template.faces) < 0.75
    image = np.zeros((cam.height, cam.width), np.uint8)
    out = draw_wireframe(image, cam, v, template.faces)
    green = (out[..., 1].astype(int) - out[..., 0]) > 30
    assert 0.03 < green.mean() < 0.6
    ys, xs = np.nonzero(green)
    u, vv = project(cam, v).mean(axis=0)
    assert abs(xs.mean() - u) < 12 and abs(ys.mean() - vv) < 12
    with pytest.raises(ValueError, match="is 160x120"):
        draw_wireframe(np.zeros((10, 10), np.uint8), cam, v, template.faces)


def test_camera_detail_overlays_the_mesh(qtbot, rig, template) -> None:
    from app.studio.camera_grid import CameraDetail

    dlg = CameraDetail(0, rig.cameras[0].name)
    qtbot.addWidget(dlg)
    fs = frameset(rig, 7)
    dlg.show_view(fs, None, None)
    assert dlg.info.text().endswith("no mesh yet")
    dlg.show_view(fs, template.vertices, template.faces)
    assert dlg.info.text().endswith("mesh overlaid")
    assert dlg.last_image.shape == (120, 160, 3)
    dlg.show_view(frameset(rig, 8, missing=(0,)), template.vertices, template.faces)
    assert "no frame" in dlg.info.text()


# --------------------------------------------------------------------------- viewport logic


def test_orbit_camera_and_colours(template) -> None:
    cam = OrbitCamera()
    v0 = cam.view()
    cam.orbit(50, -500)
    assert cam.elevation == -89.0
    cam.zoom(2)
    assert cam.distance < 900
    cam.pan(10, 0, 400)
    assert not np.allclose(cam.target, (0, -20, 0))
    cam.reset()
    assert np.allclose(cam.view(), v0)
    colors = region_colors(template)
    assert colors.shape == (template.num_vertices, 3)
    assert len(np.unique(colors, axis=0)) >= 6
    heat = heat_colors(np.array([0.0, 5.0, 100.0]), 10.0)
    assert heat[0, 2] > heat[0, 0] and heat[2, 0] > heat[2, 2]  # blue → red


def test_viewport_colour_modes_without_gl(qtbot, template) -> None:
    from app.studio.viewport import MeshViewport, ViewportPanel

    vp = MeshViewport(template)
    panel = ViewportPanel(vp)
    qtbot.addWidget(panel)
    v = template.vertices.astype(np.float32)
    vp.show_mesh(v, coarse=v + 1.0)
    vp.show_mesh(v + (2.0, 0.0, 0.0), coarse=v + (0.0, 3.0, 0.0), reference=v)
    panel.color_box.setCurrentText("regions")
    assert vp.vertex_colors().shape == (template.num_vertices, 3)
    panel.color_box.setCurrentText("motion")  # moved 2 mm of 5 mm full scale
    assert np.allclose(vp.vertex_colors(), heat_colors(np.full(len(v), 2.0), 5.0))
    panel.color_box.setCurrentText("error")
    assert np.allclose(vp.vertex_colors(), heat_colors(np.full(len(v), 2.0), 10.0))
    panel.coarse_box.setChecked(True)
    assert vp.show_coarse
    assert np.allclose(vp.vertex_colors(), heat_colors(np.full(len(v), 3.0), 10.0))
    panel.mode_box.setCurrentText("wireframe")
    assert vp.draw_mode == "wireframe"
    vp.show_mesh(np.zeros((3, 3)))  # wrong topology: ignored, logged
    assert vp.meshes_received == 2
    vp.show_mesh(v, reference=np.zeros((5, 3)))  # a reference of another topology: none
    assert not vp.has_reference() and vp.vertex_colors() is None


def qimage_rgb(image) -> np.ndarray:
    """(H, W, 3) uint8 copy of a QImage."""
    from PySide6.QtGui import QImage

    img = image.convertToFormat(QImage.Format.Format_RGB888)
    raw = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return raw[:, : 3 * img.width()].reshape(img.height(), img.width(), 3).copy()


@pytest.mark.gl
def test_software_viewport_renders_the_head_without_qt_opengl(qtbot, template) -> None:
    """Under ``offscreen`` Qt has no OpenGL: the fallback renders on an EGL thread."""
    from app.studio.viewport import SoftwareViewport, make_viewport

    vp = make_viewport(template)
    assert isinstance(vp, SoftwareViewport)
    qtbot.addWidget(vp)
    vp.resize(400, 300)
    vp.show()
    vp.show_mesh(template.vertices)
    try:
        qtbot.waitUntil(lambda: vp.frames_drawn >= 1 or bool(vp.gl_error), timeout=15000)
        if vp.gl_error:
            pytest.skip(vp.gl_error)
        rgb = qimage_rgb(vp.grab().toImage())
        r, g, b = (rgb[..., i].astype(int) for i in range(3))
        head = (r > b + 12) & (g > 0.6 * r) & (r > 40)
        assert 0.03 < head.mean() < 0.4, head.mean()
        ys, xs = np.nonzero(head)
        assert 0.3 < ys.mean() / head.shape[0] < 0.7 and 0.35 < xs.mean() / head.shape[1] < 0.65
        drawn = vp.frames_drawn
        vp.set_draw_mode("wireframe")
        qtbot.waitUntil(lambda: vp.frames_drawn > drawn, timeout=5000)
    finally:
        vp.close_renderer()


# --------------------------------------------------------------------------- transport / replay


def test_timeline_model_marks_gaps_lost_and_incomplete_sets(tmp_path) -> None:
    reader = TakeReader(make_take(tmp_path / "take"))
    m = timeline_model(reader.records)
    assert len(m.times_s) == 12
    assert m.lost == 3
    assert len(m.gaps) == 1 and m.gaps[0][0] == pytest.approx(0.5)
    assert m.gaps[0][1] == pytest.approx(1.1)
    assert list(np.nonzero(~m.complete)[0]) == [3]
    assert m.position_at(0.52) == 5 and m.position_at(99) == 11


def test_timeline_widget_scrubs_to_the_nearest_set(qtbot, tmp_path) -> None:
    reader = TakeReader(make_take(tmp_path / "take"))
    w = TimelineWidget()
    qtbot.addWidget(w)
    w.resize(408, 30)
    w.set_model(timeline_model(reader.records))
    w.show()
    assert not w.grab().isNull()  # paints ticks, gaps and the cursor
    with qtbot.waitSignal(w.scrubbed, timeout=1000) as blocker:
        qtbot.mouseClick(w, Qt.MouseButton.LeftButton, pos=QPoint(404, 15))
    assert blocker.args == [11]


def test_take_player_play_step_seek_speed(tmp_path) -> None:
    reader = TakeReader(make_take(tmp_path / "take"))
    got: list[FrameSet] = []
    player = TakePlayer(reader, got.append)
    try:
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got[0].sequence == 0 and got[0].complete
        player.step(3)
        while player.status().shown < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got[-1].sequence == 3 and got[-1].missing == (0,)
        player.set_speed(4.0)
        player.play()
        t0 = time.monotonic()
        while player.status().playing and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        st = player.status()
        assert st.position == 11 and not st.playing
        # 0.8 s of recorded sets and a 0.5 s pause at 4x: ~0.3 s
        assert 0.15 < elapsed < 2.0, elapsed
        assert [fs.sequence for fs in got[2:]] == list(range(4, 12))
        assert got[-1].key == 14  # the recorded keys, gaps included
    finally:
        player.stop()
    assert not player._thread.is_alive()


def test_transport_and_replay_bar(qtbot, tmp_path) -> None:
    bar = TransportBar()
    qtbot.addWidget(bar)
    bar.set_activity("idle")
    assert bar.live_button.isEnabled() and not bar.record_button.isEnabled()
    bar.set_activity("live")
    assert bar.record_button.isEnabled() and bar.stop_button.isEnabled()
    with qtbot.waitSignal(bar.record_toggled, timeout=1000) as blocker:
        bar.record_button.click()
    assert blocker.args == [True]
    bar.set_activity("recording", "12 sets")
    assert "RECORDING" in bar.state_label.text() and not bar.open_button.isEnabled()

    reader = TakeReader(make_take(tmp_path / "take"))
    shown: list[int] = []
    player = TakePlayer(reader, lambda fs: shown.append(fs.sequence))
    replay = ReplayBar()
    qtbot.addWidget(replay)
    try:
        replay.set_player(player)
        replay.fwd_button.click()
        replay.fwd_button.click()
        qtbot.waitUntil(lambda: player.status().position == 2, timeout=2000)
        replay.back_button.click()
        qtbot.waitUntil(lambda: shown[-1:] == [1], timeout=2000)
        replay.refresh()
        assert replay.label.text().startswith("set 2/12") and "1 gaps" in replay.label.text()
        replay.speed_box.setCurrentIndex(replay.speed_box.findData(2.0))
        assert player.status().speed == 2.0
        replay.play_button.click()
        qtbot.waitUntil(lambda: not player.status().playing, timeout=5000)
        replay.refresh()
        assert replay.timeline.position == 11 and replay.play_button.text() == "Play"
    finally:
        player.stop()


# --------------------------------------------------------------------------- performance


def test_perf_history_rates_window_and_panel(qtbot) -> None:
    h = PerfHistory(window_s=60)
    lat = {"preprocess": 1.0, "coarse": 20.0, "refine": 30.0, "total": 51.0}
    for k in range(100):
        skipped = 2 * k if k < 80 else 2 * (k - 80)  # a restart resets the counter
        h.add(PerfSample(float(k), 20.0, 5.0, lat, skipped, k // 10))
    a = h.arrays()
    assert len(h) == 61 and a["t"][0] == -60.0 and a["t"][-1] == 0.0
    rate = a["skipped_per_s"]
    reset = 80 - 39  # the restart's sample: counted from zero again
    assert rate[reset] == 0.0 and np.allclose(np.delete(rate, [0, reset]), 2.0)
    assert np.allclose(a["coarse"], 20.0)
    assert a["incomplete_per_s"].sum() == pytest.approx(6.0)
    panel = PerfPanel(PerfHistory())
    qtbot.addWidget(panel)
    panel.add(PerfSample(0.0, 20.0, 5.0, {}, 0, 0))
    panel.add(PerfSample(0.5, 21.0, 6.0, lat, 1, 0))
    x, y = panel.curves["capture_fps"].getData()
    assert list(y) == [20.0, 21.0] and list(x) == [-0.5, 0.0]
    assert list(panel.curves["total"].getData()[1]) == [51.0]  # NaN left out


# --------------------------------------------------------------------------- export


def _slow_job(out: Path, n: int, delay: float, cancelled_at=None):
    faces = np.array([[0, 1, 2]])
    tri = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float32)

    def cached(pos):
        time.sleep(delay)
        return tri + pos

    def make(request, on_progress, on_done, on_error):
        return ExportJob(request, faces, 30.0, [k / 30 for k in range(n)], list(range(n)),
                         cached, None, on_progress, on_done, on_error)  # fmt: skip

    return make


def test_export_job_writes_the_requested_range(tmp_path) -> None:
    done = []
    req = ExportRequest(tmp_path / "out", ("npz", "usd", "ply"), 2, 5)
    job = _slow_job(tmp_path, 8, 0.0)(req, None, done.append, None)
    job.start()
    assert job.join(20)
    outcome = done[0]
    assert outcome.exported == 4 and not outcome.cancelled
    names = {p.name for p in outcome.paths}
    assert {"frame.npz", "frame.usd", "frame.000002.ply", "frame.000005.ply"} <= names
    from inference.mesh_sequence import load_sequence

    seq = load_sequence(tmp_path / "out" / "frame.usd")
    assert seq.num_frames == 4 and list(seq.frame_ids) == [2, 3, 4, 5]


def test_export_dialog_progress_and_cancel(qtbot, tmp_path) -> None:
    dlg = ExportDialog(200, _slow_job(tmp_path, 200, 0.02), str(tmp_path / "out"), 200)
    qtbot.addWidget(dlg)
    for fmt, box in dlg.format_boxes.items():
        box.setChecked(fmt in ("usd", "npz"))
    dlg.start()
    assert dlg.running and not dlg.start_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.progress.value() >= 5, timeout=5000)
    with qtbot.waitSignal(dlg.finished_export, timeout=5000) as blocker:
        dlg.cancel_button.click()
    outcome = blocker.args[0]
    assert outcome.cancelled and 5 <= outcome.exported < 200
    assert not (tmp_path / "out" / "frame.usd").exists()
    assert "cancelled" in dlg.status.text() and dlg.start_button.isEnabled()
    assert not dlg.running


def test_export_dialog_reports_bad_input(qtbot, tmp_path) -> None:
    dlg = ExportDialog(10, _slow_job(tmp_path, 10, 0.0), str(tmp_path / "out"))
    qtbot.addWidget(dlg)
    for box in dlg.format_boxes.values():
        box.setChecked(False)
    dlg.start()
    assert dlg.error is not None and "failed" in dlg.status.text() and dlg.job is None


# --------------------------------------------------------------------------- settings


def test_settings_persist_between_runs(qtbot, tmp_path) -> None:
    path = str(tmp_path / "studio.ini")
    settings = QSettings(path, QSettings.Format.IniFormat)
    assert load_config(settings) == StudioConfig()
    dlg = SettingsDialog(StudioConfig())
    qtbot.addWidget(dlg)
    dlg.source_box.setCurrentIndex(dlg.source_box.findData("replay"))
    dlg.rig_edit.edit.setText("test4")
    dlg.fps_box.setValue(24.0)
    dlg.take_edit.edit.setText("/data/take1")
    dlg.model_box.setCurrentText("/models/mine.pt")
    dlg.device_box.setCurrentText("cuda")
    edited = dlg.config()
    save_config(settings, edited)
    del settings
    again = load_config(QSettings(path, QSettings.Format.IniFormat))
    assert again == edited
    assert (again.source, again.rig, again.fps, again.model, again.device) == (
        "replay", "test4", 24.0, "/models/mine.pt", "cuda"
    )  # fmt: skip
    assert again.updated(rig=None, device="cpu").device == "cpu"


# --------------------------------------------------------------------------- main window


class _Loaded:
    def __init__(self, template, trained=False):
        self.template, self.trained, self.device = template, trained, "cpu"
        self.label = "mine.pt" if trained else "UNTRAINED (random weights)"


class FakeEngine:
    """The engine's interface without capture or torch: errors and events from a thread."""

    def __init__(self, config, on_error, on_event, template=None):
        from app.studio.engine import Activity, EngineStatus

        self.config, self.on_error, self.on_event = config, on_error, on_event
        self.loaded, self.last_take, self.shutdown_calls = None, None, 0
        self.status_value = EngineStatus(Activity.IDLE, "", "", True, "cpu", 0.0, 0, 0, (), (),
                                         float("nan"), 0.0, 0, 0, 0, 0, "")  # fmt: skip
        self.template = template

    def load_model(self):
        def work():
            self.loaded = _Loaded(self.template)
            self.on_event("model", self.loaded)
            self.on_error("inference", RuntimeError("boom on the worker"))

        t = threading.Thread(target=work, name="fake-engine")
        t.start()
        t.join()

    def start_live(self):
        pass

    def status(self):
        return self.status_value

    def latest_frameset(self):
        return None

    def latest_result(self):
        return None

    def reconfigure(self, config, reload_model=False):
        self.config, self.reconfigured = config, reload_model

    def shutdown(self, timeout=2.0):
        self.shutdown_calls += 1
        return True


def test_main_window_shows_worker_errors_and_the_untrained_label(qtbot, tmp_path, template):
    from app.studio.main_window import StudioWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    engines = []

    def factory(config, on_error, on_event):
        engines.append(FakeEngine(config, on_error, on_event, template))
        return engines[-1]

    window = StudioWindow(StudioConfig(), settings, engine_factory=factory)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=3000)
    assert "boom on the worker" in window.log_view.toPlainText()
    assert window._error_box is not None and window._error_box.isVisible()
    assert "UNTRAINED" in window.model_label.text()
    assert "c0392b" in window.model_label.styleSheet()
    assert window.viewport.meshes_received == 1  # the template while no result exists
    window.apply_config(StudioConfig(rig="test4", model="/models/other.pt"))
    assert engines[0].reconfigured is True  # the model changed: reloaded
    assert load_config(settings).rig == "test4"
    import logging

    t = threading.Thread(
        target=lambda: logging.getLogger("tempeh.test").error("a log record from a thread")
    )
    t.start()
    t.join()
    qtbot.waitUntil(lambda: "a log record" in window.log_view.toPlainText(), timeout=2000)
    t0 = time.monotonic()
    window.close()
    assert time.monotonic() - t0 < 2.0 and engines[0].shutdown_calls == 1
    assert window.log_handler not in logging.getLogger().handlers


# --------------------------------------------------------------------------- command line


def test_studio_without_a_display_exits_with_its_own_status(monkeypatch, capsys) -> None:
    from app.cli import main
    from app.cmd_studio import NO_DISPLAY_EXIT, display_available

    assert display_available({"QT_QPA_PLATFORM": "offscreen"})
    assert display_available({"DISPLAY": ":1"})
    assert not display_available({"QT_QPA_PLATFORM": "xcb"})
    assert not display_available({})
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["studio", "--source", "emulated"]) == NO_DISPLAY_EXIT == 3
    assert "no display" in capsys.readouterr().err
