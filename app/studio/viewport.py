"""The 3D viewport: the head drawn with ``MeshRenderer``, orbit / pan / zoom, grid and axes.

Threads: GUI thread only. Meshes arrive at camera rate through :meth:`show_mesh` (called by
the main window's poll timer); a ~60 Hz timer repaints when something changed.
:class:`MeshViewport` is a QOpenGLWidget whose ModernGL context wraps Qt's (created in
``initializeGL``). :class:`SoftwareViewport` is the fallback for Qt platforms without OpenGL
(``offscreen``): a :class:`~app.studio.scene.SceneThread` renders with its own EGL context and
the widget paints the image. :func:`make_viewport` picks one.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QGuiApplication,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QSurfaceFormat,
    QWheelEvent,
)
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.studio.coloring import COLOR_MODES
from app.studio.orbit import OrbitCamera
from app.studio.scene import DRAW_MODES, SceneRenderer, SceneThread, ViewportContent
from inference.head_data import HeadTemplate

log = logging.getLogger(__name__)

REPAINT_HZ = 60
NO_GL_PLATFORMS = ("offscreen", "minimal")


def default_surface_format() -> QSurfaceFormat:
    """OpenGL 3.3 core, 24-bit depth, 4× MSAA: set before the QApplication is created."""
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(24)
    fmt.setSamples(4)
    return fmt


class _ViewportApi:
    """Content, camera and mouse handling shared by both viewports (a mixin, no ``__init__``).

    Mouse: left drag orbits, right or middle drag pans, the wheel zooms, a double click resets.
    """

    content: ViewportContent
    frames_drawn: int

    def _setup(self, template: HeadTemplate | None) -> None:
        self.content = ViewportContent(template)
        self.frames_drawn = 0
        self.gl_error = ""
        self._last_pos = QPointF()
        self.setMinimumSize(320, 240)
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / REPAINT_HZ))
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # content, forwarded
    @property
    def camera(self) -> OrbitCamera:
        """The orbit camera."""
        return self.content.camera

    @property
    def template(self) -> HeadTemplate | None:
        """The topology being shown."""
        return self.content.template

    @property
    def draw_mode(self) -> str:
        return self.content.draw_mode

    @property
    def color_mode(self) -> str:
        return self.content.color_mode

    @property
    def show_coarse(self) -> bool:
        return self.content.show_coarse

    @property
    def show_grid(self) -> bool:
        return self.content.show_grid

    @property
    def meshes_received(self) -> int:
        return self.content.meshes_received

    def set_template(self, template: HeadTemplate | None) -> None:
        """Change the topology (clears the current mesh)."""
        self.content.set_template(template)

    def show_mesh(
        self,
        vertices: np.ndarray,
        coarse: np.ndarray | None = None,
        reference: np.ndarray | None = None,
    ) -> None:
        """Show a new result: (N, 3) refined vertices, optional coarse and reference, mm."""
        self.content.show_mesh(vertices, coarse, reference)

    def has_reference(self) -> bool:
        """Whether the current mesh has a reference to colour its error against."""
        return self.content.has_reference()

    def vertex_colors(self) -> np.ndarray | None:
        """(N, 3) colours of the current colour mode, None for clay."""
        return self.content.vertex_colors()

    def set_draw_mode(self, mode: str) -> None:
        """``"shaded"`` or ``"wireframe"``."""
        self.content.set_draw_mode(mode)

    def set_color_mode(self, mode: str) -> None:
        """One of :data:`app.studio.coloring.COLOR_MODES`."""
        self.content.set_color_mode(mode)

    def set_show_coarse(self, coarse: bool) -> None:
        """Show the coarse stage's vertices instead of the refined ones."""
        self.content.show_coarse = bool(coarse)
        self.content.dirty = True

    def set_show_grid(self, show: bool) -> None:
        """Toggle the grid floor and axes."""
        self.content.show_grid = bool(show)
        self.content.dirty = True

    def reset_view(self) -> None:
        """Back to the default view."""
        self.content.camera.reset()
        self.content.dirty = True

    def _pixel_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, int(self.width() * ratio)), max(1, int(self.height() * ratio))

    # mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last_pos = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        d = pos - self._last_pos
        self._last_pos = pos
        buttons = event.buttons()
        if buttons & Qt.MouseButton.LeftButton:
            self.content.camera.orbit(d.x(), d.y())
        elif buttons & (Qt.MouseButton.RightButton | Qt.MouseButton.MiddleButton):
            self.content.camera.pan(d.x(), d.y(), self.height())
        else:
            return
        self.content.dirty = True

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.content.camera.zoom(event.angleDelta().y() / 120.0)
        self.content.dirty = True

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.reset_view()


