"""Frame rate of the studio's 3D viewport while the user orbits and meshes arrive.

``xvfb-run -a .venv/bin/python -m app.studio.viewport_bench`` (or on a desktop without
``xvfb-run``): the camera orbits on every timer tick (a user dragging the view) while new
meshes of the procedural head arrive at ``--mesh-hz``; prints the frames the viewport drew per
second. The viewport's repaint timer asks for :data:`app.studio.viewport.REPAINT_HZ`.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure")
    parser.add_argument("--mesh-hz", type=float, default=15.0, help="new meshes per second")
    parser.add_argument("--size", default="960x720", help="viewport WxH in pixels")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.studio.viewport import REPAINT_HZ, MeshViewport
    from inference.head_model import load_head_model_data

    app = QApplication.instance() or QApplication(sys.argv[:1])
    template = load_head_model_data("procedural").template
    view = MeshViewport(template)
    view.resize(w, h)
    view.show()
    base = np.asarray(template.vertices, dtype=np.float32)
    sent = [0]

    def new_mesh() -> None:
        sent[0] += 1
        view.show_mesh(base + np.float32(2.0 * np.sin(sent[0] / 5.0)))

    def orbit() -> None:
        view.camera.orbit(3.0, 0.0)
        view.content.dirty = True

    timers = []
    for interval, slot in ((1000.0 / args.mesh_hz, new_mesh), (1000.0 / REPAINT_HZ, orbit)):
        timer = QTimer()
        timer.setInterval(max(1, int(interval)))
        timer.timeout.connect(slot)
        timer.start()
        timers.append(timer)
    start_frames, start = view.frames_drawn, time.perf_counter()
    QTimer.singleShot(int(args.seconds * 1000), app.quit)
    app.exec()
    elapsed = time.perf_counter() - start
    frames = view.frames_drawn - start_frames
    if view.gl_error:
        print(f"viewport OpenGL failed: {view.gl_error}")
        return 1
    print(
        f"viewport {w}x{h}: {frames / elapsed:.1f} frames/s drawn while orbiting "
        f"({sent[0] / elapsed:.1f} meshes/s arriving; timer asks for {REPAINT_HZ} Hz)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
