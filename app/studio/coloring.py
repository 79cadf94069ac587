"""Per-vertex colours for the viewport: template regions, frame-to-frame motion, error (numpy)."""

from __future__ import annotations

import numpy as np

from inference.head_data import HeadTemplate

REGION_COLORS: dict[str, tuple[float, float, float]] = {
    "face": (0.93, 0.74, 0.62),
    "scalp": (0.45, 0.36, 0.30),
    "neck": (0.80, 0.62, 0.52),
    "left_ear": (0.95, 0.55, 0.35),
    "right_ear": (0.95, 0.55, 0.35),
    "left_eyeball": (0.95, 0.95, 0.98),
    "right_eyeball": (0.95, 0.95, 0.98),
    "left_eye_region": (0.55, 0.70, 0.95),
    "right_eye_region": (0.55, 0.70, 0.95),
    "lips": (0.85, 0.25, 0.30),
    "nostrils": (0.35, 0.20, 0.20),
    "boundary": (0.30, 0.75, 0.40),
}
"""Colour per region name (:data:`inference.head_data.REGION_NAMES`); later names win."""
UNLABELLED = (0.6, 0.6, 0.6)

COLOR_MODES = ("none", "regions", "motion", "error")
"""Per-vertex colour sources of the viewport."""


def region_colors(template: HeadTemplate) -> np.ndarray:
    """(N, 3) float32 colours of the template's regions (grey where none applies)."""
    colors = np.tile(np.asarray(UNLABELLED, dtype=np.float32), (template.num_vertices, 1))
    for name, color in REGION_COLORS.items():
        idx = template.regions.get(name)
        if idx is not None and idx.size:
            colors[idx] = color
    return colors


def heat_colors(values: np.ndarray, vmax: float) -> np.ndarray:
    """(N,) non-negative values → (N, 3) float32 colours, blue (0) → green → red (≥ ``vmax``)."""
    x = np.clip(np.asarray(values, dtype=np.float64) / max(float(vmax), 1e-9), 0.0, 1.0)
    r = np.clip(2.0 * x - 0.5, 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * x - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - 2.5 * x, 0.0, 1.0)
    return np.stack([r, g, b], axis=1).astype(np.float32)


def vertex_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distances between corresponding vertices of two (N, 3) arrays, mm."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"vertex arrays must both be (N, 3), got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=1)


MOTION_SCALE_MM = 5.0
"""Frame-to-frame displacement shown fully red."""
ERROR_SCALE_MM = 10.0
"""Distance to the reference shown fully red."""
