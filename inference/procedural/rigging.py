"""Skinning weights, joint regressor and region masks of the procedural head.

Joints follow :data:`inference.head_data.JOINT_NAMES` (global, neck, jaw, left_eye,
right_eye) with FLAME's parents ``[-1, 0, 1, 1, 1]``.
"""

from __future__ import annotations

import numpy as np

from inference.procedural.fields import smooth_field, smoothstep
from inference.procedural.surface import (
    EAR_CENTRE_YZ,
    EYE_CENTRES,
    MOUTH_Y,
    NOSTRIL_CENTRES,
    HeadSurface,
)

PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
"""FLAME's kinematic tree: global → neck → (jaw, left eye, right eye)."""
GLOBAL_RING_Y = -160.0
"""Front height (mm) of the neck ring whose centroid is the global joint."""
NECK_RING_Y = -115.0
"""Front height (mm) of the ring at the top of the neck whose centroid is the neck joint."""


def _ring(surface: HeadSurface, y_front: float) -> np.ndarray:
    """Skin vertex indices of the grid ring whose front point lies nearest ``y_front``."""
    front = surface.grid[:, surface.grid.shape[1] // 2]
    row = int(np.argmin(np.abs(surface.vertices[front, 1] - y_front)))
    return surface.grid[row]


def jaw_weight(surface: HeadSurface) -> np.ndarray:
    """(num_skin,) share of the jaw joint: lower lip, chin and lower face, fading to the neck."""
    v = surface.vertices[: surface.num_skin]
    x, y, z = v.T
    spread = 1.8 + 12.0 * smoothstep(np.abs(x), 22.0, 55.0)
    below_mouth = smoothstep(y, MOUTH_Y + spread, MOUTH_Y - spread)
    below_mouth[surface.upper_lip_line] = 0.0
    below_mouth[surface.lower_lip_line] = 1.0
    mandible = smoothstep(z, -25.0, 10.0)
    above_neck = smoothstep(y, -122.0, -98.0)
    return below_mouth * mandible * above_neck


def skinning_weights(surface: HeadSurface) -> np.ndarray:
    """(N, 5) smooth skinning weights; rows sum to 1, eyeballs wholly on their eye joint."""
    n_skin = surface.num_skin
    y = surface.vertices[:n_skin, 1]
    jaw = jaw_weight(surface)
    neck_share = smoothstep(y, -178.0, -112.0)
    skin = np.stack([(1.0 - jaw) * (1.0 - neck_share), (1.0 - jaw) * neck_share, jaw], axis=1)
    skin = smooth_field(skin, surface.edges[surface.edges.max(axis=1) < n_skin], iterations=2)
    weights = np.zeros((len(surface.vertices), 5))
    weights[:n_skin, :3] = skin
    weights[surface.eyeballs[0], 3] = 1.0
    weights[surface.eyeballs[1], 4] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def joint_regressor(surface: HeadSurface) -> np.ndarray:
    """(5, N) joint regressor: each row averages a chosen set of vertices (rows sum to 1).

    The global joint is the centroid of a mid-neck ring, the neck joint that of the ring at
    the top of the neck, the jaw hinge the mean of skin patches just in front of and below
    both ears, and each eye joint the mean of its eyeball (its centre).
    """
    v = surface.vertices[: surface.num_skin]
    x, y, z = v.T
    hinge = np.nonzero((np.abs(x) > 55.0) & (y > -45.0) & (y < -15.0) & (np.abs(z + 2.0) < 14.0))[0]
    sets = [
        _ring(surface, GLOBAL_RING_Y),
        _ring(surface, NECK_RING_Y),
        hinge,
        surface.eyeballs[0],
        surface.eyeballs[1],
    ]
    reg = np.zeros((5, len(surface.vertices)))
    for j, idx in enumerate(sets):
        reg[j, idx] = 1.0 / len(idx)
    return reg


def region_masks(surface: HeadSurface) -> dict[str, np.ndarray]:
    """Named int64 vertex index arrays (TEMPEH's names, see ``REGION_NAMES``)."""
    n_skin = surface.num_skin
    v = surface.vertices[:n_skin]
    x, y, z = v.T
    ax = np.abs(x)
    ey, ez = EAR_CENTRE_YZ
    ear = (ax > 74.0) & (np.abs(y - ey) < 34.0) & (np.abs(z - ez) < 22.0)
    neck = y < -100.0
    boundary = np.zeros(n_skin, dtype=bool)
    boundary[surface.grid[-2:].ravel()] = True
    face = (z > 15.0) & (y > -100.0) & (y < 75.0) & (np.arctan2(ax, z) < np.radians(62.0))
    face &= ~ear
    scalp = ~(face | ear | neck | boundary) & (y > -70.0)
    lips = (ax < 28.0) & (y > -54.0) & (y < -30.0) & (z > 60.0)
    nostrils = np.zeros(n_skin, dtype=bool)
    for cx, cy in NOSTRIL_CENTRES:
        nostrils |= (np.hypot(x - cx, y - cy) < 4.5) & (z > 80.0)
    masks = {
        "face": face,
        "scalp": scalp,
        "neck": neck,
        "left_ear": ear & (x > 0),
        "right_ear": ear & (x < 0),
        "lips": lips,
        "nostrils": nostrils,
        "boundary": boundary,
    }
    for name, centre in zip(("left_eye_region", "right_eye_region"), EYE_CENTRES, strict=True):
        masks[name] = (np.hypot(x - centre[0], y - centre[1]) < 20.0) & (z > 40.0)
    out = {name: np.nonzero(m)[0].astype(np.int64) for name, m in masks.items()}
    out["left_eyeball"] = surface.eyeballs[0].astype(np.int64)
    out["right_eyeball"] = surface.eyeballs[1].astype(np.int64)
    return out
