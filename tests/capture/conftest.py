"""Rigs made in code for the calibration tests, offered as fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from capture.camera import Camera, Rig, look_at


def make_distorted_camera(name: str = "cam", seed: int = 0) -> Camera:
    """A 1600x1200 camera 1 m from the origin with all five distortion terms nonzero."""
    rng = np.random.default_rng(seed)
    center = rng.normal(size=3)
    center *= 1000.0 / np.linalg.norm(center)
    R = look_at(center, [0.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    K = np.array([[3210.5, 0.0, 801.25], [0.0, 3190.75, 597.5], [0.0, 0.0, 1.0]])
    dist = np.array([-0.08, 0.12, 1.5e-3, -8e-4, -0.05])
    return Camera(name, 1600, 1200, K, dist, R, -R @ center, f"sn-{seed}")


def make_small_rig(n: int = 4, radial_only: bool = False) -> Rig:
    """``n`` distorted cameras named like stereo pods (``11_A``, ``11_B``, ``12_A`` ...)."""
    cams = []
    for i in range(n):
        cam = make_distorted_camera(f"{11 + i // 2}_{'AB'[i % 2]}", seed=i)
        if radial_only:
            dist = np.array([cam.dist[0], cam.dist[1], 0.0, 0.0, 0.0])
            cam = Camera(cam.name, cam.width, cam.height, cam.K, dist, cam.R, cam.t, cam.serial)
        cams.append(cam)
    return Rig(tuple(cams), "small")


@pytest.fixture
def distorted_camera():
    """Factory ``(name="cam", seed=0) -> Camera`` (see :func:`make_distorted_camera`)."""
    return make_distorted_camera


@pytest.fixture
def small_rig():
    """Factory ``(n=4, radial_only=False) -> Rig`` (see :func:`make_small_rig`)."""
    return make_small_rig
