"""The procedural head's neutral mesh: a sculpted lat-long skin surface plus two eyeballs.

The skin is one grid of rings (rows) from a pole on top of the skull down to the open bottom
of the neck; each ring is a smooth closed curve whose front, side and back are interpolated
from a hand-tuned side profile. Features (brow, nose, lips, chin, cheeks, ears) are smooth
bumps added along the normals; the eyelids hug a sphere in front of each eyeball and part
along an elliptical fissure; the mouth is a slit cut along one ring. Units are mm, ``y`` up,
``z`` forward, ``x`` to the head's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from inference.head_data import unique_edges
from inference.procedural.fields import bump, smoothstep, vertex_normals
from render.primitives import icosphere

NUM_ROWS = 64
"""Rings of the skin grid, the pole included."""
NUM_COLUMNS = 82
"""Vertices per ring (even, so the grid is mirror-symmetric about ``x = 0``)."""
EYE_CENTRES = np.array([[32.0, 31.0, 67.0], [-32.0, 31.0, 67.0]])
"""(2, 3) eyeball centres, left (``+x``) then right, mm."""
EYE_RADIUS = 12.0
"""Eyeball radius, mm."""
LID_RADIUS = 13.5
"""Radius of the sphere the eyelids rest on, mm (a little more than the eyeball's)."""
FISSURE_AXES = (13.0, 5.0)
"""Half-width and half-height of the open eye's fissure, mm."""
MOUTH_Y = -41.0
"""Height of the mouth slit at the front, mm."""
MOUTH_HALF_WIDTH = 24.0
"""Half-width of the mouth slit, mm."""
EAR_CENTRE_YZ = (12.0, -14.0)
"""(y, z) of the middle of each ear, mm."""
NOSTRIL_CENTRES = np.array([[7.0, -12.5], [-7.0, -12.5]])
"""(2, 2) (x, y) of the nostril dents, mm."""


@dataclass(frozen=True, eq=False)
class HeadSurface:
    """The neutral mesh and where its parts are.

    Attributes
    ----------
    vertices : np.ndarray
        (N, 3) float64 mm.
    faces : np.ndarray
        (F, 3) int64, counter-clockwise seen from outside.
    grid : np.ndarray
        (NUM_ROWS, NUM_COLUMNS) int64 skin vertex index of each ring point (row 0 is the pole,
        every entry the same); the lower-lip copies of the slit are in ``lower_lip_line``.
    mouth_row : int
        Row of the mouth slit.
    upper_lip_line, lower_lip_line : np.ndarray
        (M,) int64 the slit's upper (original) and lower (duplicated) vertices, same order.
    mouth_corners : np.ndarray
        (2,) int64 the slit's end vertices (shared by both lips), left then right.
    eyeballs : tuple[np.ndarray, np.ndarray]
        int64 vertex indices of the left and right eyeball meshes.
    fissure_depth : np.ndarray
        (2, num_skin) how far (mm, along ``-z``) each skin vertex was pushed back to open the
        left and right eye; filling it in closes the eye.
    num_skin : int
        Skin vertices come first, ``0 .. num_skin - 1``; eyeballs follow.
    """

    vertices: np.ndarray
    faces: np.ndarray
    grid: np.ndarray
    mouth_row: int
    upper_lip_line: np.ndarray
    lower_lip_line: np.ndarray
    mouth_corners: np.ndarray
    eyeballs: tuple[np.ndarray, np.ndarray]
    fissure_depth: np.ndarray
    num_skin: int

    @property
    def edges(self) -> np.ndarray:
        """(E, 2) int64 unique edges."""
        return unique_edges(self.faces)


def _profile_keys() -> np.ndarray:
    """(K, 8) ring keyframes top to bottom: ``y_f y_s y_b X_f X_b z_f z_s z_b`` (mm).

    ``_f``, ``_s`` and ``_b`` are the ring's front (``x = 0, z > 0``), side and back; ``X`` is
    the ring's half-width for its front and back halves.
    """
    theta = np.radians(np.arange(0.0, 91.0, 10.0))
    s, c = np.sin(theta), np.cos(theta)
    y = 25.0 + 105.0 * c
    half_width = 76.0 * s**0.9
    cranium = np.stack(
        [
            y,
            y,
            y,
            half_width,
            half_width,
            -8.0 + 100.0 * s**0.7,
            np.full_like(s, -8.0),
            -8.0 - 100.0 * s**0.85,
        ],
        axis=1,
    )
    lower = np.array(
        [
            # y_f    y_s     y_b    X_f   X_b   z_f   z_s    z_b
            [-2.0, 0.0, 5.0, 73.0, 75.0, 91.0, -6.0, -100.0],  # cheekbones
            [-30.0, -25.0, -25.0, 63.0, 70.0, 89.0, -8.0, -86.0],  # upper lip
            [-55.0, -50.0, -52.0, 54.0, 64.0, 86.0, -10.0, -72.0],  # mouth and jaw
            [-78.0, -74.0, -82.0, 42.0, 60.0, 80.0, -12.0, -64.0],  # chin
            [-96.0, -92.0, -102.0, 36.0, 57.0, 55.0, -13.0, -60.0],  # under the chin
            [-110.0, -110.0, -118.0, 50.0, 56.0, 32.0, -14.0, -57.0],  # top of the neck
            [-150.0, -150.0, -155.0, 54.0, 57.0, 36.0, -15.0, -60.0],  # neck
            [-190.0, -190.0, -190.0, 59.0, 61.0, 42.0, -15.0, -64.0],  # bottom of the neck
        ]
    )
    return np.concatenate([cranium, lower], axis=0)


def _inverse_cdf(samples: np.ndarray, density: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Invert the cumulative integral of ``density`` over ``samples`` at fractions ``targets``."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(samples))])
    return np.interp(targets * cdf[-1], cdf, samples)


def _column_angles() -> np.ndarray:
    """(NUM_COLUMNS,) azimuths in ``[-pi, pi)``, crowded at the face and at the ears."""
    phi = np.linspace(-np.pi, np.pi, 20001)
    density = (
        1.0
        + 2.2 * np.exp(-((phi / 0.75) ** 2))
        + 0.9 * np.exp(-(((np.abs(phi) - np.pi / 2 - 0.1) / 0.3) ** 2))
    )
    out = _inverse_cdf(phi, density, np.arange(NUM_COLUMNS) / NUM_COLUMNS)
    half = NUM_COLUMNS // 2
    out[half] = 0.0
    out[0] = -np.pi
    out[half + 1 :] = -out[1:half][::-1]  # exact mirror symmetry
    return out


def _row_profiles() -> np.ndarray:
    """(NUM_ROWS, 8) ring parameters, rows spaced by arc length, denser over the face."""
    keys = _profile_keys()
    k = np.arange(len(keys), dtype=np.float64)
    spline = PchipInterpolator(k, keys, axis=0)
    t = np.linspace(0.0, k[-1], 8001)
    p = spline(t)
    d = np.diff(p, axis=0)
    step = np.maximum.reduce(
        [np.hypot(d[:, 0], d[:, 5]), np.hypot(d[:, 2], d[:, 7]), np.hypot(d[:, 1], d[:, 3])]
    )
    y_mid = 0.5 * (p[1:, 0] + p[:-1, 0])
    density = 1.0 + 2.6 * smoothstep(y_mid, -105.0, -90.0) * smoothstep(y_mid, 62.0, 50.0)
    density += 0.8 * smoothstep(y_mid, 18.0, 24.0) * smoothstep(y_mid, 44.0, 38.0)
    arc = np.concatenate([[0.0], np.cumsum(step * density)])
    rows_t = np.interp(np.linspace(0.0, arc[-1], NUM_ROWS), arc, t)
    return spline(rows_t)


def _ring_points(profile: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(R, C, 3) points of rings with parameters ``profile`` (R, 8) at azimuths ``phi`` (C,)."""
    yf, ys, yb, xf, xb, zf, zs, zb = (profile[:, i : i + 1] for i in range(8))
    c, s = np.cos(phi)[None, :], np.sin(phi)[None, :]

    def blend(front: np.ndarray, side: np.ndarray, back: np.ndarray) -> np.ndarray:
        # m c + d c^2 + e: equals front at c = 1, side at c = 0, back at c = -1, smooth in phi.
        return 0.5 * (front - back) * c + (0.5 * (front + back) - side) * c * c + side

    half_width = 0.5 * (xf + xb) + 0.5 * (xf - xb) * c
    return np.stack([half_width * s, blend(yf, ys, yb), blend(zf, zs, zb)], axis=-1)


def _grid_faces(grid: np.ndarray) -> np.ndarray:
    """(F, 3) triangles of the ring grid: a fan at the pole, two triangles per quad."""
    cols = grid.shape[1]
    nxt = (np.arange(cols) + 1) % cols
    fan = np.stack([grid[0], grid[1], grid[1, nxt]], axis=1)
    a, b = grid[1:-1], grid[1:-1][:, nxt]
    c, d = grid[2:], grid[2:][:, nxt]
    quads = np.concatenate(
        [np.stack([a, c, b], axis=-1).reshape(-1, 3), np.stack([b, c, d], axis=-1).reshape(-1, 3)]
    )
    return np.concatenate([fan, quads]).astype(np.int64)


def _face_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Outward height (mm) of the facial features at front-projected ``(x, y)``."""
    ax = np.abs(x)
    h = np.zeros_like(x)
    # Brow ridge and glabella.
    h += 5.0 * bump(ax, y, 30.0, 48.0, 20.0, 6.5)
    h += 3.0 * bump(x, y, 0.0, 44.0, 9.0, 7.0)
    # Nose: a ridge rising from the root to the tip, widening, ending under the tip.
    along = np.clip((34.0 - y) / 40.0, 0.0, 1.0)
    ridge = 3.0 + 17.0 * along**1.4
    width = 5.5 + 6.0 * along
    below_tip = np.where(y < -8.0, np.exp(-(((y + 8.0) / 4.5) ** 2)), 1.0)
    above_root = np.where(y > 34.0, np.exp(-(((y - 34.0) / 8.0) ** 2)), 1.0)
    h += ridge * np.exp(-((x / width) ** 2)) * below_tip * above_root
    h += 3.0 * bump(x, y, 0.0, -5.0, 6.5, 5.0)  # rounded tip
    h += 6.0 * bump(ax, y, 12.5, -8.5, 5.5, 5.0)  # alar wings
    # Cheekbones and cheeks; temples in.
    h += 5.0 * bump(ax, y, 46.0, 6.0, 15.0, 11.0)
    h += 2.5 * bump(ax, y, 36.0, -28.0, 12.0, 12.0)
    h -= 3.0 * bump(ax, y, 62.0, 45.0, 10.0, 14.0)
    # Lips, philtrum, the groove under the lower lip, chin.
    h += 5.0 * bump(x, y, 0.0, -35.5, 21.0, 4.5, power=1.5)
    h += 5.5 * bump(x, y, 0.0, -47.0, 19.0, 4.5, power=1.5)
    h -= 1.2 * bump(x, y, 0.0, -27.0, 3.5, 4.0)
    h -= 3.0 * bump(x, y, 0.0, -57.0, 16.0, 3.5)
    h += 5.0 * bump(x, y, 0.0, -70.0, 15.0, 9.0)
    h -= 2.5 * bump(ax, y, 25.0, -41.0, 4.0, 5.0)  # mouth corners
    return h


def _ear_offset(y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward height and backward sweep (mm) of an ear at side-projected ``(y, z)``."""
    ey, ez = EAR_CENTRE_YZ
    dy, dz = y - ey, z - ez
    half_depth = 15.0 * (1.0 + 0.22 * np.clip(dy / 30.0, -1.0, 1.0))  # wider at the top
    q = (dy / 30.0) ** 2 + (dz / half_depth) ** 2
    shell = np.exp(-(q**1.6))
    rim = np.sqrt(q)
    scapha = np.exp(-(((rim - 0.72) / 0.13) ** 2)) * smoothstep(dy, -12.0, 0.0)
    concha = np.exp(-(((dy + 3.0) / 9.0) ** 2 + ((dz - 4.0) / 6.5) ** 2))
    height = 13.0 * shell - 2.5 * scapha * shell - 8.0 * concha * shell
    sweep = -0.45 * height * smoothstep(dz, -2.0, -16.0)
    return height, sweep


def _cut_mouth(
    grid: np.ndarray, faces: np.ndarray, vertices: np.ndarray, phi: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the mouth ring at the front so the lips can part.

    Returns the mouth row, the new vertices (duplicates appended), the faces, the upper and
    lower lip vertex lines and the two corner vertices.
    """
    front = grid[:, NUM_COLUMNS // 2]
    row = int(np.argmin(np.abs(vertices[front, 1] - MOUTH_Y)))
    on = np.nonzero((np.abs(vertices[grid[row], 0]) < MOUTH_HALF_WIDTH) & (np.cos(phi) > 0))[0]
    corners = grid[row, [on[-1] + 1, on[0] - 1]]
    upper = grid[row, on]
    lower = np.arange(len(vertices), len(vertices) + len(upper))
    remap = np.arange(len(vertices) + len(upper))
    remap[upper] = lower
    below = np.isin(faces, grid[row + 1]).any(axis=1)
    faces = faces.copy()
    faces[below] = remap[faces[below]]
    vertices = np.concatenate([vertices, vertices[upper]])
    return row, vertices, faces, upper, lower, corners


def build_surface() -> HeadSurface:
    """Sculpt the neutral procedural head (deterministic; no randomness)."""
    phi = _column_angles()
    rings = _ring_points(_row_profiles(), phi)
    rings[0] = rings[0].mean(axis=0)
    grid = np.arange(NUM_ROWS * NUM_COLUMNS).reshape(NUM_ROWS, NUM_COLUMNS) - (NUM_COLUMNS - 1)
    grid[0] = 0
    verts = np.concatenate([rings[0, :1], rings[1:].reshape(-1, 3)])
    faces = _grid_faces(grid)

    # Features along the base normals: the face in front, the ears on the sides.
    n0 = vertex_normals(verts, faces)
    x, y, z = verts.T
    front = smoothstep(n0[:, 2], 0.05, 0.5) * smoothstep(z, 0.0, 30.0)
    side = smoothstep(np.abs(n0[:, 0]), 0.55, 0.85) * smoothstep(np.abs(x), 55.0, 70.0)
    ear_h, ear_sweep = _ear_offset(y, z)
    verts = verts + n0 * (front * _face_height(x, y) + side * ear_h)[:, None]
    verts[:, 2] += side * ear_sweep

    # Eyelids rest on a sphere in front of each eyeball and part along the fissure.
    fissure_depth = np.zeros((2, len(verts)))
    for side, centre in enumerate(EYE_CENTRES):
        dx, dy = verts[:, 0] - centre[0], verts[:, 1] - centre[1]
        r2 = dx * dx + dy * dy
        same_side = (verts[:, 2] > 20.0) & (np.sign(verts[:, 0]) == np.sign(centre[0]))
        lid = centre[2] + LID_RADIUS - r2 / (2.0 * 16.0)
        w = smoothstep(np.sqrt(r2), 24.0, 13.0) * same_side
        verts[:, 2] = (1.0 - w) * verts[:, 2] + w * lid
        eyeball_z = centre[2] + np.sqrt(np.maximum(EYE_RADIUS**2 - r2, 0.0))
        fissure = np.hypot(dx / FISSURE_AXES[0], (dy - 0.5) / FISSURE_AXES[1])
        depth = np.maximum(verts[:, 2] - eyeball_z, 0.0) + 1.5
        fissure_depth[side] = smoothstep(fissure, 1.0, 0.55) * depth * same_side
        verts[:, 2] -= fissure_depth[side]

    row, verts, faces, upper, lower, corners = _cut_mouth(grid, faces, verts, phi)
    fissure_depth = np.concatenate([fissure_depth, fissure_depth[:, upper]], axis=1)

    # Fine detail along the sculpted normals: nostrils and the lips' crease.
    n1 = vertex_normals(verts, faces)
    lip_normal = n1[upper] + n1[lower]  # both lips share a normal so the closed slit stays shut
    n1[upper] = n1[lower] = lip_normal / np.linalg.norm(lip_normal, axis=1, keepdims=True)
    x, y = verts[:, 0], verts[:, 1]
    dent = np.zeros(len(verts))
    for cx, cy in NOSTRIL_CENTRES:
        dent += 3.5 * bump(x, y, cx, cy, 3.2, 2.2, power=1.5)
    in_front = smoothstep(verts[:, 2], 60.0, 80.0)
    dent += 2.0 * bump(x, y, 0.0, MOUTH_Y, 20.0, 1.8) * in_front
    verts = verts - n1 * dent[:, None]
    verts[np.concatenate([upper, lower]), 2] -= 1.0

    num_skin = len(verts)
    unit, ico_faces = icosphere(2)
    eyeballs = []
    all_faces = [faces]
    all_verts = [verts]
    for centre in EYE_CENTRES:
        start = sum(len(v) for v in all_verts)
        all_verts.append(centre + EYE_RADIUS * unit)
        all_faces.append(ico_faces + start)
        eyeballs.append(np.arange(start, start + len(unit), dtype=np.int64))
    return HeadSurface(
        vertices=np.concatenate(all_verts),
        faces=np.concatenate(all_faces).astype(np.int64),
        grid=grid.astype(np.int64),
        mouth_row=row,
        upper_lip_line=upper.astype(np.int64),
        lower_lip_line=lower.astype(np.int64),
        mouth_corners=corners.astype(np.int64),
        eyeballs=(eyeballs[0], eyeballs[1]),
        fissure_depth=fissure_depth,
        num_skin=num_skin,
    )
