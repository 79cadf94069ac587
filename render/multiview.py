"""Render a mesh into every camera of a rig, with exact intrinsics, extrinsics and distortion.

How: each camera gets an undistorted **canvas**, its pinhole image enlarged by a margin so
that every distorted output pixel has a source; all canvases are viewports of one atlas
framebuffer, drawn in one pass per camera and read back once per set (a second readback of
a float attachment when depth maps are asked for). The distortion is then
applied on the CPU with ``cv2.remap`` and maps computed once per camera from
:func:`capture.camera.undistort` (output pixel → undistorted canvas pixel). Depth maps are
remapped with nearest-neighbour sampling so foreground and background never mix.

Threads: a :class:`MultiViewRenderer` holds GL objects of one context; create, use and
release it on the thread where that context is current.
:class:`render.render_thread.RenderThread` owns such a thread and context and takes requests
from any thread.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import moderngl
import numpy as np
from scipy.interpolate import RectBivariateSpline

from capture.camera import Camera, Rig, undistort
from capture.errors import RenderError
from render.appearance import Appearance, projector_matrix, speckle_texture
from render.camera_math import gl_matrix_bytes, opengl_projection_from_K, view_from_Rt
from render.context import create_headless_context
from render.mesh_renderer import check_faces, check_vertices, load_shader, vertex_normals
from render.offscreen import fit_clip_planes
from render.primitives import icosphere

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 2
"""Extra canvas pixels beyond what the distortion needs (bilinear support plus safety)."""
MAX_CANVAS_GROWTH = 3.0
"""A canvas larger than this factor times the image means a broken distortion model."""
EXACT_MAP_PIXELS = 300_000
"""Up to this many pixels the undistortion is evaluated at every pixel, else on a grid."""
MAP_GRID_STEP = 8
NOISE_BANK_SEED = 0x5E1505
"""Seed of the Gaussian sample bank that sensor noise is cut from (offsets come from the
appearance seed, the frame and the view)."""


@dataclass(frozen=True)
class CanvasLayout:
    """Where one camera's undistorted canvas lies in the atlas.

    Attributes
    ----------
    camera : Camera
        The output camera (already downscaled).
    K : np.ndarray
        (3, 3) pinhole intrinsics of the canvas (the camera's ``K`` shifted by the margin).
    width, height : int
        Canvas size, pixels.
    x, y : int
        Viewport origin in the atlas, GL window coordinates (bottom-left origin).
    """

    camera: Camera
    K: np.ndarray
    width: int
    height: int
    x: int
    y: int


@dataclass(frozen=True)
class MultiViewImages:
    """One rendered set.

    Attributes
    ----------
    images : np.ndarray
        (V, H, W) uint8 grayscale or (V, H, W, 3) uint8 RGB, OpenCV order (top row first).
    depth : np.ndarray or None
        (V, H, W) float32 camera-space z in mm (0 = background), when requested.
    cameras : tuple[Camera, ...]
        The (downscaled) cameras the images belong to, in view order.
    """

    images: np.ndarray
    depth: np.ndarray | None
    cameras: tuple[Camera, ...]


def undistortion_map(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Normalised undistorted coordinates of every output pixel of ``camera``.

    Parameters
    ----------
    camera : Camera
        Output camera (with distortion).

    Returns
    -------
    tuple of np.ndarray
        ``(x, y)``, each (H, W) float64: the pinhole ray ``(x, y, 1)`` seen by pixel ``(u, v)``.
        Large images are solved on an 8-px grid and interpolated with a bicubic spline (the
        map is smooth; interpolation error far below 1e-3 px).
    """
    W, H = camera.width, camera.height
    if W * H <= EXACT_MAP_PIXELS:
        us, vs = np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64)
    else:
        us = np.unique(np.r_[np.arange(0, W, MAP_GRID_STEP), W - 1]).astype(np.float64)
        vs = np.unique(np.r_[np.arange(0, H, MAP_GRID_STEP), H - 1]).astype(np.float64)
    uu, vv = np.meshgrid(us, vs)
    K = camera.K
    yd = (vv.ravel() - K[1, 2]) / K[1, 1]
    xd = (uu.ravel() - K[0, 2] - K[0, 1] * yd) / K[0, 0]
    if np.any(camera.dist):
        xy = undistort(camera, np.stack([xd, yd], axis=1))
    else:
        xy = np.stack([xd, yd], axis=1)
    x, y = xy[:, 0].reshape(uu.shape), xy[:, 1].reshape(uu.shape)
    if len(us) == W and len(vs) == H:
        return x, y
    u_all, v_all = np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64)
    x_full = RectBivariateSpline(vs, us, x)(v_all, u_all)
    y_full = RectBivariateSpline(vs, us, y)(v_all, u_all)
    return x_full, y_full


