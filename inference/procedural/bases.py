"""Identity and expression blend shapes of the procedural head.

Every component is a smooth displacement field written from the neutral positions (a window
times a direction), Laplacian-smoothed over the mesh and scaled so that its largest vertex
displacement at coefficient 1 is a chosen size: about one standard deviation of adult faces
for identity, a full activation for expressions. Eyeballs ride rigidly with their sockets in
the identity basis and stay put in the expression basis (the eye joints turn them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inference.procedural.fields import bump, smooth_field, smoothstep, vertex_normals
from inference.procedural.surface import EAR_CENTRE_YZ, EYE_CENTRES, MOUTH_Y, HeadSurface


@dataclass(frozen=True)
class _Frame:
    """Per-skin-vertex quantities the component formulas are written in (all (n,) or (n, 3))."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    ax: np.ndarray  # |x|
    sx: np.ndarray  # sign of x (the head's left is +1)
    normal: np.ndarray
    front: np.ndarray  # 1 on the face, 0 behind the ears
    side: np.ndarray  # 1 on the sides of the head (ears, temples)
    head: np.ndarray  # 1 on the head, 0 down the neck
    lip_side: np.ndarray  # +1 on the upper lip, -1 on the lower, 0 at the corners and away


def _frame(surface: HeadSurface) -> _Frame:
    v = surface.vertices[: surface.num_skin]
    n = vertex_normals(v, surface.faces[surface.faces.max(axis=1) < surface.num_skin])
    x, y, z = v.T
    ax = np.abs(x)
    taper = np.clip(1.0 - (x / 26.0) ** 2, 0.0, None) * smoothstep(z, 50.0, 75.0)
    lip_side = np.tanh((y - MOUTH_Y) / 3.0) * taper
    lip_side[surface.upper_lip_line] = taper[surface.upper_lip_line]
    lip_side[surface.lower_lip_line] = -taper[surface.lower_lip_line]
    return _Frame(
        x=x,
        y=y,
        z=z,
        ax=ax,
        sx=np.tanh(x / 4.0),
        normal=n,
        front=smoothstep(n[:, 2], 0.0, 0.5) * smoothstep(z, 0.0, 30.0),
        side=smoothstep(np.abs(n[:, 0]), 0.5, 0.85) * smoothstep(ax, 55.0, 70.0),
        head=smoothstep(y, -112.0, -85.0),
        lip_side=lip_side,
    )


