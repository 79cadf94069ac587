"""Draw a triangle mesh into a framebuffer it is given (offscreen or a Qt viewport's).

Threads: a :class:`MeshRenderer` holds GL objects of one context; construct, use and release
it on the thread where that context is current.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import moderngl
import numpy as np

from capture.errors import RenderError
from render.camera_math import gl_matrix_bytes
from resources import resource_path

log = logging.getLogger(__name__)

Mode = Literal["shaded", "wireframe", "colors"]
MODES: tuple[str, ...] = ("shaded", "wireframe", "colors")

DEFAULT_COLOR = (0.78, 0.72, 0.66)
"""Albedo of a mesh drawn without colours (a neutral clay)."""
DEFAULT_WIRE_COLOR = (0.15, 0.15, 0.15)
DEFAULT_LIGHT_DIR = (0.35, 0.45, 1.0)
"""Towards the key light in GL eye space (x right, y up, +z towards the viewer)."""
KEY_WEIGHT, FILL_WEIGHT, AMBIENT = 0.75, 0.3, 0.12


def load_shader(name: str) -> str:
    """Source text of ``resources/shaders/<name>``."""
    path = resource_path("shaders", name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RenderError(f"cannot read shader {path}: {exc}") from exc


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    vertices : np.ndarray
        (N, 3) float positions.
    faces : np.ndarray
        (F, 3) int vertex indices, counter-clockwise seen from outside.

    Returns
    -------
    np.ndarray
        (N, 3) float32 unit normals; vertices used by no face (or only degenerate ones) get
        ``(0, 0, 1)``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    # The unnormalised cross product has length twice the face area: the area weighting.
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    idx = f.ravel()
    n = np.empty((len(v), 3))
    for axis in range(3):
        n[:, axis] = np.bincount(idx, np.repeat(face_n[:, axis], 3), minlength=len(v))
    length = np.linalg.norm(n, axis=1, keepdims=True)
    good = length[:, 0] > 1e-20
    n[good] /= length[good]
    n[~good] = (0.0, 0.0, 1.0)
    return n.astype(np.float32)


def check_vertices(vertices: np.ndarray, n: int | None = None) -> np.ndarray:
    v = np.asarray(vertices)
    if v.ndim != 2 or v.shape[1] != 3:
        raise RenderError(f"vertices must have shape (N, 3), got {v.shape}")
    if n is not None and len(v) != n:
        raise RenderError(f"expected {n} vertices (the current topology), got {len(v)}")
    if not np.all(np.isfinite(v)):
        raise RenderError("vertices contain NaN or infinite values")
    return np.ascontiguousarray(v, dtype=np.float32)


def check_faces(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise RenderError(
            f"faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}"
        )
    if len(f) and (f.min() < 0 or f.max() >= n_vertices):
        raise RenderError(f"face indices must lie in [0, {n_vertices}), got [{f.min()}, {f.max()}]")
    return np.ascontiguousarray(f, dtype=np.uint32)


def _as_colors(colors: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    """(N, 3) or (3,) colours, float in [0, 1] or uint8 → (N, 3) float32."""
    c = np.asarray(colors)
    scale = 1.0 / 255.0 if c.dtype == np.uint8 else 1.0
    c = c.astype(np.float32) * np.float32(scale)
    if c.shape == (3,):
        c = np.broadcast_to(c, (n, 3))
    if c.shape != (n, 3):
        raise RenderError(f"colors must have shape ({n}, 3) or (3,), got {np.shape(colors)}")
    return np.ascontiguousarray(c)


def _unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(a)
    if a.shape != (3,) or norm < 1e-12:
        raise RenderError(f"light_dir must be a non-zero 3-vector, got {v!r}")
    return a / norm


class MeshRenderer:
    """One triangle mesh on the GPU, drawn into any framebuffer of its context.

    Parameters
    ----------
    ctx : moderngl.Context
        The context to allocate in (current on the calling thread).

    Notes
    -----
    Vertices are world millimetres; faces are counter-clockwise seen from outside (back faces
    are lit like front faces, so open meshes such as a head with a neck hole look right).
    """

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        vert = load_shader("mesh.vert")
        self._color_prog = ctx.program(vertex_shader=vert, fragment_shader=load_shader("mesh.frag"))
        self._depth_prog = ctx.program(
            vertex_shader=vert, fragment_shader=load_shader("depth.frag")
        )
        self._faces: np.ndarray | None = None
        self._n_vertices = 0
        self._buffers: dict[str, moderngl.Buffer] = {}
        self._vaos: dict[str, moderngl.VertexArray] = {}

    # ------------------------------------------------------------------ mesh upload

    @property
    def n_vertices(self) -> int:
        """Vertex count of the current mesh (0 before :meth:`set_mesh`)."""
        return self._n_vertices

    @property
    def faces(self) -> np.ndarray | None:
        """(F, 3) uint32 faces of the current mesh, or None."""
        return self._faces

    def set_mesh(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        """Upload a mesh; only positions and normals when the topology is unchanged.

        Parameters
        ----------
        vertices : np.ndarray
            (N, 3) float world positions, mm.
        faces : np.ndarray
            (F, 3) int vertex indices.
        """
        v = check_vertices(vertices)
        f = check_faces(faces, len(v))
        if (
            self._faces is not None
            and len(v) == self._n_vertices
            and np.array_equal(f, self._faces)
        ):
            self.update_vertices(v)
            return
        self._release_mesh()
        normals = vertex_normals(v, f)
        ctx = self.ctx
        self._buffers = {
            "position": ctx.buffer(v.tobytes()),
            "normal": ctx.buffer(normals.tobytes()),
            "color": ctx.buffer(_as_colors(DEFAULT_COLOR, len(v)).tobytes()),
            "index": ctx.buffer(f.tobytes()),
        }
        content = [
            (self._buffers["position"], "3f", "in_position"),
            (self._buffers["normal"], "3f", "in_normal"),
            (self._buffers["color"], "3f", "in_color"),
        ]
        for name, prog in (("color", self._color_prog), ("depth", self._depth_prog)):
            used = [
                c for c in content if prog.get(c[2], None) is not None
            ]  # the linker drops unused inputs
            self._vaos[name] = ctx.vertex_array(
                prog, used, index_buffer=self._buffers["index"], index_element_size=4
            )
        self._faces, self._n_vertices = f, len(v)
        log.debug("uploaded mesh: %d vertices, %d faces", len(v), len(f))

    def update_vertices(self, vertices: np.ndarray) -> None:
        """Re-upload positions (and recomputed normals) of the current topology.

        Parameters
        ----------
        vertices : np.ndarray
            (N, 3) float world positions, mm; N must equal the current vertex count.
        """
        if self._faces is None:
            raise RenderError("update_vertices() before set_mesh(): no topology uploaded")
        v = check_vertices(vertices, self._n_vertices)
        self._buffers["position"].write(v.tobytes())
        self._buffers["normal"].write(vertex_normals(v, self._faces).tobytes())

    # ------------------------------------------------------------------ drawing

    def draw(
        self,
        fbo: moderngl.Framebuffer,
        view: np.ndarray,
        projection: np.ndarray,
        mode: Mode = "shaded",
        colors: np.ndarray | Sequence[float] | None = None,
        light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ) -> None:
        """Draw the mesh into ``fbo`` with depth testing (the caller clears it).

        Parameters
        ----------
        fbo : moderngl.Framebuffer
            Target with a depth attachment; its current viewport is used (e.g. a framebuffer
            of :class:`render.offscreen.OffscreenRenderer` or ``ctx.detect_framebuffer()``).
        view, projection : np.ndarray
            (4, 4) GL matrices (see :mod:`render.camera_math`).
        mode : {"shaded", "wireframe", "colors"}
            ``shaded``: two-light Lambert plus ambient, albedo ``colors`` or a clay default;
            ``wireframe``: unlit edges of the visible triangles (hidden lines removed) in
            ``colors`` or dark grey, background left showing between them; ``colors``: unlit
            per-vertex ``colors`` (heat maps, labels; exact colours).
        colors : np.ndarray or sequence of float, optional
            (N, 3) per-vertex or (3,) single colour, float in [0, 1] or uint8.
        light_dir : sequence of float
            (3,) towards the key light in GL eye space; the fill light is its mirror in x,
            from below, at lower weight.
        """
        if mode not in MODES:
            raise RenderError(f"unknown draw mode {mode!r}; expected one of {MODES}")
        if self._faces is None:
            raise RenderError("draw() before set_mesh(): no mesh uploaded")
        if mode == "colors" and (colors is None or np.shape(colors) == (3,)):
            raise RenderError(f"mode 'colors' needs per-vertex colors ({self._n_vertices}, 3)")
        prog = self._color_prog
        if colors is not None and np.ndim(colors) == 2:
            self._buffers["color"].write(_as_colors(colors, self._n_vertices).tobytes())
            prog["u_use_vertex_color"].value = 1
        else:
            default = DEFAULT_WIRE_COLOR if mode == "wireframe" else DEFAULT_COLOR
            prog["u_color"].value = tuple(
                _as_colors(default if colors is None else colors, 1)[0].tolist()
            )
            prog["u_use_vertex_color"].value = 0
        prog["u_lit"].value = int(mode == "shaded")
        if mode == "shaded":
            key = _unit(light_dir)
            prog["u_key_dir"].value = tuple(key)
            prog["u_fill_dir"].value = tuple(_unit((-key[0], -0.5 * key[1], key[2])))
            prog["u_key"].value, prog["u_fill"].value = KEY_WEIGHT, FILL_WEIGHT
            prog["u_ambient"].value = AMBIENT
        self._set_matrices(prog, view, projection)
        fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        if mode == "wireframe":
            self._draw_hidden_line(fbo)
        else:
            self._vaos["color"].render(moderngl.TRIANGLES)

    def _draw_hidden_line(self, fbo: moderngl.Framebuffer) -> None:
        """Edges of the visible surface only: a depth-only pass pushed back, then lines."""
        ctx, vao = self.ctx, self._vaos["color"]
        mask = fbo.color_mask
        try:
            fbo.color_mask = (False, False, False, False)
            fbo.use()  # moderngl applies a framebuffer's colour mask when it is bound
            ctx.polygon_offset = (1.0, 1.0)
            vao.render(moderngl.TRIANGLES)
            ctx.polygon_offset = (0.0, 0.0)
            fbo.color_mask = mask
            fbo.use()
            ctx.wireframe = True
            vao.render(moderngl.TRIANGLES)
        finally:
            ctx.polygon_offset = (0.0, 0.0)
            fbo.color_mask = mask
            fbo.use()
            ctx.wireframe = False

    def draw_depth(
        self,
        fbo: moderngl.Framebuffer,
        view: np.ndarray,
        projection: np.ndarray,
        cull_back_faces: bool = False,
    ) -> None:
        """Write camera-space depth (mm, OpenCV z) into ``fbo``'s float colour attachment 0.

        ``fbo`` needs a one-component float32 colour attachment and a depth attachment; the
        caller clears the colour to 0 (background) and the depth to 1. Face culling is set
        here, not inherited from whatever last drew in the context: with ``cull_back_faces``
        only triangles wound counter-clockwise in the image are drawn (the outside of the
        template's surfaces), so the inside of an open mesh shows as background.
        """
        if self._faces is None:
            raise RenderError("draw_depth() before set_mesh(): no mesh uploaded")
        self._set_matrices(self._depth_prog, view, projection)
        fbo.use()
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        if cull_back_faces:
            ctx.front_face, ctx.cull_face = "ccw", "back"
            ctx.enable(moderngl.CULL_FACE)
        else:
            ctx.disable(moderngl.CULL_FACE)
        self._vaos["depth"].render(moderngl.TRIANGLES)

    @staticmethod
    def _set_matrices(prog: moderngl.Program, view: np.ndarray, projection: np.ndarray) -> None:
        V = np.asarray(view, dtype=np.float64)
        P = np.asarray(projection, dtype=np.float64)
        if V.shape != (4, 4) or P.shape != (4, 4):
            raise RenderError(f"view and projection must be (4, 4), got {V.shape}, {P.shape}")
        # Compose in float64 so sub-pixel accuracy survives the float32 upload.
        prog["u_mvp"].write(gl_matrix_bytes(P @ V))
        if prog.get("u_view", None) is not None:
            prog["u_view"].write(gl_matrix_bytes(V))

    # ------------------------------------------------------------------ lifetime

    def _release_mesh(self) -> None:
        for obj in (*self._vaos.values(), *self._buffers.values()):
            obj.release()
        self._vaos, self._buffers = {}, {}
        self._faces, self._n_vertices = None, 0

    def release(self) -> None:
        """Free the GL objects (on the context's thread). The renderer is unusable afterwards."""
        self._release_mesh()
        self._color_prog.release()
        self._depth_prog.release()
