"""Projection agrees with OpenCV and back-projection inverts it."""

from __future__ import annotations

import cv2
import numpy as np

from capture.camera import backproject, depth, project


def points_in_view(cam, n: int, seed: int = 1) -> np.ndarray:
    """(n, 3) world points in front of ``cam`` whose normalised coordinates stay in the image."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-0.24, -0.18], [0.24, 0.18], size=(n, 2))
    z = rng.uniform(500.0, 1500.0, size=n)
    pc = np.concatenate([xy * z[:, None], z[:, None]], axis=1)
    return (pc - cam.t) @ cam.R


def test_project_matches_cv2_project_points(distorted_camera) -> None:
    cam = distorted_camera()
    assert np.all(cam.dist != 0.0)
    pts = points_in_view(cam, 10_000)
    assert np.all(depth(cam, pts) > 0)
    rvec = cv2.Rodrigues(np.asarray(cam.R))[0]
    expected = cv2.projectPoints(pts, rvec, cam.t, cam.K, cam.dist)[0].reshape(-1, 2)
    np.testing.assert_allclose(project(cam, pts), expected, rtol=0, atol=1e-6)


def test_backproject_inverts_project(distorted_camera) -> None:
    cam = distorted_camera(seed=3)
    rng = np.random.default_rng(2)
    uv = rng.uniform([0.0, 0.0], [cam.width - 1.0, cam.height - 1.0], size=(10_000, 2))
    z = rng.uniform(500.0, 1500.0, size=len(uv))
    world = backproject(cam, uv, z)
    np.testing.assert_allclose(depth(cam, world), z, rtol=1e-12)
    np.testing.assert_allclose(project(cam, world), uv, rtol=0, atol=1e-6)


def test_backproject_recovers_world_points(distorted_camera) -> None:
    cam = distorted_camera(seed=4)
    pts = points_in_view(cam, 10_000, seed=5)
    back = backproject(cam, project(cam, pts), depth(cam, pts))
    np.testing.assert_allclose(back, pts, rtol=0, atol=1e-6)
