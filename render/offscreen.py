"""Offscreen rendering in a calibrated camera's pixel grid: colour images and depth maps.

Threads: an :class:`OffscreenRenderer` and its context belong to the thread that created them
(see :mod:`render.context`); a render worker creates its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import moderngl
import numpy as np

from capture.camera import Camera, depth
from capture.errors import RenderError
from render.camera_math import opengl_projection_from_K, view_from_Rt
from render.context import create_headless_context
from render.mesh_renderer import DEFAULT_LIGHT_DIR, MeshRenderer, Mode

log = logging.getLogger(__name__)

Color = Sequence[int]


class OffscreenRenderer:
    """A ``width × height`` colour framebuffer with depth (optionally MSAA) and a float depth one.

    Parameters
    ----------
    width, height : int
        Framebuffer size in pixels.
    ctx : moderngl.Context, optional
        Context to render with (current on the calling thread). Default: a new headless EGL
        context owned, and released, by this renderer.
    samples : int
        MSAA samples for colour images (0 = off; clamped to the driver's limit). Depth maps
        never use MSAA: averaging depths across an edge would invent surfaces.

    Notes
    -----
    Images come back top-down in OpenCV order: ``image[v, u]`` is pixel ``(u, v)``. GL reads rows
    bottom-up, so every readback is flipped with ``np.flipud`` (see :mod:`render.camera_math`).
    """

    def __init__(
        self, width: int, height: int, ctx: moderngl.Context | None = None, samples: int = 0
    ) -> None:
        if width <= 0 or height <= 0:
            raise RenderError(f"framebuffer size must be positive, got {width}x{height}")
        self._owns_ctx = ctx is None
        self.ctx = create_headless_context() if ctx is None else ctx
        self.width, self.height = int(width), int(height)
        max_samples = int(self.ctx.info.get("GL_MAX_SAMPLES", 0))
        self.samples = min(int(samples), max_samples) if samples > 0 else 0
        if self.samples != samples:
            log.info("MSAA %d samples unavailable, using %d", samples, self.samples)
        size = (self.width, self.height)
        ctx = self.ctx
        self._color_fbo = ctx.framebuffer(
            ctx.renderbuffer(size, 4, samples=self.samples),
            ctx.depth_renderbuffer(size, samples=self.samples),
        )
        self._resolve_fbo = (
            ctx.framebuffer(ctx.renderbuffer(size, 4)) if self.samples else self._color_fbo
        )
        self._depth_fbo: moderngl.Framebuffer | None = None
        self.mesh = MeshRenderer(ctx)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    # ------------------------------------------------------------------ generic views

    def render(
        self,
        view: np.ndarray,
        projection: np.ndarray,
        vertices: np.ndarray,
        faces: np.ndarray,
        mode: Mode = "shaded",
        colors: np.ndarray | Sequence[float] | None = None,
        background: Color = (0, 0, 0),
        light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ) -> np.ndarray:
        """Render a mesh with GL ``view`` and ``projection`` matrices.

        Parameters
        ----------
        view, projection : np.ndarray
            (4, 4) GL matrices (:mod:`render.camera_math`).
        vertices : np.ndarray
            (N, 3) float world positions, mm.
        faces : np.ndarray
            (F, 3) int vertex indices (topology re-uploaded only when it changes).
        mode, colors, light_dir
            As :meth:`render.mesh_renderer.MeshRenderer.draw`.
        background : sequence of int
            (3,) RGB uint8 background colour.

        Returns
        -------
        np.ndarray
            (height, width, 3) uint8 RGB image, top row first.
        """
        self.mesh.set_mesh(vertices, faces)
        bg = np.asarray(background, dtype=np.float64)
        if bg.shape != (3,):
            raise RenderError(f"background must be an RGB triple, got {background!r}")
        r, g, b = (bg / 255.0).tolist()
        self._color_fbo.clear(r, g, b, 1.0, depth=1.0)
        self.mesh.draw(self._color_fbo, view, projection, mode, colors, light_dir)
        if self.samples:
            self.ctx.copy_framebuffer(self._resolve_fbo, self._color_fbo)
        raw = self._resolve_fbo.read(components=3, alignment=1)
        image = np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 3)
        return np.ascontiguousarray(np.flipud(image))

    # ------------------------------------------------------------------ camera views

    def render_camera(
        self,
        camera: Camera,
        vertices_mm: np.ndarray,
        faces: np.ndarray,
        mode: Mode = "shaded",
        colors: np.ndarray | Sequence[float] | None = None,
        background: Color = (0, 0, 0),
        light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ) -> np.ndarray:
        """Render a mesh exactly in ``camera``'s pixel grid (pinhole; distortion ignored).

        Parameters
        ----------
        camera : capture.camera.Camera
            Its ``width × height`` must equal this renderer's size.
        vertices_mm, faces, mode, colors, background, light_dir
            As :meth:`render`.

        Returns
        -------
        np.ndarray
            (height, width, 3) uint8 RGB; pixel ``[v, u]`` is sampled at OpenCV pixel ``(u, v)``.
        """
        view, projection = self.camera_matrices(camera, vertices_mm)
        return self.render(
            view, projection, vertices_mm, faces, mode, colors, background, light_dir
        )

    def render_depth(
        self,
        camera: Camera,
        vertices_mm: np.ndarray,
        faces: np.ndarray,
        cull_back_faces: bool = False,
    ) -> np.ndarray:
        """Camera-space depth map of a mesh in ``camera``'s pixel grid (``cull_back_faces``:
        see :meth:`render.mesh_renderer.MeshRenderer.draw_depth`).

        Returns
        -------
        np.ndarray
            (height, width) float32 camera ``z`` in mm (OpenCV frame, exact per pixel centre up
            to float32), 0 where no surface is seen.
        """
        view, projection = self.camera_matrices(camera, vertices_mm)
        self.mesh.set_mesh(vertices_mm, faces)
        fbo = self._depth_framebuffer()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.mesh.draw_depth(fbo, view, projection, cull_back_faces)
        raw = fbo.read(components=1, dtype="f4", alignment=1)
        z = np.frombuffer(raw, dtype=np.float32).reshape(self.height, self.width)
        return np.ascontiguousarray(np.flipud(z))

    def camera_matrices(
        self, camera: Camera, vertices_mm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """GL ``(view, projection)`` of ``camera`` with clip planes fitted around the mesh."""
        if camera.image_size != self.size:
            raise RenderError(
                f"camera {camera.name!r} is {camera.width}x{camera.height} but the renderer is "
                f"{self.width}x{self.height}; create an OffscreenRenderer of the camera's size"
            )
        near, far = fit_clip_planes(depth(camera, np.asarray(vertices_mm, dtype=np.float64)))
        return view_from_Rt(camera.R, camera.t), opengl_projection_from_K(
            camera.K, camera.width, camera.height, near, far
        )

    def _depth_framebuffer(self) -> moderngl.Framebuffer:
        if self._depth_fbo is None:
            size = (self.width, self.height)
            self._depth_fbo = self.ctx.framebuffer(
                self.ctx.renderbuffer(size, 1, dtype="f4"), self.ctx.depth_renderbuffer(size)
            )
        return self._depth_fbo

    # ------------------------------------------------------------------ lifetime

    def release(self) -> None:
        """Free GL objects (and the context when this renderer created it), on its thread."""
        self.mesh.release()
        fbos = {id(f): f for f in (self._color_fbo, self._resolve_fbo, self._depth_fbo) if f}
        for fbo in fbos.values():
            for attachment in (*fbo.color_attachments, fbo.depth_attachment):
                if attachment is not None:
                    attachment.release()
            fbo.release()
        if self._owns_ctx:
            self.ctx.release()

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def fit_clip_planes(z_mm: np.ndarray) -> tuple[float, float]:
    """Near and far planes (mm) enclosing camera-space depths ``z_mm`` (N,) with margin.

    The near plane stays at most half the nearest depth so no vertex in front of the camera is
    clipped, and at least 1e-3 of the farthest so depth-buffer precision is kept.
    """
    z = np.asarray(z_mm, dtype=np.float64)
    z_max = float(z.max(initial=0.0))
    if z_max <= 0.0:
        return 1.0, 2.0  # everything behind the camera: any valid planes give an empty image
    z_min = max(float(z.min()), 0.0)
    near = max(0.5 * z_min, 1e-3 * z_max)
    return near, 1.5 * z_max + 1.0
