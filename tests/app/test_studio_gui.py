"""The studio under a real X server (Xvfb) with the GL viewport: screenshot and end to end.

Qt picks its platform once per process, so each check runs the studio in a subprocess with
``QT_QPA_PLATFORM=xcb`` on an Xvfb display this module starts (skipped with the reason when
Xvfb is missing or does not start). Run as a script, this file is the end-to-end driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BACKGROUND = (33, 36, 41)  # app.studio.scene.BACKGROUND in 8 bits

pytestmark = [pytest.mark.gl]


@pytest.fixture(scope="module")
def xvfb_display():
    """``:N`` of an Xvfb server started for this module (stopped afterwards)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xauth)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    number = b""
    deadline = time.monotonic() + 15
    with os.fdopen(r, "rb") as pipe:
        while time.monotonic() < deadline and not number.endswith(b"\n"):
            chunk = pipe.read(1)
            if not chunk:
                break
            number += chunk
    if not number.strip() or proc.poll() is not None:
        proc.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number.decode().strip()}"
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def studio_env(display: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WAYLAND_DISPLAY", None)
    env.update(
        DISPLAY=display,
        QT_QPA_PLATFORM="xcb",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PYTHONPATH=str(REPO),
    )
    return env


def viewport_region(img: np.ndarray) -> tuple[slice, slice]:
    """Bounding box of the viewport's background colour in a screenshot (H, W, 3)."""
    bg = np.all(img[..., :3] == BACKGROUND, axis=-1)
    rows, cols = np.nonzero(bg.sum(axis=1) > 50)[0], np.nonzero(bg.sum(axis=0) > 50)[0]
    assert len(rows) and len(cols), "no viewport background in the screenshot"
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def clay_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the lit clay head: warm (red over blue) but not the saturated red x axis."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > b + 12) & (g > 0.6 * r) & (r > 40)


def test_screenshot_shows_the_head(xvfb_display, tmp_path) -> None:
    from PIL import Image

    shot = tmp_path / "studio.png"
    # Replay without a take: nothing streams, the viewport shows the model's template head.
    cmd = [sys.executable, "-m", "app", "studio", "--source", "replay"]
    cmd += ["--screenshot", str(shot), "--quit-after", "5"]
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, env=studio_env(xvfb_display, tmp_path), capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 60
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    rows, cols = viewport_region(img)
    view = img[rows, cols]
    h, w = view.shape[:2]
    assert h > 200 and w > 300
    head = clay_mask(view)
    share = head.mean()
    # The default orbit camera (900 mm, 30° fov) sees a 320 mm tall head as ~1/3 of the
    # height: a few percent to a third of the pixels.
    assert 0.02 < share < 0.35, share
    ys, xs = np.nonzero(head)
    cy, cx = ys.mean() / h, xs.mean() / w
    assert 0.3 < cy < 0.7 and 0.35 < cx < 0.65, (cy, cx)
    # The grid floor is drawn below the head.
    grey = np.all(np.abs(view.astype(int) - (107, 107, 115)) < 30, axis=-1) & ~head
    assert grey[int(0.7 * h) :].mean() > grey[: int(0.3 * h)].mean()


@pytest.mark.camera
def test_studio_end_to_end(xvfb_display, tmp_path) -> None:
    pytest.importorskip("pypylon", reason="pypylon cannot load")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(report_path)],
        env=studio_env(xvfb_display, tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    report = json.loads(report_path.read_text())
    assert report["errors"] == [], report["errors"]
    assert report["live_results"] >= 2
    assert report["frames_drawn_live"] >= 2  # the GL viewport repainted with new meshes
    assert report["thumbnails"] is True
    assert report["overlay_pixels"] > 0  # the (untrained, tiny) mesh drawn on the camera
    assert report["take_sets"] >= 15
    assert report["replay_position"] > 0
    assert report["replay_results"] >= 1
    assert report["export_exported"] >= 1
    assert report["usd_frames"] == report["export_exported"]
    assert report["close_s"] < 2.0
    assert report["threads"] == [], report["threads"]


# --------------------------------------------------------------------------- driver


def _drive(tmp: Path, report_path: Path) -> int:
    """Live → record 2 s → replay → export USD → quit, writing a JSON report."""
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from app.studio.config import StudioConfig
    from app.studio.engine import Activity
    from app.studio.main_window import StudioWindow
    from app.studio.viewport import default_surface_format

    os.environ.setdefault("QT_XCB_GL_INTEGRATION", "xcb_egl")
    QSurfaceFormat.setDefaultFormat(default_surface_format())
    app = QApplication([sys.argv[0]])
    settings = QSettings(str(tmp / "studio.ini"), QSettings.Format.IniFormat)
    config = StudioConfig(
        source="emulated", rig="test4", size="160x120", fps=15.0, takes_dir=str(tmp / "takes")
    )
    window = StudioWindow(config, settings, error_dialogs=False)
    window.show()
    engine, report = window.engine, {}

    def wait(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    wait(lambda: engine.activity is Activity.LIVE, 90, "live capture")
    drawn0 = window.viewport.frames_drawn
    wait(lambda: window.results_shown >= 2, 90, "live meshes")
    wait(lambda: window.viewport.frames_drawn > drawn0 + 1, 10, "viewport repaint")
    report["live_results"] = window.results_shown
    report["frames_drawn_live"] = window.viewport.frames_drawn - drawn0
    wait(lambda: all(t.has_image for t in window.grid.tiles), 10, "thumbnails")
    report["thumbnails"] = all(t.has_image for t in window.grid.tiles)
    detail = window.open_camera(1)
    wait(lambda: detail.info.text().endswith("mesh overlaid"), 10, "overlay")
    raw = engine.latest_frameset().frames[1].image
    img = detail.last_image.astype(int)
    report["overlay_pixels"] = int(((img[..., 1] - img[..., 0]) > 60).sum()) if raw.ndim == 2 else 0

    window.record_for(2.0)
    wait(lambda: engine.last_take is not None, 30, "the take")
    take = engine.last_take
    from capture.take import TakeReader

    report["take_sets"] = len(TakeReader(take).records)

    shown0 = window.results_shown
    window.open_take(take)
    wait(lambda: window.replay_bar.player is not None, 30, "replay")
    player = window.replay_bar.player
    window.replay_bar.play_button.click()
    wait(lambda: player.status().position >= 3, 30, "replay playing")
    report["replay_position"] = player.status().position
    wait(lambda: window.results_shown > shown0, 60, "replay meshes")
    report["replay_results"] = window.results_shown - shown0
    window.replay_bar.play_button.click()  # pause

    dlg = window.open_export()
    for fmt, box in dlg.format_boxes.items():
        box.setChecked(fmt == "usd")
    dlg.reconstruct_box.setChecked(False)
    dlg.dest_edit.setText(str(tmp / "export"))
    dlg.start()
    wait(lambda: dlg.outcome is not None or dlg.error is not None, 60, "export")
    if dlg.error is not None:
        raise dlg.error
    report["export_exported"] = dlg.outcome.exported
    from inference.mesh_sequence import load_sequence

    usd = [p for p in dlg.outcome.paths if p.suffix == ".usd"]
    report["usd_frames"] = load_sequence(usd[0]).num_frames if usd else 0

    def others() -> list[str]:
        return [t.name for t in threading.enumerate() if t is not threading.main_thread()]

    t0 = time.monotonic()
    window.close()
    report["close_s"] = time.monotonic() - t0
    app.processEvents()
    report["threads_at_close"] = others()
    # A reconstruction in flight cannot be interrupted: its (daemon) thread ends after the set.
    deadline = time.monotonic() + 15
    while others() and time.monotonic() < deadline:
        time.sleep(0.05)
    report["threads"] = others()
    report["errors"] = [f"{w}: {e}" for w, e in window.errors]
    report_path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(_drive(Path(sys.argv[1]), Path(sys.argv[2])))
