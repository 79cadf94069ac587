"""Render package: GL matrices against capture.camera.project, silhouettes, depth, snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import moderngl
import numpy as np
import pytest

from capture.camera import Camera, look_at, project, world_to_camera
from capture.errors import RenderError
from render.camera_math import (
    ndc_to_pixel,
    opengl_projection_from_K,
    orbit_view,
    perspective,
    view_from_Rt,
)
from render.context import gl_info
from render.mesh_renderer import vertex_normals
from render.offscreen import OffscreenRenderer
from render.primitives import icosphere
from render.snapshot import render_views, save_png

# --------------------------------------------------------------------------- fixtures


def make_camera(width: int = 640, height: int = 480, skew: float = 0.0) -> Camera:
    """A distortion-free camera 600 mm from the origin, slightly off-axis, looking at it.

    The field of view is the same at every size (focal lengths scale with the width).
    """
    center = np.array([120.0, -80.0, 600.0])
    R = look_at(center, (5.0, -3.0, 0.0), (0.0, 1.0, 0.0))
    k = width / 640.0
    K = np.array(
        [[700.0 * k, skew, width / 2 - 7.3 * k], [0.0, 690.0 * k, height / 2 + 4.1 * k], [0, 0, 1]]
    )
    return Camera("test", width, height, K, np.zeros(5), R, -R @ center)


@pytest.fixture(scope="module")
def renderer(ctx: moderngl.Context) -> Iterator[OffscreenRenderer]:
    r = OffscreenRenderer(640, 480, ctx=ctx)
    yield r
    r.release()


# --------------------------------------------------------------------------- pure math


@pytest.mark.parametrize("skew", [0.0, 1.7])
def test_projection_from_K_matches_capture_project(skew: float) -> None:
    cam = make_camera(skew=skew)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-150, 150, size=(500, 3))
    V = view_from_Rt(cam.R, cam.t)
    P = opengl_projection_from_K(cam.K, cam.width, cam.height, near=10.0, far=5000.0)
    clip = np.c_[pts, np.ones(len(pts))] @ (P @ V).T
    ndc = clip[:, :3] / clip[:, 3:]
    uv = ndc_to_pixel(ndc[:, :2], cam.width, cam.height)
    np.testing.assert_allclose(uv, project(cam, pts), atol=1e-6, rtol=0)
    # w_clip is the OpenCV depth, and the clip planes map to NDC z = -1 and +1
    np.testing.assert_allclose(clip[:, 3], world_to_camera(cam, pts)[:, 2], atol=1e-9)
    zs = np.array([[0, 0, -10.0, 1], [0, 0, -5000.0, 1]]) @ P.T
    np.testing.assert_allclose(zs[:, 2] / zs[:, 3], [-1.0, 1.0], atol=1e-12)


def test_pixel_centres_land_on_gl_sample_points() -> None:
    # OpenCV pixel (u, v) must be GL window (u + 0.5, H - v - 0.5): the rasteriser's sample.
    W, H = 8, 6
    uv = ndc_to_pixel(np.array([[-1.0 + 1.0 / W, 1.0 - 1.0 / H], [1.0, -1.0]]), W, H)
    np.testing.assert_allclose(uv, [[0.0, 0.0], [W - 0.5, H - 0.5]], atol=1e-12)


def test_view_matrices() -> None:
    cam = make_camera()
    p = np.array([[10.0, 20.0, 30.0]])
    eye = (view_from_Rt(cam.R, cam.t) @ np.r_[p[0], 1.0])[:3]
    pc = world_to_camera(cam, p)[0]
    np.testing.assert_allclose(eye, [pc[0], -pc[1], -pc[2]], atol=1e-9)
    front = orbit_view((1.0, 2.0, 3.0), 500.0, 0.0, 0.0)
    np.testing.assert_allclose(front @ [1.0, 2.0, 3.0, 1.0], [0, 0, -500.0, 1], atol=1e-9)
    np.testing.assert_allclose(front @ [1.0, 2.0, 503.0, 1.0], [0, 0, 0, 1], atol=1e-9)
    side = orbit_view((0.0, 0.0, 0.0), 400.0, 90.0, 0.0)  # from +x, y stays up
    np.testing.assert_allclose(side @ [400.0, 0, 0, 1], [0, 0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(side @ [0, 1.0, 0, 1], [0, 1.0, -400.0, 1], atol=1e-9)
    P = perspective(60.0, 2.0, 1.0, 100.0)
    top = P @ [0.0, np.tan(np.radians(30.0)), -1.0, 1.0]
    assert top[1] / top[3] == pytest.approx(1.0)


def test_bad_matrix_arguments_raise() -> None:
    with pytest.raises(RenderError, match="near"):
        opengl_projection_from_K(np.eye(3), 10, 10, 0.0, 10.0)
    with pytest.raises(RenderError, match="fov_y"):
        perspective(180.0, 1.0, 1.0, 10.0)


def test_vertex_normals_of_sphere_are_radial() -> None:
    v, f = icosphere(3, 50.0)
    n = vertex_normals(v, f)
    cos = np.sum(n * v / 50.0, axis=1)
    assert cos.min() > 0.999


# --------------------------------------------------------------------------- GL


@pytest.mark.gl
def test_gl_info_names_a_renderer(ctx: moderngl.Context) -> None:
    info = gl_info(ctx)
    assert info["renderer"] and info["version"]
    assert info["version_code"] >= 330


def reference_silhouette(cam: Camera, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Mask from projecting every triangle and filling it with cv2.fillPoly (1/256 px)."""
    uv = np.round(project(cam, v) * 256.0).astype(np.int32)
    mask = np.zeros((cam.height, cam.width), np.uint8)
    for tri in uv[f]:  # one call per triangle: a single fillPoly call XORs overlaps
        cv2.fillPoly(mask, [tri], 1, lineType=cv2.LINE_8, shift=8)
    return mask.astype(bool)


