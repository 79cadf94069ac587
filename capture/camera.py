"""Camera and rig records, their validation, and projection in numpy.

World unit is the **millimetre**. A camera maps a world point ``X`` (mm) to camera space by
``p = R @ X + t`` (world → camera, x right, y down, z forward), then to pixels with the
OpenCV model: normalised ``(x, y) = (p_x / p_z, p_y / p_z)``, distortion with the five
OpenCV terms ``(k1, k2, p1, p2, k3)`` and finally ``K``. Pixel centres are at integer
coordinates (OpenCV convention).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from capture.errors import CalibrationError

log = logging.getLogger(__name__)

ORTHONORMAL_TOLERANCE = 1e-6
METRE_SUSPICION_RADIUS = 10.0
"""Camera centres all within this distance of the origin suggest metres instead of mm."""


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    Attributes
    ----------
    name : str
        Unique name within its rig (e.g. ``"11_A"``).
    width, height : int
        Image size in pixels.
    K : np.ndarray
        (3, 3) float64 intrinsics in pixels ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
    dist : np.ndarray
        (5,) float64 OpenCV distortion ``(k1, k2, p1, p2, k3)``.
    R : np.ndarray
        (3, 3) float64 rotation world → camera.
    t : np.ndarray
        (3,) float64 translation world → camera, millimetres.
    serial : str
        Device serial number used to match a physical camera (may be empty).
    """

    name: str
    width: int
    height: int
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    serial: str = ""

    def __post_init__(self) -> None:
        for attr, shape in (("K", (3, 3)), ("dist", (5,)), ("R", (3, 3)), ("t", (3,))):
            value = np.array(getattr(self, attr), dtype=np.float64)
            if value.shape != shape:
                raise CalibrationError(
                    f"expected shape {shape}, got {value.shape}", camera=self.name, field=attr
                )
            value.setflags(write=False)
            object.__setattr__(self, attr, value)

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world millimetres, ``-Rᵀ t``."""
        return -self.R.T @ self.t

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    def scaled(self, factor: float) -> Camera:
        """The same camera for images resized by ``1 / factor`` (e.g. 8 for the coarse stage).

        Width and height are integer-divided as TEMPEH does; see :meth:`resized`.
        """
        if factor <= 0:
            raise CalibrationError(f"scale factor must be positive, got {factor}", camera=self.name)
        return self.resized(int(self.width // factor), int(self.height // factor))

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for images resized to ``width × height`` pixels.

        Uses the pixel-area convention: a pixel centre ``u`` maps to ``(u + 0.5)·sx − 0.5``
        with ``sx = width / self.width`` (and likewise for v), so image borders stay aligned.
        """
        if width <= 0 or height <= 0:
            raise CalibrationError(
                f"image size must be positive, got {width}x{height}", camera=self.name
            )
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        K[0, 2] = (self.K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (self.K[1, 2] + 0.5) * sy - 0.5
        return Camera(self.name, width, height, K, self.dist, self.R, self.t, self.serial)

    def equals(self, other: Camera, atol: float = 0.0) -> bool:
        """True when every field matches (arrays to ``atol``)."""
        return (
            self.name == other.name
            and self.serial == other.serial
            and self.width == other.width
            and self.height == other.height
            and all(
                np.allclose(getattr(self, a), getattr(other, a), rtol=0.0, atol=atol)
                for a in ("K", "dist", "R", "t")
            )
        )


@dataclass(frozen=True, eq=False)
class Rig:
    """A set of calibrated cameras sharing one world frame (millimetres).

    Attributes
    ----------
    cameras : tuple[Camera, ...]
        The cameras in view order.
    name : str
        A label (e.g. ``"default16"``).
    """

    cameras: tuple[Camera, ...]
    name: str = "rig"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            for cam in self.cameras:
                if cam.name == key:
                    return cam
            raise KeyError(f"rig {self.name!r} has no camera named {key!r}")
        return self.cameras[key]

    @property
    def names(self) -> list[str]:
        """Camera names in view order."""
        return [c.name for c in self.cameras]

    def scaled(self, factor: float) -> Rig:
        """Every camera scaled by ``1 / factor`` (see :meth:`Camera.scaled`)."""
        return Rig(tuple(c.scaled(factor) for c in self.cameras), self.name, dict(self.metadata))

    def resized(self, width: int, height: int) -> Rig:
        """Every camera resized to ``width × height`` (see :meth:`Camera.resized`)."""
        cams = tuple(c.resized(width, height) for c in self.cameras)
        return Rig(cams, self.name, dict(self.metadata))

    def equals(self, other: Rig, atol: float = 0.0) -> bool:
        """True when both rigs hold the same cameras in the same order."""
        return len(self) == len(other) and all(
            a.equals(b, atol) for a, b in zip(self.cameras, other.cameras, strict=True)
        )


# --------------------------------------------------------------------------- validation


def validate_camera(cam: Camera, path: str | PathLike[str] | None = None) -> None:
    """Raise :class:`CalibrationError` naming ``path``, the camera and the field if ``cam`` is bad.

    Checks: finite numbers, R orthonormal with det +1 (1e-6), positive focal lengths,
    principal point inside the image, positive image size.
    """

    def fail(fld: str, msg: str) -> None:
        raise CalibrationError(msg, path=path, camera=cam.name, field=fld)

    if not isinstance(cam.width, int | np.integer) or not isinstance(cam.height, int | np.integer):
        fail("image_size", f"width and height must be integers, got {cam.width!r}, {cam.height!r}")
    if cam.width <= 0 or cam.height <= 0:
        fail("image_size", f"image size must be positive, got {cam.width}x{cam.height}")
    for attr in ("K", "dist", "R", "t"):
        if not np.all(np.isfinite(getattr(cam, attr))):
            fail(attr, "contains NaN or infinite values")
    K = cam.K
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        fail("K", f"focal lengths must be positive, got fx={K[0, 0]:g}, fy={K[1, 1]:g}")
    if abs(K[1, 0]) > 0 or abs(K[2, 0]) > 0 or abs(K[2, 1]) > 0 or K[2, 2] != 1.0:
        fail("K", "must be upper triangular with K[2, 2] = 1")
    cx, cy = K[0, 2], K[1, 2]
    if not (0.0 <= cx <= cam.width and 0.0 <= cy <= cam.height):
        fail(
            "K",
            f"principal point ({cx:g}, {cy:g}) lies outside the {cam.width}x{cam.height} image",
        )
    err = np.abs(cam.R @ cam.R.T - np.eye(3)).max()
    if err > ORTHONORMAL_TOLERANCE:
        fail("R", f"rotation is not orthonormal (max |R Rᵀ - I| = {err:.3g} > 1e-6)")
    det = np.linalg.det(cam.R)
    if abs(det - 1.0) > ORTHONORMAL_TOLERANCE:
        fail("R", f"rotation must have determinant +1, got {det:.6g} (a reflection?)")


def validate_rig(rig: Rig, path: str | PathLike[str] | None = None) -> None:
    """Validate every camera, unique names and the unit scale of the rig.

    A rig whose camera centres all lie within 10 units of the origin is almost surely in
    metres; it is refused with a message saying how to declare the unit.
    """
    if len(rig) == 0:
        raise CalibrationError("rig has no cameras", path=path)
    seen: set[str] = set()
    for cam in rig:
        if not cam.name:
            raise CalibrationError("camera has an empty name", path=path, field="name")
        if cam.name in seen:
            raise CalibrationError("camera name is not unique", path=path, camera=cam.name)
        seen.add(cam.name)
        validate_camera(cam, path)
    radii = np.array([np.linalg.norm(c.center) for c in rig])
    if np.all(radii < METRE_SUSPICION_RADIUS):
        raise CalibrationError(
            f"all camera centres lie within {METRE_SUSPICION_RADIUS:g} units of the origin "
            f"(max {radii.max():.3g}): the translations look like metres, but the studio works "
            "in millimetres. Convert the file to mm, or declare the unit (canonical JSON: "
            '"units": "m"; OpenCV YAML: a "units: m" entry; CLI: --units m) '
            "so it is scaled on load",
            path=path,
            field="t",
        )


# --------------------------------------------------------------------------- projection


def _as_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    return pts


def world_to_camera(cam: Camera, points: np.ndarray) -> np.ndarray:
    """(N, 3) world mm → (N, 3) camera-space mm."""
    return _as_points(points) @ cam.R.T + cam.t


def distort(cam: Camera, xy: np.ndarray) -> np.ndarray:
    """Apply the OpenCV 5-term distortion to (N, 2) normalised coordinates."""
    k1, k2, p1, p2, k3 = cam.dist
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return np.stack([xd, yd], axis=1)


def undistort(cam: Camera, xy_d: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Invert :func:`distort` for (N, 2) distorted normalised coordinates (fixed-point + Newton)."""
    xy = np.array(xy_d, dtype=np.float64, copy=True)
    eps = 1e-7
    for _ in range(iterations):
        f = distort(cam, xy) - xy_d
        if np.abs(f).max(initial=0.0) < 1e-15:
            break
        # Numerical 2x2 Jacobian per point, solved in closed form.
        fx = (distort(cam, xy + [eps, 0.0]) - distort(cam, xy - [eps, 0.0])) / (2 * eps)
        fy = (distort(cam, xy + [0.0, eps]) - distort(cam, xy - [0.0, eps])) / (2 * eps)
        a, b, c, d = fx[:, 0], fy[:, 0], fx[:, 1], fy[:, 1]
        det = a * d - b * c
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        xy[:, 0] -= (d * f[:, 0] - b * f[:, 1]) / det
        xy[:, 1] -= (-c * f[:, 0] + a * f[:, 1]) / det
    return xy


def project(cam: Camera, points: np.ndarray) -> np.ndarray:
    """Project (N, 3) world points (mm) to (N, 2) pixels, with distortion.

    Same model as ``cv2.projectPoints`` with ``(k1, k2, p1, p2, k3)``. Points behind the camera
    are projected too (the caller masks them with :func:`depth`).
    """
    pc = world_to_camera(cam, points)
    z = pc[:, 2:3]
    z = np.where(np.abs(z) < 1e-12, 1e-12, z)
    xy = distort(cam, pc[:, :2] / z)
    K = cam.K
    u = K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2]
    v = K[1, 1] * xy[:, 1] + K[1, 2]
    return np.stack([u, v], axis=1)


def depth(cam: Camera, points: np.ndarray) -> np.ndarray:
    """(N,) camera-space z of world points, mm (positive in front of the camera)."""
    return world_to_camera(cam, points)[:, 2]


def backproject(cam: Camera, pixels: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Back-project (N, 2) pixels at camera-space depth ``z`` (mm) to (N, 3) world points.

    Inverts :func:`project`: ``project(cam, backproject(cam, uv, z)) == uv``.
    """
    uv = np.asarray(pixels, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"pixels must have shape (N, 2), got {uv.shape}")
    K = cam.K
    yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
    xd = (uv[:, 0] - K[0, 2] - K[0, 1] * yd) / K[0, 0]
    xy = undistort(cam, np.stack([xd, yd], axis=1))
    zz = np.broadcast_to(np.asarray(z, dtype=np.float64), (len(uv),))
    pc = np.concatenate([xy * zz[:, None], zz[:, None]], axis=1)
    return (pc - cam.t) @ cam.R  # R^T (p - t), row-vector form


def look_at(center: Sequence[float], target: Sequence[float], up: Sequence[float]) -> np.ndarray:
    """World → camera rotation for a camera at ``center`` looking at ``target``.

    Camera axes: z forward (towards the target), y down (opposite ``up``), x right.
    """
    c, tgt, upv = (np.asarray(v, dtype=np.float64) for v in (center, target, up))
    z = tgt - c
    z /= np.linalg.norm(z)
    x = np.cross(-upv, z)
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        raise ValueError("up vector is parallel to the viewing direction")
    x /= nx
    y = np.cross(z, x)
    return np.stack([x, y, z])
