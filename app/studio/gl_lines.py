"""Coloured line segments (grid floor, axes) drawn with ModernGL into a given framebuffer.

Qt-free; the viewport calls it inside ``paintGL``. Threads: like
:class:`render.mesh_renderer.MeshRenderer`, create, use and release it on its context's thread.
"""

from __future__ import annotations

import moderngl
import numpy as np

from render.camera_math import gl_matrix_bytes

_VERT = """
#version 330 core
uniform mat4 u_mvp;
in vec3 in_position;
in vec3 in_color;
out vec3 v_color;
void main() {
    gl_Position = u_mvp * vec4(in_position, 1.0);
    v_color = in_color;
}
"""
_FRAG = """
#version 330 core
in vec3 v_color;
out vec4 f_color;
void main() { f_color = vec4(v_color, 1.0); }
"""


def grid_and_axes(
    half_size: float = 400.0,
    step: float = 50.0,
    floor_y: float = -200.0,
    axis_length: float = 150.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Line segments of a floor grid at ``y = floor_y`` and RGB axes at the origin (mm).

    Returns
    -------
    (np.ndarray, np.ndarray)
        (2 S, 3) float32 segment end points and (2 S, 3) float32 colours.
    """
    ticks = np.arange(-half_size, half_size + 0.5 * step, step)
    pts: list[tuple[float, float, float]] = []
    cols: list[tuple[float, float, float]] = []
    grey = (0.42, 0.42, 0.45)
    for v in ticks:
        pts += [(v, floor_y, -half_size), (v, floor_y, half_size)]
        pts += [(-half_size, floor_y, v), (half_size, floor_y, v)]
        cols += [grey] * 4
    for axis, color in enumerate(((0.9, 0.2, 0.2), (0.2, 0.85, 0.2), (0.25, 0.4, 1.0))):
        end = [0.0, 0.0, 0.0]
        end[axis] = axis_length
        pts += [(0.0, 0.0, 0.0), tuple(end)]
        cols += [color, color]
    return np.asarray(pts, dtype=np.float32), np.asarray(cols, dtype=np.float32)


class LineRenderer:
    """A static set of coloured segments on the GPU.

    Parameters
    ----------
    ctx : moderngl.Context
        Current on the calling thread.
    points, colors : np.ndarray
        (2 S, 3) segment end points (world mm) and their RGB colours in [0, 1].
    """

    def __init__(self, ctx: moderngl.Context, points: np.ndarray, colors: np.ndarray) -> None:
        self.ctx = ctx
        self._prog = ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        data = np.hstack([np.asarray(points, "f4"), np.asarray(colors, "f4")])
        self._vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
        self._vao = ctx.vertex_array(self._prog, [(self._vbo, "3f 3f", "in_position", "in_color")])

    def draw(self, fbo: moderngl.Framebuffer, view: np.ndarray, projection: np.ndarray) -> None:
        """Draw the segments into ``fbo`` with depth testing."""
        self._prog["u_mvp"].write(gl_matrix_bytes(np.asarray(projection) @ np.asarray(view)))
        fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self._vao.render(moderngl.LINES)

    def release(self) -> None:
        """Free the GL objects (on the context's thread)."""
        for obj in (self._vao, self._vbo, self._prog):
            obj.release()