def _vec(
    f: _Frame,
    dx: np.ndarray | float = 0.0,
    dy: np.ndarray | float = 0.0,
    dz: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Stack scalar components (arrays or numbers) into an (n, 3) field."""
    zero = np.zeros_like(f.x)
    return np.stack([zero + dx, zero + dy, zero + dz], axis=1)


def _along_normal(f: _Frame, h: np.ndarray) -> np.ndarray:
    return f.normal * h[:, None]


def _eye_window(f: _Frame) -> np.ndarray:
    return bump(f.ax, f.y, EYE_CENTRES[0, 0], EYE_CENTRES[0, 1], 15.0, 12.0) * f.front


def _ear_window(f: _Frame) -> np.ndarray:
    ey, ez = EAR_CENTRE_YZ
    return f.side * bump(f.y, f.z, ey, ez, 36.0, 24.0, power=2.0)


def _nose_window(f: _Frame) -> np.ndarray:
    return bump(f.x, f.y, 0.0, 2.0, 14.0, 20.0, power=1.5) * f.front


def _lips_window(f: _Frame) -> np.ndarray:
    return bump(f.x, f.y, 0.0, MOUTH_Y, 26.0, 10.0, power=1.5) * f.front


Component = tuple[str, float, Callable[[_Frame], np.ndarray]]

IDENTITY: tuple[Component, ...] = (
    ("head_width", 4.0, lambda f: _vec(f, dx=f.x / 76.0 * f.head)),
    ("head_length", 4.0, lambda f: _vec(f, dz=(f.z + 8.0) / 100.0 * f.head)),
    ("head_height", 4.0, lambda f: _vec(f, dy=smoothstep(f.y, 10.0, 130.0))),
    ("skull_top_width", 3.0, lambda f: _vec(f, dx=f.x / 76.0 * smoothstep(f.y, 30.0, 95.0))),
    (
        "forehead_slope",
        3.0,
        lambda f: _vec(f, dz=-f.front * smoothstep(f.y, 50.0, 115.0) * (1.0 - f.side)),
    ),
    (
        "occiput",
        4.0,
        lambda f: _vec(f, dz=-smoothstep(-f.z, 30.0, 90.0) * bump(f.x, f.y, 0, 35, 60, 45)),
    ),
    (
        "brow_prominence",
        2.5,
        lambda f: _vec(f, dz=f.front * bump(f.ax, f.y, 28.0, 48.0, 22.0, 8.0)),
    ),
    ("eye_spacing", 2.0, lambda f: _vec(f, dx=f.sx * _eye_window(f))),
    ("eye_height", 2.0, lambda f: _vec(f, dy=_eye_window(f))),
    ("eye_depth", 2.0, lambda f: _vec(f, dz=-_eye_window(f))),
    (
        "nose_length",
        3.0,
        lambda f: _vec(
            f, dy=-_nose_window(f) * smoothstep(f.y, 30.0, -5.0), dz=0.5 * _nose_window(f)
        ),
    ),
    ("nose_width", 2.0, lambda f: _vec(f, dx=np.tanh(f.x / 10.0) * bump(f.x, f.y, 0, -6, 16, 9))),
    (
        "nose_bridge",
        2.5,
        lambda f: _vec(f, dz=f.front * np.exp(-((f.x / 7.0) ** 2)) * bump(0.0, f.y, 0, 18, 1, 13)),
    ),
    ("nose_tip", 2.0, lambda f: _vec(f, dy=bump(f.x, f.y, 0.0, -7.0, 9.0, 7.0) * f.front)),
    ("cheekbones", 3.0, lambda f: _along_normal(f, bump(f.ax, f.y, 46.0, 6.0, 16.0, 12.0))),
    ("cheek_fullness", 3.0, lambda f: _along_normal(f, bump(f.ax, f.y, 40.0, -35.0, 16.0, 15.0))),
    (
        "jaw_width",
        4.0,
        lambda f: _vec(
            f, dx=f.x / 60.0 * smoothstep(f.y, -20.0, -55.0) * f.head * smoothstep(f.z, -35, 0)
        ),
    ),
    (
        "chin_length",
        4.0,
        lambda f: _vec(
            f,
            dy=-smoothstep(f.y, -45.0, -80.0)
            * smoothstep(f.y, -128, -100)
            * smoothstep(f.z, -20, 20),
        ),
    ),
    ("chin_projection", 3.0, lambda f: _vec(f, dz=bump(f.x, f.y, 0.0, -74.0, 22.0, 14.0))),
    (
        "face_length",
        4.0,
        lambda f: _vec(f, dy=-smoothstep(f.y, 25.0, -85.0) * f.head * smoothstep(f.z, -20, 30)),
    ),
    (
        "lip_thickness",
        2.0,
        lambda f: _vec(f, dy=0.6 * f.lip_side * _lips_window(f), dz=_lips_window(f)),
    ),
    ("mouth_width", 2.0, lambda f: _vec(f, dx=np.tanh(f.x / 15.0) * _lips_window(f))),
    (
        "ear_size",
        3.0,
        lambda f: _vec(f, dx=f.sx * _ear_window(f), dy=(f.y - 12.0) / 30.0 * _ear_window(f)),
    ),
    (
        "ear_angle",
        3.0,
        lambda f: _vec(f, dx=f.sx * _ear_window(f) * smoothstep(f.z, -5.0, -30.0)),
    ),
    ("ear_height", 3.0, lambda f: _vec(f, dy=_ear_window(f))),
    (
        "neck_thickness",
        4.0,
        lambda f: (
            _vec(f, dx=f.x / 55.0, dz=(f.z + 15.0) / 55.0) * smoothstep(f.y, -95.0, -125.0)[:, None]
        ),
    ),
)
"""(name, largest displacement in mm at coefficient 1, field) of each identity component."""


def _corner(f: _Frame, sy: float = 9.0) -> np.ndarray:
    return bump(f.ax, f.y, 24.0, MOUTH_Y, 10.0, sy) * f.front


EXPRESSIONS: tuple[Component, ...] = (
    (
        "smile",
        6.0,
        lambda f: (
            _vec(f, dx=0.5 * f.sx * _corner(f), dy=_corner(f), dz=-0.6 * _corner(f))
            + _vec(f, dy=0.5, dz=0.3) * bump(f.ax, f.y, 38.0, -15.0, 14.0, 12.0)[:, None]
        ),
    ),
    ("mouth_stretch", 5.0, lambda f: _vec(f, dx=f.sx * _corner(f, 7.0), dy=-0.3 * _corner(f, 7.0))),
    (
        "pucker",
        6.0,
        lambda f: _vec(f, dx=-np.tanh(f.x / 18.0) * _lips_window(f), dz=_lips_window(f)),
    ),
    (
        "brow_raise",
        5.0,
        lambda f: _vec(f, dy=f.front * bump(f.ax, f.y, 28.0, 52.0, 28.0, 14.0)),
    ),
    (
        "frown",
        4.0,
        lambda f: (
            _vec(f, dx=-0.5 * f.sx, dy=-1.0, dz=0.2)
            * (f.front * bump(f.ax, f.y, 14, 46, 14, 8))[:, None]
        ),
    ),
    ("cheek_puff", 6.0, lambda f: _along_normal(f, bump(f.ax, f.y, 40.0, -35.0, 16.0, 14.0))),
    (
        "lip_press",
        3.0,
        lambda f: _vec(f, dy=-f.lip_side, dz=-1.0) * _lips_window(f)[:, None],
    ),
    (
        "sneer",
        4.0,
        lambda f: (
            _vec(f, dy=1.0, dz=0.3) * (bump(f.ax, f.y, 13.0, -16.0, 9.0, 10.0) * f.front)[:, None]
        ),
    ),
    ("mouth_open", 5.0, lambda f: _vec(f, dy=f.lip_side * _lips_window(f))),
    ("lip_corner_down", 4.0, lambda f: _vec(f, dy=-_corner(f), dz=-0.2 * _corner(f))),
)
"""(name, largest displacement in mm at coefficient 1, field) of the expressions; the blinks
(``blink_left``, ``blink_right``) are appended from the eyelid geometry."""


def _finish(raw: np.ndarray, size: float, edges: np.ndarray, iterations: int) -> np.ndarray:
    field = smooth_field(raw, edges, iterations)
    peak = np.linalg.norm(field, axis=1).max()
    return field * (size / peak)


def _skin_edges(surface: HeadSurface) -> np.ndarray:
    e = surface.edges
    return e[e.max(axis=1) < surface.num_skin]


def identity_basis(surface: HeadSurface) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N, 3, S) identity basis (mm per unit) and its component names.

    Eyeballs translate with the mean displacement of their eye region, so they stay spheres
    in their sockets.
    """
    f = _frame(surface)
    edges = _skin_edges(surface)
    n = len(surface.vertices)
    out = np.zeros((n, 3, len(IDENTITY)))
    skin_v = surface.vertices[: surface.num_skin]
    for k, (_, size, field) in enumerate(IDENTITY):
        d = _finish(field(f), size, edges, iterations=3)
        out[: surface.num_skin, :, k] = d
        for centre, eyeball in zip(EYE_CENTRES, surface.eyeballs, strict=True):
            near = np.hypot(skin_v[:, 0] - centre[0], skin_v[:, 1] - centre[1]) < 16.0
            near &= skin_v[:, 2] > 40.0
            out[eyeball, :, k] = d[near].mean(axis=0)
    return out, tuple(name for name, _, _ in IDENTITY)


def expression_basis(surface: HeadSurface) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N, 3, E) expression basis (mm at full activation) and its component names.

    ``blink_left`` and ``blink_right`` fill in the eye's fissure (the upper lid slides down
    and forward over the eyeball); their size is set by the eyelid geometry.
    """
    f = _frame(surface)
    edges = _skin_edges(surface)
    n_skin = surface.num_skin
    fields = [_finish(field(f), size, edges, iterations=2) for _, size, field in EXPRESSIONS]
    names = [name for name, _, _ in EXPRESSIONS]
    for side, name in enumerate(("blink_left", "blink_right")):
        depth = surface.fissure_depth[side]
        upper = smoothstep(f.y - EYE_CENTRES[side, 1], -2.0, 4.0)
        raw = _vec(f, dy=-0.35 * depth * upper, dz=depth)
        smooth = smooth_field(raw, edges, 4)
        # Smoothing lowers the peak; scale back so the lid still clears the open fissure.
        deep = depth > 0.5 * depth.max()
        fields.append(smooth * np.max((depth[deep] + 1.0) / smooth[deep, 2]))
        names.append(name)
    out = np.zeros((len(surface.vertices), 3, len(fields)))
    out[:n_skin] = np.stack(fields, axis=2)
    return out, tuple(names)
