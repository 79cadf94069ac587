"""What the 3D viewport shows, and the GL code that draws it (no Qt).

:class:`ViewportContent` holds the meshes, the display modes and the orbit camera (GUI
thread). :class:`SceneRenderer` draws a :class:`SceneState` (a frozen snapshot of it) with
ModernGL into any framebuffer: the QOpenGLWidget's, or an EGL one on :class:`SceneThread`, the
fallback for Qt platforms without OpenGL (``offscreen``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from app.studio.coloring import (
    COLOR_MODES,
    ERROR_SCALE_MM,
    MOTION_SCALE_MM,
    heat_colors,
    region_colors,
    vertex_distances,
)
from app.studio.orbit import OrbitCamera
from inference.head_data import HeadTemplate

log = logging.getLogger(__name__)

BACKGROUND = (0.13, 0.14, 0.16)
DRAW_MODES = ("shaded", "wireframe")


@dataclass(frozen=True, eq=False)
class SceneState:
    """One frame to draw.

    Attributes
    ----------
    vertices : np.ndarray or None
        (N, 3) float32 mm, None for no mesh.
    faces : np.ndarray or None
        (F, 3) triangles.
    colors : np.ndarray or None
        (N, 3) float32 per-vertex colours, None for clay.
    draw_mode : str
        ``"shaded"`` or ``"wireframe"``.
    show_grid : bool
    view, projection : np.ndarray
        (4, 4) GL matrices.
    """

    vertices: np.ndarray | None
    faces: np.ndarray | None
    colors: np.ndarray | None
    draw_mode: str
    show_grid: bool
    view: np.ndarray
    projection: np.ndarray


class ViewportContent:
    """Meshes, modes and camera of the viewport (GUI thread).

    Parameters
    ----------
    template : HeadTemplate, optional
        Topology and regions of the meshes to come.
    """

    def __init__(self, template: HeadTemplate | None = None) -> None:
        self.camera = OrbitCamera()
        self.draw_mode = "shaded"
        self.color_mode = "none"
        self.show_coarse = False
        self.show_grid = True
        self.meshes_received = 0
        self.dirty = True
        self.template: HeadTemplate | None = None
        self._regions: np.ndarray | None = None
        self._refined: np.ndarray | None = None
        self._coarse: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self.set_template(template)

    def set_template(self, template: HeadTemplate | None) -> None:
        """Change the topology (clears the current mesh)."""
        self.template = template
        self._regions = region_colors(template) if template is not None else None
        self._refined = self._coarse = self._previous = self._reference = None
        self.dirty = True

    def show_mesh(
        self,
        vertices: np.ndarray,
        coarse: np.ndarray | None = None,
        reference: np.ndarray | None = None,
    ) -> bool:
        """Show a result: (N, 3) refined vertices, optional coarse and reference, mm.

        Returns False (and logs) when the shape does not match the template.
        """
        if self.template is None:
            return False
        n = self.template.num_vertices
        v = np.asarray(vertices, dtype=np.float32)
        if v.shape != (n, 3):
            log.warning("viewport: mesh of shape %s ignored (template has %d vertices)", v.shape, n)
            return False
        self._previous = self.current()
        self._refined = v
        self._coarse = None if coarse is None else np.asarray(coarse, dtype=np.float32)
        ref = None if reference is None else np.asarray(reference, dtype=np.float32)
        # A reference of another topology (the performer's head under a FLAME model) is unusable.
        self._reference = ref if ref is not None and ref.shape == v.shape else None
        self.meshes_received += 1
        self.dirty = True
        return True

    def has_reference(self) -> bool:
        """Whether the current mesh has a reference to colour its error against."""
        return self._reference is not None

    def set_draw_mode(self, mode: str) -> None:
        """``"shaded"`` or ``"wireframe"``."""
        if mode not in DRAW_MODES:
            raise ValueError(f"draw mode must be one of {DRAW_MODES}, got {mode!r}")
        self.draw_mode = mode
        self.dirty = True

    def set_color_mode(self, mode: str) -> None:
        """One of :data:`app.studio.coloring.COLOR_MODES`."""
        if mode not in COLOR_MODES:
            raise ValueError(f"colour mode must be one of {COLOR_MODES}, got {mode!r}")
        self.color_mode = mode
        self.dirty = True

    def current(self) -> np.ndarray | None:
        """The vertices shown: coarse when asked for and available, else refined."""
        if self.show_coarse and self._coarse is not None:
            return self._coarse
        return self._refined

    def vertex_colors(self) -> np.ndarray | None:
        """(N, 3) float32 colours of the current colour mode, None for the plain clay."""
        current = self.current()
        if current is None or self.color_mode == "none":
            return None
        if self.color_mode == "regions":
            return self._regions
        if self.color_mode == "motion":
            if self._previous is None or self._previous.shape != current.shape:
                return heat_colors(np.zeros(len(current)), MOTION_SCALE_MM)
            return heat_colors(vertex_distances(current, self._previous), MOTION_SCALE_MM)
        if self._reference is None:
            return None
        return heat_colors(vertex_distances(current, self._reference), ERROR_SCALE_MM)

    def state(self, width: int, height: int) -> SceneState:
        """A snapshot to draw into a ``width × height`` framebuffer."""
        faces = self.template.faces if self.template is not None else None
        return SceneState(
            self.current(),
            faces,
            self.vertex_colors(),
            self.draw_mode,
            self.show_grid,
            self.camera.view(),
            self.camera.projection(width, height),
        )


class SceneRenderer:
    """Draws :class:`SceneState` s with ModernGL (on the thread where ``ctx`` is current)."""

    def __init__(self, ctx) -> None:
        from app.studio.gl_lines import LineRenderer, grid_and_axes
        from render.mesh_renderer import MeshRenderer

        self.ctx = ctx
        self.mesh = MeshRenderer(ctx)
        self.lines = LineRenderer(ctx, *grid_and_axes())
        self._uploaded: np.ndarray | None = None

    def draw(self, fbo, state: SceneState, size: tuple[int, int]) -> None:
        """Clear ``fbo`` (its ``size`` pixels) and draw the grid and the mesh."""
        fbo.viewport = (0, 0, *size)
        fbo.use()
        fbo.clear(*BACKGROUND, 1.0, depth=1.0)
        if state.show_grid:
            self.lines.draw(fbo, state.view, state.projection)
        if state.vertices is not None and state.faces is not None:
            if state.vertices is not self._uploaded:
                self.mesh.set_mesh(state.vertices, state.faces)
                self._uploaded = state.vertices
            self.mesh.draw(fbo, state.view, state.projection, state.draw_mode, state.colors)

    def release(self) -> None:
        """Free the GL objects (on the context's thread)."""
        self.mesh.release()
        self.lines.release()
        self._uploaded = None


class SceneThread:
    """Renders scene states into images on its own thread with a headless EGL context.

    The fallback viewport for Qt platforms without OpenGL: the GUI submits the newest state
    (older pending ones are dropped) and picks the newest image up on its timer.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: tuple[SceneState, tuple[int, int]] | None = None
        self._image: np.ndarray | None = None
        self._serial = 0
        self._halt = False
        self.error = ""
        self._thread = threading.Thread(target=self._run, name="viewport-render", daemon=True)
        self._thread.start()

    def request(self, state: SceneState, size: tuple[int, int]) -> None:
        """Render ``state`` at ``size`` = (width, height) next (replaces a pending request)."""
        with self._cond:
            self._pending = (state, (max(1, size[0]), max(1, size[1])))
            self._cond.notify_all()

    def latest(self) -> tuple[np.ndarray | None, int]:
        """The newest (H, W, 3) uint8 RGB image (top row first) and its serial number."""
        with self._cond:
            return self._image, self._serial

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and release its context."""
        with self._cond:
            self._halt = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        from render.context import create_headless_context

        try:
            ctx = create_headless_context()
            renderer = SceneRenderer(ctx)
        except Exception as exc:  # no EGL either: the viewport says so
            self.error = f"no OpenGL for the viewport: {exc}"
            log.error("%s", self.error)
            return
        fbo, fbo_size = None, (0, 0)
        try:
            while True:
                with self._cond:
                    while self._pending is None and not self._halt:
                        self._cond.wait()
                    if self._halt:
                        break
                    (state, size), self._pending = self._pending, None
                if size != fbo_size:
                    _release_fbo(fbo)
                    fbo = ctx.simple_framebuffer(size, components=4)
                    fbo_size = size
                try:
                    renderer.draw(fbo, state, size)
                    raw = fbo.read(components=3, alignment=1)
                except Exception as exc:  # a bad frame is logged; the next may work
                    log.error("viewport render failed: %s", exc)
                    continue
                image = np.flipud(np.frombuffer(raw, np.uint8).reshape(size[1], size[0], 3))
                with self._cond:
                    self._image = np.ascontiguousarray(image)
                    self._serial += 1
        finally:
            renderer.release()
            _release_fbo(fbo)
            ctx.release()


def _release_fbo(fbo) -> None:
    if fbo is None:
        return
    for attachment in (*fbo.color_attachments, fbo.depth_attachment):
        if attachment is not None:
            attachment.release()
    fbo.release()