class MeshViewport(_ViewportApi, QOpenGLWidget):
    """The viewport drawn by Qt's OpenGL context (X11 / Wayland / Windows / macOS).

    Parameters
    ----------
    template : HeadTemplate, optional
        Topology and regions of the meshes to come (:meth:`set_template` changes it).
    """

    gl_failed = Signal(str)
    """(message) when no OpenGL context could be used (the rest of the studio keeps working)."""

    def __init__(self, template: HeadTemplate | None = None, parent: QWidget | None = None) -> None:
        QOpenGLWidget.__init__(self, parent)
        self._setup(template)
        self._ctx = None
        self._renderer: SceneRenderer | None = None

    def _tick(self) -> None:
        if self.content.dirty and self.isVisible():
            self.update()

    def initializeGL(self) -> None:
        import moderngl

        try:
            self._ctx = moderngl.create_context()
            self._renderer = SceneRenderer(self._ctx)
        except Exception as exc:  # moderngl/glcontext raise plain Exception types
            self.gl_error = f"OpenGL viewport unavailable: {exc}"
            log.error("%s", self.gl_error)
            self._ctx = None
            self.gl_failed.emit(self.gl_error)
            return
        log.info("viewport GL: %s", self._ctx.info.get("GL_RENDERER", "?"))
        ctx = self.context()
        if ctx is not None:
            ctx.aboutToBeDestroyed.connect(self._release_gl)

    def paintGL(self) -> None:
        if self._ctx is None or self._renderer is None:
            return
        self.content.dirty = False
        size = self._pixel_size()
        fbo = self._ctx.detect_framebuffer(self.defaultFramebufferObject())
        self._renderer.draw(fbo, self.content.state(*size), size)
        self.frames_drawn += 1

    def _release_gl(self) -> None:
        self.makeCurrent()
        if self._renderer is not None:
            self._renderer.release()
        self._renderer = None
        self._ctx = None
        self.doneCurrent()


class SoftwareViewport(_ViewportApi, QWidget):
    """The viewport for Qt platforms without OpenGL: rendered by an EGL thread, painted as
    an image (same interface as :class:`MeshViewport`)."""

    def __init__(self, template: HeadTemplate | None = None, parent: QWidget | None = None) -> None:
        QWidget.__init__(self, parent)
        self._setup(template)
        self._thread = SceneThread()
        self._image: QImage | None = None
        self._serial = 0

    def _tick(self) -> None:
        if self._thread is None:
            return
        if self.content.dirty and self.isVisible():
            self.content.dirty = False
            size = self._pixel_size()
            self._thread.request(self.content.state(*size), size)
        image, serial = self._thread.latest()
        if image is not None and serial != self._serial:
            self._serial = serial
            h, w = image.shape[:2]
            self._image = QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            self.frames_drawn += 1
            self.update()
        if self._thread.error and not self.gl_error:
            self.gl_error = self._thread.error

    def resizeEvent(self, event) -> None:
        self.content.dirty = True
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is not None:
            p.drawImage(self.rect(), self._image)
        elif self.gl_error:
            p.setPen(Qt.GlobalColor.white)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.gl_error)

    def close_renderer(self) -> None:
        """Stop the render thread (the window does this when it closes)."""
        if self._thread is not None:
            self._thread.close()
            self._thread = None

    def closeEvent(self, event) -> None:
        self.close_renderer()
        super().closeEvent(event)


def make_viewport(template: HeadTemplate | None = None) -> MeshViewport | SoftwareViewport:
    """A :class:`MeshViewport`, or a :class:`SoftwareViewport` where Qt has no OpenGL."""
    if QGuiApplication.platformName() in NO_GL_PLATFORMS:
        log.info("Qt platform %r has no OpenGL: software viewport", QGuiApplication.platformName())
        return SoftwareViewport(template)
    return MeshViewport(template)


class ViewportPanel(QWidget):
    """The viewport with its controls: draw mode, colours, coarse / refined, grid, reset."""

    def __init__(self, viewport: _ViewportApi, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewport = viewport
        self.mode_box = QComboBox()
        self.mode_box.addItems(DRAW_MODES)
        self.mode_box.currentTextChanged.connect(viewport.set_draw_mode)
        self.color_box = QComboBox()
        self.color_box.addItems(COLOR_MODES)
        self.color_box.setToolTip(
            "per-vertex colour: template regions, frame-to-frame motion (red = 5 mm), or error "
            "against the reference (red = 10 mm; only where a reference exists)"
        )
        self.color_box.currentTextChanged.connect(viewport.set_color_mode)
        self.coarse_box = QCheckBox("coarse")
        self.coarse_box.setToolTip("show the coarse stage instead of the refined mesh")
        self.coarse_box.toggled.connect(viewport.set_show_coarse)
        self.grid_box = QCheckBox("grid")
        self.grid_box.setChecked(True)
        self.grid_box.toggled.connect(viewport.set_show_grid)
        reset = QPushButton("Reset view")
        reset.clicked.connect(viewport.reset_view)
        self.info = QLabel("no mesh yet")
        # Long notes (the UNTRAINED warning) must not widen the window: they are clipped.
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        bar = QHBoxLayout()
        for w in (QLabel("Draw"), self.mode_box, QLabel("Colour"), self.color_box):
            bar.addWidget(w)
        for w in (self.coarse_box, self.grid_box, reset):
            bar.addWidget(w)
        bar.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(viewport, 1)
