"""Multi-view renderer: distorted silhouettes and depth against capture's projection, appearance."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from capture.camera import Camera, Rig, backproject, project
from capture.default_rigs import load_shipped_rig
from capture.errors import RenderError
from render.appearance import Appearance
from render.multiview import MultiViewImages, MultiViewRenderer, blob_mesh
from render.primitives import icosphere
from render.render_thread import RenderThread

pytestmark = pytest.mark.gl

CENTRE, RADIUS = np.array([6.0, -8.0, 12.0]), 90.0


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_shipped_rig("default16")


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    return icosphere(4, RADIUS, CENTRE)


@pytest.fixture(scope="module")
def full_render(ctx, rig, sphere) -> MultiViewImages:
    v, f = sphere
    with MultiViewRenderer(rig, 1, 1, ctx=ctx) as r:
        return r.render(v, f, appearance=Appearance.flat(), depth=True)


@pytest.fixture(scope="module")
def coarse(ctx, rig) -> Iterator[MultiViewRenderer]:
    with MultiViewRenderer(rig, 8, 1, ctx=ctx) as r:
        yield r


def reference_silhouette(
    cam: Camera, v: np.ndarray, f: np.ndarray, supersample: int = 1
) -> np.ndarray:
    """Mask from projecting (with distortion) and filling every triangle (1/256 px).

    cv2.fillPoly also fills pixels the edges only graze (about half a pixel of bias along the
    border); at small sizes ``supersample`` fills a finer grid and keeps pixels more than half
    covered, which brings the bias down to ``0.5 / supersample`` px.
    """
    ss = supersample
    uv = np.round(((project(cam, v) + 0.5) * ss - 0.5) * 256.0).astype(np.int32)
    mask = np.zeros((cam.height * ss, cam.width * ss), np.uint8)
    for tri in uv[f]:  # one call per triangle: a single fillPoly call XORs overlaps
        cv2.fillPoly(mask, [tri], 1, lineType=cv2.LINE_8, shift=8)
    if ss == 1:
        return mask.astype(bool)
    cover = cv2.resize(mask.astype(np.float32), (cam.width, cam.height), cv2.INTER_AREA)
    return cover > 0.5


def check_silhouette(
    rendered: np.ndarray, ref: np.ndarray, name: str, ignore: np.ndarray | None = None
) -> float:
    """Rendered lies between the 1-px erosion and dilation of ``ref`` (outside ``ignore``)."""
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(ref.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(ref.astype(np.uint8), kernel).astype(bool)
    if ignore is not None:
        inner &= ~ignore
        outer |= ignore
    assert not np.any(inner & ~rendered), f"{name}: rendered misses reference interior"
    assert not np.any(rendered & ~outer), f"{name}: rendered spills over the 1-px band"
    iou = (rendered & ref).sum() / (rendered | ref).sum()
    assert iou > 0.97, (name, iou)
    return float(iou)


def test_distortion_is_on_in_the_shipped_rig(rig: Rig) -> None:
    assert all(np.any(c.dist != 0) for c in rig)


def test_silhouettes_match_projection_in_all_16_cameras(full_render, rig, sphere) -> None:
    v, f = sphere
    assert full_render.images.shape == (16, 1200, 1600)
    assert full_render.depth is not None
    for i, cam in enumerate(rig):
        ref = reference_silhouette(cam, v, f)
        check_silhouette(full_render.images[i] > 127, ref, cam.name)
        check_silhouette(full_render.depth[i] > 0, ref, cam.name + " depth")


def test_depth_matches_ray_sphere_intersection(full_render, rig) -> None:
    rng = np.random.default_rng(3)
    assert full_render.depth is not None
    for i, cam in enumerate(rig):
        z = full_render.depth[i]
        vv, uu = np.nonzero(z > 0)
        pick = rng.choice(len(uu), 2000, replace=False)
        uv = np.c_[uu[pick], vv[pick]].astype(np.float64)
        # Rays through the distorted pixels, scaled to camera z = 1 (so s is the depth).
        d = backproject(cam, uv, 1.0) - cam.center
        oc = cam.center - CENTRE
        qa, qb, qc = np.sum(d * d, 1), 2 * d @ oc, oc @ oc - RADIUS**2
        s = (-qb - np.sqrt(np.maximum(qb**2 - 4 * qa * qc, 0.0))) / (2 * qa)
        ray_dist = np.sqrt(np.maximum(oc @ oc - (d @ oc) ** 2 / qa, 0.0))
        inside = ray_dist < 0.85 * RADIUS  # away from the rim, where the slope is steep
        assert inside.sum() > 500
        err = np.abs(z[vv[pick], uu[pick]] - s)[inside]
        assert err.max() < 0.5, (cam.name, err.max())


def test_coarse_silhouettes_match_scaled_cameras(coarse, rig, sphere) -> None:
    v, f = sphere
    out = coarse.render(v, f, appearance=Appearance.flat())
    assert out.images.shape == (16, 150, 200) and out.images.dtype == np.uint8
    for i, cam in enumerate(rig.scaled(8)):
        assert out.cameras[i].equals(cam)
        ref = reference_silhouette(cam, v, f, supersample=8)
        check_silhouette(out.images[i] > 127, ref, cam.name)


def test_images_are_textured_and_where_expected(ctx, rig) -> None:
    v, f = blob_mesh()
    material = np.zeros((len(v), 4), np.float32)
    material[v[:, 1] > 60, 3] = 1.0  # a scalp
    with MultiViewRenderer(rig, 4, 1, ctx=ctx) as r:
        out = r.render(v, f, material=material, appearance=Appearance.random(5), depth=True)
    assert out.depth is not None
    for i, cam in enumerate(out.cameras):
        ref = reference_silhouette(cam, v, f)
        assert 0.05 < ref.mean() < 0.5
        fg = out.depth[i] > 0
        assert (fg & ref).sum() / (fg | ref).sum() > 0.95
        img = out.images[i].astype(np.float64)
        inner = cv2.erode(ref.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert abs(img[inner].mean() - img[~fg].mean()) > 20, cam.name
        assert img[inner].std() > 5, cam.name  # shading and skin texture, not flat


def test_same_seed_same_images_and_different_seed_differs(coarse) -> None:
    v, f = blob_mesh(3)
    a = coarse.render(v, f, appearance=Appearance.random(11, speckle=True), frame=2)
    b = coarse.render(v, f, appearance=Appearance.random(11, speckle=True), frame=2)
    c = coarse.render(v, f, appearance=Appearance.random(12, speckle=True), frame=2)
    d = coarse.render(v, f, appearance=Appearance.random(11, speckle=True), frame=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert np.abs(a.images.astype(int) - c.images).mean() > 1.0
    assert np.any(a.images != d.images)  # fresh sensor noise per frame
    assert Appearance.random(11) == Appearance.random(11)
    no_speckle = coarse.render(v, f, appearance=Appearance.random(11, speckle=False), frame=2)
    assert np.abs(a.images.astype(int) - no_speckle.images).mean() > 1.0


def test_rgb_and_grayscale_shapes(ctx, rig) -> None:
    v, f = blob_mesh(3)
    with MultiViewRenderer(rig, 8, 3, ctx=ctx) as r:
        out = r.render(v, f, appearance=Appearance.random(1), depth=True)
    assert out.images.shape == (16, 150, 200, 3) and out.images.dtype == np.uint8
    assert out.depth is not None and out.depth.shape == (16, 150, 200)
    assert out.depth.dtype == np.float32
    fg = out.depth > 0
    skin = out.images[fg].astype(float).mean(0)
    assert skin[0] > skin[2]  # skin is redder than blue


def test_canonical_texture_sticks_to_the_surface(ctx) -> None:
    # A translated mesh with the same canonical positions shows the same texture, shifted.
    K = np.array([[1600.0, 0, 79.5], [0, 1600.0, 59.5], [0, 0, 1]])
    cam = Camera("c", 160, 120, K, np.zeros(5), np.eye(3), np.array([0.0, 0.0, 1000.0]))
    rig = Rig((cam,), "one")
    quad = np.array([[-50.0, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]])
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    app = Appearance(noise_sigma=0.0, blur_sigma=0.0)
    shift = np.array([2.5, 0.0, 0.0])  # 4 px at 1000 mm and fx = 1600
    with MultiViewRenderer(rig, 1, 1, ctx=ctx) as r:
        a = r.render(quad, faces, quad, appearance=app).images[0].astype(int)
        b = r.render(quad + shift, faces, quad, appearance=app).images[0].astype(int)
        swim = r.render(quad + shift, faces, appearance=app).images[0].astype(int)
    stuck = np.abs(a[20:100, 20:130] - b[20:100, 24:134]).mean()
    moved = np.abs(a[20:100, 20:130] - swim[20:100, 24:134]).mean()
    assert stuck < 1.5 and moved > 3 * stuck + 1, (stuck, moved)


def test_render_thread_matches_direct_render(rig) -> None:
    v, f = blob_mesh(3)
    app = Appearance.random(4)
    try:
        worker = RenderThread(rig, 8, 1)
        cams = worker.cameras
    except RenderError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")
    with worker:
        futures = [worker.submit(v + [k, 0.0, 0.0], f, appearance=app, frame=k) for k in range(3)]
        results = [fut.result(timeout=30) for fut in futures]
        with pytest.raises(RenderError, match="material"):
            worker.render(v, f, material=np.zeros((3, 4)))
    assert len(cams) == 16
    assert all(r.images.shape == (16, 150, 200) for r in results)
    assert not np.array_equal(results[0].images, results[1].images)
    with pytest.raises(RenderError, match="closed"):
        worker.submit(v, f)


def test_bad_arguments_raise(ctx, rig) -> None:
    with pytest.raises(RenderError, match="channels"):
        MultiViewRenderer(rig, 8, 2, ctx=ctx)
    with pytest.raises(RenderError, match="no cameras"):
        MultiViewRenderer(Rig(()), 8, ctx=ctx)


def test_back_faces_drawn_on_request_give_the_same_closed_silhouette(ctx, rig, sphere) -> None:
    v, f = sphere
    with MultiViewRenderer(rig, 8, 1, cull_back_faces=False, ctx=ctx) as r:
        out = r.render(v, f, appearance=Appearance.flat(), depth=True)
    assert out.depth is not None
    for i, cam in enumerate(out.cameras[:4]):
        ref = reference_silhouette(cam, v, f, supersample=8)
        check_silhouette(out.images[i] > 127, ref, cam.name)
    # The nearest surface wins the depth test whether or not back faces are drawn.
    centre_depth = np.linalg.norm(rig[0].center - CENTRE) - RADIUS
    assert abs(out.depth[0][out.depth[0] > 0].min() - centre_depth) < 3.0


def test_procedural_head_silhouettes_match_projection(ctx, rig) -> None:
    procedural_head = pytest.importorskip("inference.procedural_head")
    template = procedural_head.load_procedural_head().template
    v, f = np.asarray(template.vertices, np.float64), np.asarray(template.faces)
    with MultiViewRenderer(rig, 1, 1, ctx=ctx) as r:
        out = r.render(v, f, appearance=Appearance.flat())
    # The neck leaves the image at the bottom. Triangles with a vertex outside the image reach
    # where the distortion polynomial is no model of the lens (it can fold back), so their
    # straight-edged reference is wrong; and fillPoly draws the open neck rim, seen edge-on, as
    # a 1-px line that covers no pixel centre. The pixels those triangles cover are not compared.
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    on_rim = (counts[inverse.ravel()] == 1).reshape(3, -1).any(0)
    for i, cam in enumerate(rig):
        ref = reference_silhouette(cam, v, f)
        assert 0.05 < ref.mean() < 0.6, cam.name  # the head fills the expected region
        uv = project(cam, v)
        out_of_view = (uv < 0).any(1) | (uv[:, 0] > cam.width - 1) | (uv[:, 1] > cam.height - 1)
        crossing = f[out_of_view[f].any(1) | on_rim]
        ignore = reference_silhouette(cam, v, crossing).astype(np.uint8)
        ignore = cv2.dilate(ignore, np.ones((5, 5), np.uint8)).astype(bool)
        assert ignore.mean() < 0.02, cam.name
        check_silhouette(out.images[i] > 127, ref, cam.name, ignore)
