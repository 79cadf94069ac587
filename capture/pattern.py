"""A renderer-free frame provider and a small ring rig, for the emulated cameras and tests.

A *frame provider* is a callable ``provider(set_index) -> list[np.ndarray]`` returning one
uint8 image per rig camera (view order) for frame set ``set_index``. The emulated Basler
source plays provider images through pylon's camera emulator (``ImageFileMode``). The
virtual-studio renderer is another provider; ``app`` wires it in, ``capture`` never imports it.

:func:`pattern_provider` draws a bright disc where a 3D point, moving on a circle near the rig
centre, projects in each camera (:func:`capture.camera.project`), plus the set index as text:
the disc centre of each view tells which set the view belongs to, so synchronisation can be
checked from the images alone (:func:`find_disc`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from capture.camera import Camera, Rig, look_at, project

FrameProvider = Callable[[int], list[np.ndarray]]
"""``(set_index) -> list`` of (H, W) or (H, W, 3) uint8 images, one per rig camera."""

PATTERN_PERIOD = 24
"""Sets per revolution of the pattern point."""
PATTERN_RADIUS_MM = 80.0
DISC_VALUE = 255
BACKGROUND_VALUE = 24
TEXT_VALUE = 128


def ring_rig(n: int = 4, width: int = 160, height: int = 120, radius_mm: float = 1000.0) -> Rig:
    """``n`` cameras on a horizontal half ring ``radius_mm`` from the origin, looking at it.

    Serials follow the pylon emulator (``0815-0000``, ``0815-0001``, ...). World y is up
    (camera y points down), units mm, focal length 1.2 × width pixels, no distortion.
    """
    cams = []
    f = 1.2 * width
    K = np.array([[f, 0.0, width / 2 - 0.5], [0.0, f, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    for i in range(n):
        a = math.radians(-60.0 + 120.0 * i / max(n - 1, 1))
        center = np.array([radius_mm * math.sin(a), 0.0, radius_mm * math.cos(a)])
        R = look_at(center, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
        cams.append(
            Camera(f"cam{i:02d}", width, height, K, np.zeros(5), R, -R @ center, f"0815-{i:04d}")
        )
    return Rig(tuple(cams), name=f"ring{n}")


def pattern_point(set_index: int) -> np.ndarray:
    """(3,) world position (mm) of the pattern point in set ``set_index``."""
    theta = 2.0 * math.pi * (set_index % PATTERN_PERIOD) / PATTERN_PERIOD
    r = PATTERN_RADIUS_MM
    return np.array([r * math.cos(theta), 0.7 * r * math.sin(theta), 0.7 * r * math.sin(theta)])


def pattern_pixels(rig: Rig, set_index: int) -> np.ndarray:
    """(C, 2) pixel position of the pattern point in every camera for ``set_index``."""
    p = pattern_point(set_index)[None, :]
    return np.concatenate([project(cam, p) for cam in rig.cameras], axis=0)


def pattern_provider(rig: Rig) -> FrameProvider:
    """A provider drawing, per camera, the projected pattern point as a disc (Mono8 images)."""

    def provide(set_index: int) -> list[np.ndarray]:
        uv = pattern_pixels(rig, set_index)
        images = []
        for cam, (u, v) in zip(rig.cameras, uv, strict=True):
            img = np.full((cam.height, cam.width), BACKGROUND_VALUE, np.uint8)
            radius = max(3.0, cam.width / 40.0)
            shift = 4
            scale = 1 << shift
            # Sub-pixel centre (shift bits) so the disc centroid matches the projection.
            cv2.circle(
                img,
                (round(u * scale), round(v * scale)),
                round(radius * scale),
                DISC_VALUE,
                -1,
                cv2.LINE_AA,
                shift,
            )
            cv2.putText(
                img,
                str(set_index),
                (2, cam.height - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                max(0.3, cam.width / 640.0),
                TEXT_VALUE,
                1,
                cv2.LINE_8,
            )
            images.append(img)
        return images

    return provide


def find_disc(image: np.ndarray, threshold: int = 180) -> tuple[float, float] | None:
    """Centroid ``(u, v)`` in pixels of the bright disc in a pattern image, None if absent.

    Intensity-weighted over pixels above ``threshold`` (the text is drawn darker).
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    w = np.where(gray > threshold, gray.astype(np.float64), 0.0)
    total = w.sum()
    if total <= 0:
        return None
    ys, xs = np.mgrid[0 : gray.shape[0], 0 : gray.shape[1]]
    return float((w * xs).sum() / total), float((w * ys).sum() / total)


def pattern_set_index(rig: Rig, images: list[np.ndarray | None], tolerance_px: float = 1.5) -> int:
    """The pattern set index (mod ``PATTERN_PERIOD``) all present views agree on, else -1."""
    for k in range(PATTERN_PERIOD):
        uv = pattern_pixels(rig, k)
        ok = True
        for img, expected in zip(images, uv, strict=True):
            if img is None:
                continue
            c = find_disc(img)
            if c is None or math.dist(c, expected) > tolerance_px:
                ok = False
                break
        if ok:
            return k
    return -1
