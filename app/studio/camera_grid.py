"""The camera grid: one live thumbnail per rig camera, and an enlarged view with the mesh on it.

Threads: GUI thread only; the main window pushes the latest frame set on its poll timer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.studio.overlay import draw_wireframe
from app.studio.qimage import to_pixmap
from capture.camera import Rig
from capture.frames import FrameSet

THUMB_WIDTH = 160


@dataclass(frozen=True)
class CameraState:
    """What a tile shows about one camera.

    Attributes
    ----------
    fps : float
        Frames per second delivered recently (from frame ids and host timestamps).
    missing : bool
        The camera has no frame in the latest set.
    lost : bool
        The session considers the camera lost (no frame for several sets).
    dropped : int
        Sets that lacked this camera's view since the session started.
    """

    fps: float = 0.0
    missing: bool = False
    lost: bool = False
    dropped: int = 0

    @property
    def label(self) -> str:
        """``"LOST"``, ``"MISSING"`` or ``"ok"``."""
        return "LOST" if self.lost else "MISSING" if self.missing else "ok"


class CameraRates:
    """Per-camera frame rates from the frame ids and host timestamps of successive sets.

    Sets may be skipped between calls (the GUI samples the latest one): the rate is the frame
    id advance over the elapsed host time, measured over at least ``window_s``.
    """

    def __init__(self, n: int, window_s: float = 0.5) -> None:
        self.window_ns = int(window_s * 1e9)
        self._anchor: list[tuple[int, int] | None] = [None] * n
        self.rates = [0.0] * n

    def update(self, fs: FrameSet) -> list[float]:
        """Account for ``fs``; returns the per-camera rates (frames/s)."""
        for i, f in enumerate(fs.frames):
            if f is None or i >= len(self.rates):
                continue
            anchor = self._anchor[i]
            if anchor is None or f.frame_id < anchor[0]:
                self._anchor[i] = (f.frame_id, f.host_timestamp_ns)
                continue
            dt = f.host_timestamp_ns - anchor[1]
            if dt >= self.window_ns:
                self.rates[i] = (f.frame_id - anchor[0]) / (dt / 1e9)
                self._anchor[i] = (f.frame_id, f.host_timestamp_ns)
        return list(self.rates)


class CameraTile(QWidget):
    """Thumbnail, name, rate and state of one camera; a click emits ``clicked(index)``."""

    clicked = Signal(int)

    def __init__(self, index: int, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index, self.name = index, name
        self.image_label = QLabel("no frame")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(96, 72)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image_label.setStyleSheet("background: #202022; color: #888;")
        self.caption = QLabel(name)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(1)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.caption)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"camera {name}: click to enlarge with the mesh overlaid")
        self.state = CameraState()
        self.has_image = False

    def set_frame(self, image: np.ndarray | None, state: CameraState) -> None:
        """Show ``image`` (None keeps the last one) and the camera's state."""
        self.state = state
        if image is not None:
            w = max(32, min(THUMB_WIDTH, self.image_label.width()))
            h = max(24, round(w * image.shape[0] / image.shape[1]))
            pix = to_pixmap(image).scaled(
                w, h, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
            )
            self.image_label.setPixmap(pix)
            self.has_image = True
        color = {"ok": "#bbb", "MISSING": "#e0a030", "LOST": "#ff4040"}[state.label]
        text = f"{self.name}  {state.fps:4.1f} fps"
        if state.label != "ok":
            text += f"  {state.label}"
        if state.dropped:
            text += f"  ({state.dropped} dropped)"
        self.caption.setText(text)
        self.caption.setStyleSheet(f"color: {color};")

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.index)


class CameraGrid(QWidget):
    """Every camera of a rig as a live thumbnail.

    Parameters
    ----------
    rig : Rig, optional
        The cameras to show (:meth:`set_rig` changes them).
    """

    camera_clicked = Signal(int)
    """(camera index) when a tile is clicked."""

    def __init__(self, rig: Rig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setSpacing(3)
        self.tiles: list[CameraTile] = []
        self.rig: Rig | None = None
        self._rates = CameraRates(0)
        self.set_rig(rig)

    def set_rig(self, rig: Rig | None) -> None:
        """Rebuild the tiles for ``rig`` (columns: about the square root of the count)."""
        for tile in self.tiles:
            self._layout.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        self.rig = rig
        if rig is None:
            return
        cols = max(1, math.ceil(math.sqrt(len(rig))))
        for i, cam in enumerate(rig.cameras):
            tile = CameraTile(i, cam.name, self)
            tile.clicked.connect(self.camera_clicked)
            self._layout.addWidget(tile, i // cols, i % cols)
            self.tiles.append(tile)
        self._rates = CameraRates(len(rig))

    def update_frames(
        self,
        fs: FrameSet | None,
        lost: tuple[str, ...] = (),
        dropped: tuple[int, ...] = (),
    ) -> None:
        """Show the latest set ``fs``; ``lost`` camera names and per-camera ``dropped`` counts."""
        if fs is None or self.rig is None or len(fs.frames) != len(self.tiles):
            return
        rates = self._rates.update(fs)
        for i, (tile, frame) in enumerate(zip(self.tiles, fs.frames, strict=True)):
            state = CameraState(
                fps=rates[i],
                missing=frame is None,
                lost=tile.name in lost,
                dropped=dropped[i] if i < len(dropped) else 0,
            )
            tile.set_frame(None if frame is None else frame.image, state)


class CameraDetail(QDialog):
    """One camera enlarged, with the current mesh projected onto it as a wireframe.

    Non-modal; the main window calls :meth:`show_view` on its poll timer.
    """

    def __init__(self, index: int, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.setWindowTitle(f"Camera {name}")
        self.image_label = QLabel("waiting for a frame")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(480, 360)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.info = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.info)
        self.resize(720, 600)
        self.last_image: np.ndarray | None = None
        self._last_shown = 0.0

    def show_view(
        self,
        fs: FrameSet | None,
        vertices: np.ndarray | None,
        faces: np.ndarray | None,
    ) -> None:
        """Show this camera's view of ``fs`` with ``vertices`` (N, 3 mm) drawn over it."""
        if fs is None or self.index >= len(fs.frames):
            return
        frame = fs.frames[self.index]
        if frame is None:
            self.info.setText(f"set {fs.sequence}: no frame from this camera")
            return
        camera = fs.rig.cameras[self.index]
        if vertices is not None and faces is not None:
            image = draw_wireframe(frame.image, camera, vertices, faces)
            note = "mesh overlaid"
        else:
            image = np.asarray(frame.image)
            note = "no mesh yet"
        self.last_image = image
        self._last_shown = time.monotonic()
        pix = to_pixmap(image).scaled(
            self.image_label.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.image_label.setPixmap(pix)
        self.info.setText(f"set {fs.sequence}, frame {frame.frame_id}: {note}")
