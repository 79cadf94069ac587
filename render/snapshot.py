"""Side-by-side orbit snapshots of a head mesh, for the CLI, the README and quick checks.

Threads: :func:`render_views` creates (and releases) its own headless context unless one is
given, so it may be called from any thread that owns no other GL work; a given ``ctx`` must be
current on the calling thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from os import PathLike

import moderngl
import numpy as np
from PIL import Image

from capture.errors import RenderError
from render.camera_math import orbit_view, perspective
from render.mesh_renderer import Mode
from render.offscreen import OffscreenRenderer

log = logging.getLogger(__name__)

VIEW_ANGLES: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0),
    "three_quarter": (40.0, 5.0),
    "side": (90.0, 0.0),
    "three_quarter_left": (-40.0, 5.0),
    "side_left": (-90.0, 0.0),
    "back": (180.0, 0.0),
    "top": (0.0, 80.0),
}
"""Named ``(azimuth, elevation)`` in degrees for a head facing ``+z`` with ``y`` up."""

SNAPSHOT_FOV_Y = 30.0
"""Vertical field of view of the snapshot camera, degrees."""
FRAME_MARGIN = 1.05


def _view_angles(view: str | tuple[float, float]) -> tuple[float, float]:
    if isinstance(view, str):
        if view not in VIEW_ANGLES:
            raise RenderError(f"unknown view {view!r}; expected one of {sorted(VIEW_ANGLES)}")
        return VIEW_ANGLES[view]
    az, el = view
    return float(az), float(el)


def render_views(
    vertices_mm: np.ndarray,
    faces: np.ndarray,
    size: int = 512,
    views: Sequence[str | tuple[float, float]] = ("front", "three_quarter", "side"),
    background: Sequence[int] = (255, 255, 255),
    color: np.ndarray | Sequence[float] | None = None,
    mode: Mode = "shaded",
    samples: int = 4,
    ctx: moderngl.Context | None = None,
) -> np.ndarray:
    """Render orbit views of a mesh, each ``size × size``, concatenated left to right.

    Every view looks at the centre of the mesh's bounding box from a distance at which the
    box's circumscribed sphere fills the frame (same scale in every view).

    Parameters
    ----------
    vertices_mm : np.ndarray
        (N, 3) float world positions, mm (head facing ``+z``, ``y`` up).
    faces : np.ndarray
        (F, 3) int vertex indices.
    size : int
        Side of each square view, pixels.
    views : sequence
        Names from :data:`VIEW_ANGLES` or ``(azimuth_deg, elevation_deg)`` pairs.
    background : sequence of int
        (3,) RGB uint8.
    color : array-like, optional
        (3,) albedo or (N, 3) per-vertex colours, float in [0, 1] or uint8; default the
        renderer's clay (shaded) or dark grey (wireframe).
    mode : {"shaded", "wireframe", "colors"}
        See :meth:`render.mesh_renderer.MeshRenderer.draw`.
    samples : int
        MSAA samples (0 = off).
    ctx : moderngl.Context, optional
        Context current on this thread; default a temporary headless one.

    Returns
    -------
    np.ndarray
        (size, size * len(views), 3) uint8 RGB.
    """
    v = np.asarray(vertices_mm, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise RenderError(f"vertices must have shape (N, 3) with N > 0, got {v.shape}")
    if size <= 0 or not views:
        raise RenderError(f"need a positive size and at least one view, got {size}, {views!r}")
    angles = [_view_angles(view) for view in views]
    lo, hi = v.min(axis=0), v.max(axis=0)
    center = 0.5 * (lo + hi)
    radius = max(0.5 * float(np.linalg.norm(hi - lo)), 1e-3)
    distance = FRAME_MARGIN * radius / math.sin(math.radians(SNAPSHOT_FOV_Y) / 2.0)
    near = max(distance - 1.5 * radius, 1e-3 * distance)
    projection = perspective(SNAPSHOT_FOV_Y, 1.0, near, distance + 1.5 * radius)
    with OffscreenRenderer(size, size, ctx=ctx, samples=samples) as renderer:
        tiles = [
            renderer.render(
                orbit_view(center, distance, az, el), projection, v, faces, mode, color, background
            )
            for az, el in angles
        ]
    log.debug("rendered %d views at %d px", len(tiles), size)
    return np.concatenate(tiles, axis=1)


def save_png(path: str | PathLike[str], image: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) uint8 image as PNG."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise RenderError(
            f"expected an (H, W, 3) or (H, W) uint8 image, got {img.shape} {img.dtype}"
        )
    try:
        Image.fromarray(img).save(path, format="PNG")
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc}") from exc
    log.info("wrote %s (%dx%d)", path, img.shape[1], img.shape[0])
