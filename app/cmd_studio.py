"""``tempeh studio``: the PySide6 studio window (the only command that loads Qt).

Without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` and ``QT_QPA_PLATFORM`` not
``offscreen``) it says so and exits with :data:`NO_DISPLAY_EXIT`, so scripts can fall back to
headless commands (or run it under ``xvfb-run``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

NO_DISPLAY_EXIT = 3
"""Exit status when no display is available (distinct from errors, which exit with 2)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``studio``."""
    s = subparsers.add_parser(
        "studio",
        help="the studio window: live cameras, 3D head, recording, replay, export",
        description="Open the studio. Options override the remembered settings for this run.",
    )
    s.add_argument("--source", choices=("emulated", "basler", "replay"), default=None)
    s.add_argument("--take", default=None, help="take folder to replay (implies --source replay)")
    s.add_argument("--rig", default=None, help="shipped rig name or rig file")
    s.add_argument("--size", default=None, help="WxH: rescale the rig's images")
    s.add_argument("--fps", type=float, default=None, help="target sets per second")
    s.add_argument("--model", default=None, help="'default' or a model / checkpoint file")
    s.add_argument("--flame", default=None, help="FLAME pickle for FLAME-based models")
    s.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1)")
    s.add_argument("--takes-dir", default=None, help="folder for new recordings")
    s.add_argument(
        "--record", type=float, default=None, metavar="SECONDS", help="record this long once live"
    )
    s.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the window")
    s.add_argument(
        "--quit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close the window after this long (the screenshot is taken just before)",
    )
    s.set_defaults(handler=_studio)


def display_available(env: dict[str, str] | None = None) -> bool:
    """Whether Qt can open windows: a display server, or the offscreen platform."""
    env = dict(os.environ) if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform.startswith("offscreen") or platform.startswith("minimal"):
        return True
    if platform.startswith("wayland"):
        return bool(env.get("WAYLAND_DISPLAY"))
    if platform.startswith("xcb"):
        return bool(env.get("DISPLAY"))
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _studio(args: argparse.Namespace) -> int:
    if not display_available():
        print(
            "tempeh studio: no display: DISPLAY and WAYLAND_DISPLAY are unset and "
            "QT_QPA_PLATFORM is not 'offscreen'. Run it on a desktop, under 'xvfb-run -a "
            "tempeh studio', or use the headless commands (tempeh record, tempeh head …).",
            file=sys.stderr,
        )
        return NO_DISPLAY_EXIT
    # One GL stack per process: Qt's viewport context through EGL like the offscreen renders
    # (an EGL context next to a GLX one crashed or rendered wrong frames; platform.md).
    os.environ.setdefault("QT_XCB_GL_INTEGRATION", "xcb_egl")
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from app.studio.config import StudioConfig
    from app.studio.engine import Activity
    from app.studio.main_window import StudioWindow
    from app.studio.settings import load_config, open_settings
    from app.studio.viewport import default_surface_format

    QSurfaceFormat.setDefaultFormat(default_surface_format())
    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings = open_settings()
    source = args.source or ("replay" if args.take else None)
    config = load_config(settings, StudioConfig()).updated(
        source=source,
        take=args.take,
        rig=args.rig,
        size=args.size,
        fps=args.fps,
        model=args.model,
        flame=args.flame,
        device=args.device,
        takes_dir=args.takes_dir,
    )
    window = StudioWindow(config, settings)
    window.show()
    status = {"code": 0}
    if args.record:
        recorded = {"done": False}

        def on_activity(name: str, value: object) -> None:
            if name == "activity" and value is Activity.LIVE and not recorded["done"]:
                recorded["done"] = True
                window.record_for(args.record)

        window.bridge.event.connect(on_activity)
    if args.quit_after is not None:

        def finish() -> None:
            if args.screenshot is not None:
                try:
                    window.screenshot(args.screenshot)
                    print(f"screenshot saved to {args.screenshot}")
                except OSError as exc:
                    print(f"tempeh studio: error: {exc}", file=sys.stderr)
                    status["code"] = 2
            window.close()

        QTimer.singleShot(int(args.quit_after * 1000), finish)
    elif args.screenshot is not None:
        QTimer.singleShot(3000, lambda: window.screenshot(args.screenshot))
    app.exec()
    return status["code"]