class MultiViewRenderer:
    """Render meshes into all cameras of a rig through one atlas framebuffer.

    Parameters
    ----------
    rig : Rig
        Calibrated cameras (mm, OpenCV model with distortion).
    downscale : float
        Render for ``rig.scaled(downscale)`` (e.g. 8 for the coarse stage: 200×150 images).
    channels : {1, 3}
        Grayscale (luminance of the shaded RGB) or RGB output.
    margin : int
        Canvas pixels added beyond the extent the distortion needs.
    cull_back_faces : bool
        Skip triangles facing away from the camera: half the triangle work, and exact for
        closed meshes (faces counter-clockwise seen from outside). Set False for open meshes
        whose inside can be seen through an opening; back faces are then lit like front faces.
    ctx : moderngl.Context, optional
        Context current on the calling thread; default: a new headless EGL context owned (and
        released) by this renderer.

    Notes
    -----
    Thread affinity: construct, call and release on the context's thread (see
    :class:`render.render_thread.RenderThread` to render from elsewhere). Images are
    OpenCV-ordered (row 0 on top).
    """

    def __init__(
        self,
        rig: Rig,
        downscale: float = 1,
        channels: int = 1,
        margin: int = DEFAULT_MARGIN,
        cull_back_faces: bool = True,
        ctx: moderngl.Context | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise RenderError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if len(rig) == 0:
            raise RenderError(f"rig {rig.name!r} has no cameras")
        if margin < 0:
            raise RenderError(f"margin must be >= 0 pixels, got {margin}")
        self.rig = rig.scaled(downscale) if downscale != 1 else rig
        self.downscale = float(downscale)
        self.channels = int(channels)
        self.cull_back_faces = bool(cull_back_faces)
        self._owns_ctx = ctx is None
        self.ctx = create_headless_context() if ctx is None else ctx
        t0 = time.perf_counter()
        self._build_layout(int(margin))
        log.info(
            "multi-view renderer: %d views of %dx%d, atlas %dx%d (maps in %.2f s)",
            len(self.rig),
            self.rig[0].width,
            self.rig[0].height,
            self.atlas_size[0],
            self.atlas_size[1],
            time.perf_counter() - t0,
        )
        self._build_gl()
        self._faces: np.ndarray | None = None
        self._n_vertices = 0
        self._buffers: dict[str, moderngl.Buffer] = {}
        self._vaos: dict[str, moderngl.VertexArray] = {}
        self._speckle_key: tuple[int, float] | None = None
        self._speckle_tex: moderngl.Texture | None = None
        self._noise_gauss: np.ndarray | None = None
        self._noise_bank: tuple[float, np.ndarray] | None = None

    # ------------------------------------------------------------------ set-up

    def _build_layout(self, margin: int) -> None:
        cams = self.rig.cameras
        canvases: list[tuple[np.ndarray, int, int]] = []
        maps: list[tuple[np.ndarray, np.ndarray]] = []
        for cam in cams:
            x, y = undistortion_map(cam)
            # Canvas pixel of each output pixel before the margin offset (pinhole K).
            K = cam.K
            mu = K[0, 0] * x + K[0, 1] * y + K[0, 2]
            mv = K[1, 1] * y + K[1, 2]
            ox = math.ceil(max(0.0, -float(mu.min())) + 1 + margin)
            oy = math.ceil(max(0.0, -float(mv.min())) + 1 + margin)
            wc = math.ceil(max(float(mu.max()), cam.width - 1) + 2 + margin) + ox
            hc = math.ceil(max(float(mv.max()), cam.height - 1) + 2 + margin) + oy
            if wc > MAX_CANVAS_GROWTH * cam.width or hc > MAX_CANVAS_GROWTH * cam.height:
                raise RenderError(
                    f"camera {cam.name!r}: its distortion {cam.dist.tolist()} needs a "
                    f"{wc}x{hc} canvas for a {cam.width}x{cam.height} image; check the "
                    "calibration"
                )
            Kc = K.copy()
            Kc[0, 2] += ox
            Kc[1, 2] += oy
            canvases.append((Kc, wc, hc))
            maps.append(((mu + ox).astype(np.float32), (mv + oy).astype(np.float32)))
        tile_w = max(c[1] for c in canvases)
        tile_h = max(c[2] for c in canvases)
        cols = math.ceil(math.sqrt(len(cams)))
        rows = math.ceil(len(cams) / cols)
        aw, ah = cols * tile_w, rows * tile_h
        limit = min(
            int(self.ctx.info.get("GL_MAX_RENDERBUFFER_SIZE", 16384)),
            int(self.ctx.info.get("GL_MAX_TEXTURE_SIZE", 16384)),
        )
        if max(aw, ah) > min(limit, 32767):
            raise RenderError(
                f"the atlas of {len(cams)} views would be {aw}x{ah} pixels, over the driver's "
                f"limit of {limit}; render at a larger downscale"
            )
        self.atlas_size = (aw, ah)
        layouts, self._maps, self._maps_nn = [], [], []
        for i, (cam, (Kc, wc, hc), (mx, my)) in enumerate(zip(cams, canvases, maps, strict=True)):
            col, row = i % cols, i // cols
            x0, y0_top = col * tile_w, row * tile_h  # tile origin, top-down atlas
            # GL viewport origin (bottom-left); the readback is not flipped, so atlas memory
            # row j holds window row j and canvas row v sits at j = y + hc - 1 - v.
            y_gl = ah - y0_top - hc
            layouts.append(CanvasLayout(cam, Kc, wc, hc, x0, y_gl))
            ax = mx + np.float32(x0)
            ay = np.float32(y_gl + hc - 1) - my
            self._maps.append(cv2.convertMaps(ax, ay, cv2.CV_16SC2))
            self._maps_nn.append((ax, ay))
        self.layouts: tuple[CanvasLayout, ...] = tuple(layouts)

    def _build_gl(self) -> None:
        ctx = self.ctx
        size = self.atlas_size
        vert = load_shader("multiview.vert")
        self._prog = ctx.program(vertex_shader=vert, fragment_shader=load_shader("multiview.frag"))
        self._plain_prog = ctx.program(
            vertex_shader=vert, fragment_shader=load_shader("multiview_plain.frag")
        )
        self._color_rb = ctx.renderbuffer(size, 1 if self.channels == 1 else 4)
        self._depth_rb = ctx.renderbuffer(size, 1, dtype="f4")
        self._zbuffer = ctx.depth_renderbuffer(size)
        self._fbo = ctx.framebuffer([self._color_rb, self._depth_rb], self._zbuffer)
        # Separate framebuffers so colour and depth attachments are cleared to different values.
        self._fbo_color = ctx.framebuffer([self._color_rb], self._zbuffer)
        self._fbo_depth = ctx.framebuffer([self._depth_rb])

    @property
    def cameras(self) -> tuple[Camera, ...]:
        """The (downscaled) output cameras in view order."""
        return self.rig.cameras

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one set of images: (V, H, W) or (V, H, W, 3)."""
        c = self.rig[0]
        shape = (len(self.rig), c.height, c.width)
        return shape if self.channels == 1 else (*shape, 3)

    # ------------------------------------------------------------------ mesh upload

    def set_mesh(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        canonical: np.ndarray | None = None,
        material: np.ndarray | None = None,
    ) -> None:
        """Upload a mesh; buffers are rewritten in place while the topology is unchanged.

        Parameters
        ----------
        vertices : np.ndarray
            (N, 3) world positions, mm.
        faces : np.ndarray
            (F, 3) int vertex indices, counter-clockwise seen from outside.
        canonical : np.ndarray, optional
            (N, 3) template (rest-pose) positions, mm, where the skin noise is evaluated;
            default ``vertices`` (then the texture swims when the mesh moves).
        material : np.ndarray, optional
            (N, 4) region weights [brow, lip, eye profile, hair] (see :mod:`render.appearance`);
            default zeros (skin everywhere).
        """
        v = check_vertices(vertices)
        n = len(v)
        canon = v if canonical is None else check_vertices(canonical, n)
        if material is None:
            mat = np.zeros((n, 4), np.float32)
        else:
            mat = np.asarray(material, dtype=np.float32)
            if mat.shape != (n, 4):
                raise RenderError(f"material must have shape ({n}, 4), got {mat.shape}")
        same = (
            self._faces is not None
            and n == self._n_vertices
            and faces is not None
            and np.array_equal(np.asarray(faces), self._faces)
        )
        f = self._faces if same else check_faces(faces, n)
        normals = vertex_normals(v, f)
        data = {"position": v, "normal": normals, "canonical": canon, "material": mat}
        if same:
            for name, arr in data.items():
                self._buffers[name].write(np.ascontiguousarray(arr, np.float32).tobytes())
            return
        self._release_mesh()
        ctx = self.ctx
        self._buffers = {
            name: ctx.buffer(np.ascontiguousarray(arr, np.float32).tobytes())
            for name, arr in data.items()
        }
        self._buffers["index"] = ctx.buffer(f.tobytes())
        content = [
            (self._buffers[name], fmt, f"in_{name}")
            for name, fmt in (("position", "3f"), ("normal", "3f"), ("canonical", "3f"))
        ]
        content.append((self._buffers["material"], "4f", "in_material"))
        for name, prog in (("shaded", self._prog), ("plain", self._plain_prog)):
            used = [c for c in content if prog.get(c[2], None) is not None]
            self._vaos[name] = ctx.vertex_array(
                prog, used, index_buffer=self._buffers["index"], index_element_size=4
            )
        self._faces, self._n_vertices = f, n
        log.debug("multi-view mesh: %d vertices, %d faces", n, len(f))

    # ------------------------------------------------------------------ rendering

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        canonical: np.ndarray | None = None,
        material: np.ndarray | None = None,
        appearance: Appearance | None = None,
        frame: int = 0,
        depth: bool = False,
    ) -> MultiViewImages:
        """Render one set: every camera of the rig, distorted, with one colour readback.

        Parameters
        ----------
        vertices, faces, canonical, material
            As :meth:`set_mesh`.
        appearance : Appearance, optional
            Look of the set; default ``Appearance()`` (the mean look, seed 0).
        frame : int
            Frame index; with ``appearance.seed`` and the view index it seeds the sensor noise,
            so a sequence has fresh noise per frame and is reproducible.
        depth : bool
            Also return depth maps.

        Returns
        -------
        MultiViewImages
            Images (V, H, W[, 3]) uint8 and, when asked, depth (V, H, W) float32 mm.
        """
        app = Appearance() if appearance is None else appearance
        self.set_mesh(vertices, faces, canonical, material)
        # The float depth attachment costs fill rate: draw into it only when asked.
        self._draw(np.asarray(vertices, dtype=np.float64), app, self._fbo if depth else None)
        aw, ah = self.atlas_size
        comps = self.channels
        raw = self._fbo_color.read((0, 0, aw, ah), comps, attachment=0, alignment=1)
        atlas = np.frombuffer(raw, np.uint8).reshape((ah, aw) if comps == 1 else (ah, aw, 3))
        images = np.empty(self.image_shape, np.uint8)
        for i, (m1, m2) in enumerate(self._maps):
            cv2.remap(atlas, m1, m2, cv2.INTER_LINEAR, dst=images[i])
        self._sensor(images, app, frame)
        z = None
        if depth:
            raw = self._fbo.read((0, 0, aw, ah), 1, attachment=1, alignment=1, dtype="f4")
            zatlas = np.frombuffer(raw, np.float32).reshape(ah, aw)
            z = np.empty(self.image_shape[:3], np.float32)
            for i, (ax, ay) in enumerate(self._maps_nn):
                cv2.remap(zatlas, ax, ay, cv2.INTER_NEAREST, dst=z[i])
        return MultiViewImages(images, z, self.cameras)

    def _draw(
        self, vertices: np.ndarray, app: Appearance, fbo: moderngl.Framebuffer | None
    ) -> None:
        ctx = self.ctx
        prog = self._plain_prog if app.plain else self._prog
        vao = self._vaos["plain" if app.plain else "shaded"]
        fbo = self._fbo_color if fbo is None else fbo
        bg = 0.0 if app.plain else float(np.clip(app.background * app.exposure, 0, 1)) ** (1 / 2.2)
        full = (0, 0, *self.atlas_size)
        self._fbo_color.viewport = full
        self._fbo_color.clear(bg, bg, bg, 1.0, depth=1.0)
        if fbo is self._fbo:
            self._fbo_depth.viewport = full
            self._fbo_depth.clear(0.0, 0.0, 0.0, 0.0)
        if not app.plain:
            self._set_appearance(app)
        ctx.enable(moderngl.DEPTH_TEST)
        if self.cull_back_faces:
            ctx.front_face = "ccw"
            ctx.cull_face = "back"
            ctx.enable(moderngl.CULL_FACE)
        else:
            ctx.disable(moderngl.CULL_FACE)
        fbo.use()
        for lay in self.layouts:
            cam = lay.camera
            z = vertices @ cam.R[2] + cam.t[2]
            near, far = fit_clip_planes(z)
            P = opengl_projection_from_K(lay.K, lay.width, lay.height, near, far)
            prog["u_mvp"].write(gl_matrix_bytes(P @ view_from_Rt(cam.R, cam.t)))
            prog["u_zrow"].value = (*cam.R[2].tolist(), float(cam.t[2]))
            if not app.plain:
                self._set_uniform("u_eye", tuple(cam.center.tolist()))
                # Skip noise octaves shorter than ~2 pixel footprints at the object's distance.
                zmid = float(np.median(z)) if len(z) else 1000.0
                self._set_uniform("u_min_wavelength", 2.0 * max(zmid, 1.0) / float(cam.K[0, 0]))
            fbo.viewport = (lay.x, lay.y, lay.width, lay.height)
            vao.render(moderngl.TRIANGLES)

    def _set_uniform(self, name: str, value: object) -> None:
        member = self._prog.get(name, None)  # the linker drops unused uniforms
        if member is not None:
            member.value = value

    def _set_appearance(self, app: Appearance) -> None:
        s = self._set_uniform
        s("u_gray", int(self.channels == 1))
        for name, value in (
            ("u_skin", app.skin_albedo),
            ("u_skin_var", app.skin_variation),
            ("u_pore", app.pore_strength),
            ("u_freckle_density", app.freckle_density),
            ("u_freckle", app.freckle_strength),
            ("u_noise_offset", app.noise_offset),
            ("u_brow", app.brow_albedo),
            ("u_lip", app.lip_albedo),
            ("u_iris", app.iris_albedo),
            ("u_sclera", app.sclera_albedo),
            ("u_hair", app.hair_albedo),
            ("u_key_dir", app.key_dir),
            ("u_key_color", app.key_color),
            ("u_fill_dir", app.fill_dir),
            ("u_fill_color", app.fill_color),
            ("u_ambient", app.ambient_color),
            ("u_specular", app.specular),
            ("u_exposure", app.exposure),
        ):
            s(name, value)
        s("u_speckle", int(app.speckle))
        if app.speckle:
            key = (app.speckle_seed, app.speckle_density)
            if key != self._speckle_key:
                if self._speckle_tex is not None:
                    self._speckle_tex.release()
                tex_img = speckle_texture(*key)
                tex = self.ctx.texture(tex_img.shape[::-1], 1, tex_img.tobytes())
                tex.build_mipmaps()
                tex.repeat_x = tex.repeat_y = False
                self._speckle_tex, self._speckle_key = tex, key
            self._speckle_tex.use(location=0)  # type: ignore[union-attr]
            s("u_speckle_tex", 0)
            self._prog["u_projector"].write(gl_matrix_bytes(projector_matrix(app)))
            s("u_projector_pos", app.projector_position)
            s("u_speckle_gain", app.speckle_gain)

    def _sensor(self, images: np.ndarray, app: Appearance, frame: int) -> None:
        """Optical blur then Gaussian sensor noise, in place, seeded per (seed, frame, view).

        The noise of a view is a window of a fixed bank of rounded Gaussian samples (scaled by
        ``noise_sigma``) at an offset drawn from ``(seed, frame, view)``: drawing fresh normals
        for every pixel cost more than the rendering at 1/4 size.
        """
        if app.plain:
            return
        sigma = app.blur_sigma / self.downscale
        n = images[0].size
        bank = self._noise(app.noise_sigma, n) if app.noise_sigma > 0 else None
        for i in range(len(images)):
            img = images[i]
            if sigma >= 0.2:
                cv2.GaussianBlur(img, (0, 0), sigma, dst=img)
            if bank is not None:
                off = int(np.random.default_rng([app.seed, int(frame), i]).integers(0, n))
                cv2.add(img, bank[off : off + n].reshape(img.shape), dst=img, dtype=cv2.CV_8U)

    def _noise(self, sigma: float, n: int) -> np.ndarray:
        """(2 n,) int16 bank of ``round(sigma · N(0, 1))``, cached per ``sigma``."""
        if self._noise_gauss is None or len(self._noise_gauss) != 2 * n:
            rng = np.random.default_rng(NOISE_BANK_SEED)
            self._noise_gauss = rng.standard_normal(2 * n, dtype=np.float32)
            self._noise_bank = None
        if self._noise_bank is None or self._noise_bank[0] != sigma:
            bank = np.rint(self._noise_gauss * np.float32(sigma)).astype(np.int16)
            self._noise_bank = (sigma, bank)
        return self._noise_bank[1]

    # ------------------------------------------------------------------ lifetime

    def _release_mesh(self) -> None:
        for obj in (*self._vaos.values(), *self._buffers.values()):
            obj.release()
        self._buffers, self._vaos = {}, {}
        self._faces, self._n_vertices = None, 0

    def release(self) -> None:
        """Free the GL objects (and the context if this renderer made it), on its thread."""
        self._release_mesh()
        if self._speckle_tex is not None:
            self._speckle_tex.release()
        for obj in (self._fbo, self._fbo_color, self._fbo_depth):
            obj.release()
        for obj in (self._color_rb, self._depth_rb, self._zbuffer):
            obj.release()
        self._prog.release()
        self._plain_prog.release()
        if self._owns_ctx:
            self.ctx.release()

    def __enter__(self) -> MultiViewRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- benchmark


def blob_mesh(subdivisions: int = 4, radius: float = 90.0) -> tuple[np.ndarray, np.ndarray]:
    """A closed head-sized blob at the origin: (N, 3) float64 vertices mm, (F, 3) faces."""
    v, f = icosphere(subdivisions, 1.0)
    bumps = 1.0 + 0.08 * np.sin(3 * v[:, 0]) * np.cos(2 * v[:, 1]) + 0.05 * np.sin(4 * v[:, 2])
    v = v * bumps[:, None] * radius * np.array([0.85, 1.1, 1.0])
    return v, f


def benchmark_multiview(
    rig: Rig,
    downscales: Sequence[float] = (8, 4),
    channels: int = 1,
    seconds: float = 3.0,
    depth: bool = False,
    mesh: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[float, float]:
    """Measure sets per second (render + readback + remap + sensor) per downscale factor.

    Runs on the calling thread with its own context. The mesh moves every set (positions and
    normals re-uploaded) as it would when animating a performer.

    Returns
    -------
    dict
        ``{downscale: sets_per_second}``.
    """
    v, f = blob_mesh() if mesh is None else mesh
    app = Appearance.random(1, speckle=True)
    material = np.zeros((len(v), 4), np.float32)
    results: dict[float, float] = {}
    ctx = create_headless_context()
    try:
        for factor in downscales:
            with MultiViewRenderer(rig, factor, channels, ctx=ctx) as r:
                r.render(v, f, material=material, appearance=app, depth=depth)  # warm-up
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    moved = v + np.array([np.sin(n * 0.1) * 10.0, 0.0, 0.0])
                    r.render(moved, f, v, material, app, frame=n, depth=depth)
                    n += 1
                results[factor] = n / (time.perf_counter() - t0)
                log.info("1/%g: %.1f sets/s", factor, results[factor])
    finally:
        ctx.release()
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m render.multiview --bench``: print sets/s of the default rig."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true", help="run the speed benchmark")
    parser.add_argument("--rig", default="default16")
    parser.add_argument("--downscale", type=float, nargs="+", default=[8, 4])
    parser.add_argument("--rgb", action="store_true")
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if not args.bench:
        parser.print_help()
        return 0
    from capture.default_rigs import load_shipped_rig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rig = load_shipped_rig(args.rig)
    res = benchmark_multiview(
        rig, args.downscale, 3 if args.rgb else 1, args.seconds, depth=args.depth
    )
    for factor, rate in res.items():
        c = rig[0].scaled(factor)
        print(f"{args.rig} 1/{factor:g} ({len(rig)} x {c.width}x{c.height}): {rate:.1f} sets/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
