"""Mesh wireframes projected into a camera image (numpy + OpenCV, no Qt)."""

from __future__ import annotations

import cv2
import numpy as np

from capture.camera import Camera, project, world_to_camera


def to_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W) gray or (H, W, 3) BGR uint8 → a writable (H, W, 3) BGR copy."""
    img = np.asarray(image)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.array(img, copy=True)


def front_faces(camera: Camera, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F',) indices of the faces in front of ``camera`` and turned towards it.

    Faces are counter-clockwise seen from outside, so a face is seen from the front when its
    normal points towards the camera centre.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normal = np.cross(b - a, c - a)
    towards = camera.center[None, :] - a
    in_front = world_to_camera(camera, v)[:, 2] > 1.0
    visible = (np.einsum("ij,ij->i", normal, towards) > 0) & in_front[f].all(axis=1)
    return np.nonzero(visible)[0]


def draw_wireframe(
    image: np.ndarray,
    camera: Camera,
    vertices: np.ndarray,
    faces: np.ndarray,
    color: tuple[int, int, int] = (60, 255, 60),
) -> np.ndarray:
    """The camera image with the front-facing triangles of a mesh drawn on it.

    Parameters
    ----------
    image : np.ndarray
        (H, W) or (H, W, 3) uint8 image of ``camera`` (BGR).
    camera : Camera
        The rig camera that took it (its size must match the image).
    vertices : np.ndarray
        (N, 3) world mm.
    faces : np.ndarray
        (F, 3) int triangles.
    color : tuple of int
        BGR line colour.

    Returns
    -------
    np.ndarray
        (H, W, 3) uint8 BGR copy with the wireframe (distortion included, as
        :func:`capture.camera.project`).
    """
    out = to_bgr(image)
    if out.shape[:2] != (camera.height, camera.width):
        raise ValueError(
            f"camera {camera.name!r} is {camera.width}x{camera.height}, "
            f"the image is {out.shape[1]}x{out.shape[0]}"
        )
    f = np.asarray(faces, dtype=np.int64)[front_faces(camera, vertices, faces)]
    if not len(f):
        return out
    uv = project(camera, np.asarray(vertices, dtype=np.float64))
    shift = 4  # sub-pixel precision for cv2 drawing
    tri = np.round(uv[f] * (1 << shift)).astype(np.int32)
    lim = 1 << 28
    tri = tri[np.all(np.abs(tri) < lim, axis=(1, 2))]
    cv2.polylines(out, list(tri), True, color, 1, cv2.LINE_AA, shift)
    return out
