"""OpenGL camera matrices as pure numpy functions (float64, row-major, column vectors).

Frames
------
* **World**: millimetres; heads face ``+z`` with ``y`` up.
* **OpenCV camera**: ``p = R @ X + t``; x right, y down, z forward (:mod:`capture.camera`).
* **GL camera** (eye space): x right, y up, looking down ``-z``. It is the OpenCV camera with
  y and z negated, so ``view_from_Rt`` is ``diag(1, -1, -1, 1) @ [R | t]``.

Pixel convention and the flip
-----------------------------
OpenCV puts pixel centres at integer ``(u, v)`` with ``v`` growing downwards; pixel ``(u, v)``
covers ``[u - 0.5, u + 0.5] × [v - 0.5, v + 0.5]``. GL window coordinates have their origin at
the **bottom-left** corner and pixel centres at half integers. :func:`opengl_projection_from_K`
maps

    x_window = u + 0.5,        y_window = height - (v + 0.5),

so an image drawn with it appears upright on screen (what the Qt viewport wants), and the
rasteriser samples every pixel exactly at the OpenCV pixel centre. ``glReadPixels`` returns
rows bottom-up (memory row ``j`` is window row ``j``, i.e. ``v = height - 1 - j``), so the
readback is flipped with ``np.flipud`` to get a top-down OpenCV image
(see :func:`ndc_to_pixel` for the exact inverse used in tests).

Matrices are returned as row-major ``(4, 4)`` float64 arrays acting on column vectors
(``clip = P @ V @ X``). GL wants column-major uniforms: upload ``M.T.astype("f4")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from capture.errors import RenderError

OPENCV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
"""(4, 4) change of basis OpenCV camera → GL camera (negate y and z)."""


def _check_near_far(near: float, far: float) -> None:
    if not (near > 0.0 and far > near and math.isfinite(far)):
        raise RenderError(f"clip planes must satisfy 0 < near < far < inf, got {near=}, {far=}")


def _depth_rows(near: float, far: float) -> tuple[float, float]:
    """Coefficients ``(a, b)`` of ``z_clip = a * z_eye + b`` mapping [-near, -far] to [-1, 1]."""
    return -(far + near) / (far - near), -2.0 * far * near / (far - near)


def opengl_projection_from_K(
    K: np.ndarray, width: int, height: int, near: float, far: float
) -> np.ndarray:
    """GL projection matrix reproducing the OpenCV pinhole ``K`` on a ``width × height`` grid.

    Parameters
    ----------
    K : np.ndarray
        (3, 3) intrinsics in pixels ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (skew allowed).
    width, height : int
        Image size in pixels; the GL viewport must be ``(0, 0, width, height)``.
    near, far : float
        Clip distances along the viewing axis, in the units of the view matrix (mm).

    Returns
    -------
    np.ndarray
        (4, 4) float64 projection acting on GL eye coordinates. With ``V = view_from_Rt(R, t)``
        a world point lands at window ``(u + 0.5, height - v - 0.5)`` where ``(u, v)`` is
        :func:`capture.camera.project` without distortion (see the module notes for the flip).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise RenderError(f"K must have shape (3, 3), got {K.shape}")
    if width <= 0 or height <= 0:
        raise RenderError(f"image size must be positive, got {width}x{height}")
    _check_near_far(near, far)
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    a, b = _depth_rows(near, far)
    # Derivation: with eye (X, Y, Z) = (x, -y, -z) of the OpenCV point (x, y, z), w_clip = z and
    # x_ndc = 2 (u + 0.5) / W - 1, y_ndc = 1 - 2 (v + 0.5) / H.
    return np.array(
        [
            [2.0 * fx / width, -2.0 * s / width, 1.0 - 2.0 * (cx + 0.5) / width, 0.0],
            [0.0, 2.0 * fy / height, 2.0 * (cy + 0.5) / height - 1.0, 0.0],
            [0.0, 0.0, a, b],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def ndc_to_pixel(ndc_xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 2) GL normalised device x, y → (N, 2) OpenCV pixels ``(u, v)`` (y flipped)."""
    ndc = np.asarray(ndc_xy, dtype=np.float64)
    u = (ndc[:, 0] + 1.0) * 0.5 * width - 0.5
    v = (1.0 - ndc[:, 1]) * 0.5 * height - 0.5
    return np.stack([u, v], axis=1)


def view_from_Rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """GL view matrix (world → GL eye) of an OpenCV camera ``p = R X + t``.

    Parameters
    ----------
    R : np.ndarray
        (3, 3) rotation world → OpenCV camera.
    t : np.ndarray
        (3,) translation world → OpenCV camera, mm.

    Returns
    -------
    np.ndarray
        (4, 4) float64 ``diag(1, -1, -1, 1) @ [[R, t], [0, 1]]`` (y and z flipped).
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if R.shape != (3, 3) or t.shape != (3,):
        raise RenderError(f"R must be (3, 3) and t (3,), got {R.shape} and {t.shape}")
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = t
    return OPENCV_TO_GL @ M


def look_at_view(eye: Sequence[float], target: Sequence[float], up: Sequence[float]) -> np.ndarray:
    """(4, 4) GL view matrix of a camera at ``eye`` looking at ``target`` (gluLookAt)."""
    e, c, u = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = c - e
    nf = np.linalg.norm(f)
    if nf < 1e-12:
        raise RenderError("eye and target coincide")
    f /= nf
    s = np.cross(f, u)
    ns = np.linalg.norm(s)
    if ns < 1e-9:
        raise RenderError("up vector is parallel to the viewing direction")
    s /= ns
    u2 = np.cross(s, f)
    M = np.eye(4)
    M[0, :3], M[1, :3], M[2, :3] = s, u2, -f
    M[:3, 3] = -M[:3, :3] @ e
    return M


def orbit_view(
    target: Sequence[float], distance: float, azimuth_deg: float, elevation_deg: float
) -> np.ndarray:
    """GL view matrix of a camera orbiting ``target`` in a y-up world.

    Parameters
    ----------
    target : sequence of float
        (3,) point looked at, world mm.
    distance : float
        Eye-to-target distance, mm.
    azimuth_deg : float
        Rotation about world ``+y``; 0 looks from ``+z`` (the front of a head), 90 from ``+x``.
    elevation_deg : float
        Angle above the ``xz`` plane; keep it inside (-90, 90).

    Returns
    -------
    np.ndarray
        (4, 4) float64 world → GL eye matrix.
    """
    if distance <= 0:
        raise RenderError(f"orbit distance must be positive, got {distance}")
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = distance * np.array(
        [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)]
    )
    tgt = np.asarray(target, dtype=np.float64)
    return look_at_view(tgt + offset, tgt, (0.0, 1.0, 0.0))


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    """Symmetric GL perspective matrix (gluPerspective).

    Parameters
    ----------
    fov_y : float
        Vertical field of view in **degrees**, in (0, 180).
    aspect : float
        Width / height of the viewport.
    near, far : float
        Clip distances, mm.

    Returns
    -------
    np.ndarray
        (4, 4) float64 projection matrix.
    """
    if not (0.0 < fov_y < 180.0) or aspect <= 0:
        raise RenderError(f"need 0 < fov_y < 180 degrees and aspect > 0, got {fov_y}, {aspect}")
    _check_near_far(near, far)
    f = 1.0 / math.tan(math.radians(fov_y) / 2.0)
    a, b = _depth_rows(near, far)
    return np.array(
        [
            [f / aspect, 0.0, 0.0, 0.0],
            [0.0, f, 0.0, 0.0],
            [0.0, 0.0, a, b],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def gl_matrix_bytes(M: np.ndarray) -> bytes:
    """Column-major float32 bytes of a (4, 4) or (3, 3) row-major matrix, for a GL uniform."""
    return np.ascontiguousarray(np.asarray(M, dtype=np.float64).T, dtype=np.float32).tobytes()