def cube(half: float, center) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]  # fmt: skip
    rot = cv2.Rodrigues(np.array([0.3, 0.5, -0.2]))[0]
    return v @ rot.T + np.asarray(center), np.array(f)


@pytest.mark.gl
@pytest.mark.parametrize("shape", ["sphere", "cube"])
def test_silhouette_matches_projected_triangles(renderer: OffscreenRenderer, shape: str) -> None:
    cam = make_camera(skew=0.8)
    v, f = icosphere(3, 110.0, (10.0, -5.0, 20.0)) if shape == "sphere" else cube(90.0, (0, 0, 0))
    white = np.ones((len(v), 3))
    image = renderer.render_camera(cam, v, f, mode="colors", colors=white)
    rendered = image[..., 0] > 127
    ref = reference_silhouette(cam, v, f)
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(ref.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(ref.astype(np.uint8), kernel).astype(bool)
    # Differences only in the one-pixel band along the reference border.
    assert not np.any(inner & ~rendered)
    assert not np.any(rendered & ~outer)
    iou = (rendered & ref).sum() / (rendered | ref).sum()
    assert iou > 0.98, iou


@pytest.mark.gl
def test_depth_of_a_tilted_plane_is_exact(renderer: OffscreenRenderer) -> None:
    cam = make_camera()
    normal = np.array([0.2, -0.3, 1.0]) / np.linalg.norm([0.2, -0.3, 1.0])
    a = np.cross(normal, [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    corners = np.array([a + b, -a + b, -a - b, a - b]) * 200.0 + [5.0, -3.0, 0.0]
    z = renderer.render_depth(cam, corners, np.array([[0, 1, 2], [0, 2, 3]]))
    # Analytic: the ray through pixel (u, v) hits the plane n·X = n·X0 in world space.
    rng = np.random.default_rng(1)
    uv = np.c_[rng.integers(200, 440, 200), rng.integers(150, 330, 200)].astype(float)
    rays_cam = np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(cam.K).T  # z = 1 in camera space
    rays_world = rays_cam @ cam.R  # Rᵀ d
    c = cam.center
    s = (normal @ corners[0] - normal @ c) / (rays_world @ normal)  # camera z = s
    got = z[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    assert np.all(got > 0)
    np.testing.assert_allclose(got, s, atol=0.01)


@pytest.mark.gl
def test_depth_of_a_sphere_matches_ray_intersection(renderer: OffscreenRenderer) -> None:
    cam = make_camera()
    centre, radius = np.array([10.0, -5.0, 20.0]), 110.0
    v, f = icosphere(4, radius, centre)
    z = renderer.render_depth(cam, v, f)
    vv, uu = np.mgrid[0 : cam.height, 0 : cam.width]
    d = np.c_[uu.ravel(), vv.ravel(), np.ones(uu.size)] @ np.linalg.inv(cam.K).T @ cam.R
    oc = cam.center - centre
    # |c + s d - centre|² = r²  (d has camera z = 1, so s is the camera depth)
    qa, qb, qc = np.sum(d * d, 1), 2 * d @ oc, oc @ oc - radius**2
    s = (-qb - np.sqrt(np.maximum(qb**2 - 4 * qa * qc, 0.0))) / (2 * qa)
    ray_dist = np.sqrt(np.maximum(oc @ oc - (d @ oc) ** 2 / qa, 0.0)).reshape(z.shape)
    # Away from the rim, where the tessellation error is small (sagitta < 0.5 mm).
    inside = ray_dist < 0.95 * radius
    err = np.abs(z - s.reshape(z.shape))[inside]
    assert inside.sum() > 10_000
    assert err.max() < 0.5, err.max()
    assert np.all(z[ray_dist > 1.02 * radius] == 0.0)  # background


@pytest.mark.gl
def test_update_vertices_matches_fresh_upload(ctx: moderngl.Context) -> None:
    cam_small = make_camera(160, 120)
    v, f = icosphere(2, 100.0)
    with OffscreenRenderer(160, 120, ctx=ctx) as a, OffscreenRenderer(160, 120, ctx=ctx) as b:
        a.render_camera(cam_small, v, f)
        moved = v + [30.0, 0.0, 0.0]
        first = a.render_camera(cam_small, moved, f)  # same topology: positions only
        fresh = b.render_camera(cam_small, moved, f)
        np.testing.assert_array_equal(first, fresh)
        assert a.mesh.faces is not None and len(a.mesh.faces) == len(f)


@pytest.mark.gl
def test_modes_and_input_errors(ctx: moderngl.Context) -> None:
    cam, cam_small = make_camera(), make_camera(160, 120)
    v, f = icosphere(2, 100.0)
    with OffscreenRenderer(160, 120, ctx=ctx, samples=4) as r:
        shaded = r.render_camera(cam_small, v, f, background=(0, 0, 0))
        wire = r.render_camera(cam_small, v, f, mode="wireframe", background=(0, 0, 0))
        assert shaded.any() and wire.any()
        assert (wire.any(-1)).sum() < (shaded.any(-1)).sum()
        with pytest.raises(RenderError, match="colors"):
            r.render_camera(cam_small, v, f, mode="colors")
        with pytest.raises(RenderError, match="renderer is 160x120"):
            r.render_camera(cam, v, f)
        with pytest.raises(RenderError, match="face indices"):
            r.render_camera(cam_small, v, f + len(v))
        with pytest.raises(RenderError, match="draw mode"):
            r.render_camera(cam_small, v, f, mode="points")  # type: ignore[arg-type]


@pytest.mark.gl
def test_render_views_shows_the_mesh(ctx: moderngl.Context, tmp_path) -> None:
    v, f = icosphere(3, 90.0, (0.0, 30.0, 10.0))
    v[:, 2] *= 1.2  # a head-like ellipsoid
    image = render_views(v, f, size=128, ctx=ctx)
    assert image.shape == (128, 3 * 128, 3) and image.dtype == np.uint8
    fg = np.any(image != 255, axis=-1)
    for k in range(3):
        assert 0.2 < fg[:, k * 128 : (k + 1) * 128].mean() < 0.8
    assert image[fg].std() > 5  # shaded, not flat
    save_png(tmp_path / "views.png", image)
    assert (tmp_path / "views.png").stat().st_size > 0


@pytest.mark.gl
def test_pixel_grid_is_exact_to_a_tenth_of_a_pixel(ctx: moderngl.Context) -> None:
    # A fronto-parallel rectangle whose edges project 0.05 px inside/outside pixel centres
    # covers exactly the pixels whose centres it contains; a half-pixel (or y-flip) error fails.
    W, H = 64, 48
    K = np.array([[100.0, 0.0, 30.2], [0.0, 110.0, 21.7], [0.0, 0.0, 1.0]])
    cam = Camera("grid", W, H, K, np.zeros(5), np.eye(3), np.zeros(3))
    u0, u1, v0, v1, z = 10.45, 40.55, 5.55, 30.45, 500.0
    uv = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
    xy = (uv - K[:2, 2]) / [K[0, 0], K[1, 1]]
    corners = np.c_[xy * z, np.full(4, z)]
    with OffscreenRenderer(W, H, ctx=ctx) as r:
        image = r.render_camera(
            cam, corners, np.array([[0, 1, 2], [0, 2, 3]]), "colors", np.ones((4, 3))
        )
    expected = np.zeros((H, W), bool)
    expected[6:31, 11:41] = True  # v in 6..30, u in 11..40
    np.testing.assert_array_equal(image[..., 0] > 127, expected)
