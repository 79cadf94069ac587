"""The viewport's orbit camera: pure state and matrices (no Qt, no GL)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from render.camera_math import orbit_view, perspective

DEFAULT_TARGET = (0.0, -20.0, 0.0)
"""Looked-at point, world mm (the middle of a head at the origin, face along +z)."""
DEFAULT_DISTANCE = 900.0
DEFAULT_AZIMUTH = 25.0
DEFAULT_ELEVATION = 12.0
FOV_Y = 30.0


@dataclass
class OrbitCamera:
    """Orbit / pan / zoom state of the 3D viewport (GUI thread only).

    Attributes
    ----------
    target : np.ndarray
        (3,) point orbited around, world mm.
    distance : float
        Eye-to-target distance, mm.
    azimuth, elevation : float
        Degrees (see :func:`render.camera_math.orbit_view`); elevation stays in [-89, 89].
    """

    target: np.ndarray = field(default_factory=lambda: np.array(DEFAULT_TARGET))
    distance: float = DEFAULT_DISTANCE
    azimuth: float = DEFAULT_AZIMUTH
    elevation: float = DEFAULT_ELEVATION

    def reset(self) -> None:
        """Back to the default front-three-quarter view of a head at the origin."""
        self.target = np.array(DEFAULT_TARGET)
        self.distance = DEFAULT_DISTANCE
        self.azimuth = DEFAULT_AZIMUTH
        self.elevation = DEFAULT_ELEVATION

    def orbit(self, dx_px: float, dy_px: float) -> None:
        """Rotate by a mouse drag of ``(dx, dy)`` pixels (0.4 degree per pixel)."""
        self.azimuth -= 0.4 * dx_px
        self.elevation = float(np.clip(self.elevation + 0.4 * dy_px, -89.0, 89.0))

    def pan(self, dx_px: float, dy_px: float, viewport_height: int) -> None:
        """Move the target in the view plane so the scene follows a drag of ``(dx, dy)`` px."""
        view = self.view()
        right, up = view[0, :3], view[1, :3]
        mm_per_px = (
            2.0 * self.distance * math.tan(math.radians(FOV_Y) / 2) / max(1, viewport_height)
        )
        self.target = self.target - right * dx_px * mm_per_px + up * dy_px * mm_per_px

    def zoom(self, steps: float) -> None:
        """Zoom in (``steps > 0``) or out by 15 % per step; the distance stays in [50, 20000] mm."""
        self.distance = float(np.clip(self.distance * 0.85**steps, 50.0, 20000.0))

    def view(self) -> np.ndarray:
        """(4, 4) GL view matrix."""
        return orbit_view(self.target, self.distance, self.azimuth, self.elevation)

    def projection(self, width: int, height: int) -> np.ndarray:
        """(4, 4) GL perspective for a ``width × height`` viewport."""
        near = max(1.0, self.distance * 0.05)
        return perspective(FOV_Y, max(1, width) / max(1, height), near, self.distance * 20.0)
