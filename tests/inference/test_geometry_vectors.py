"""The geometry, fusion and visibility functions against the official TEMPEH test vectors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from capture.camera import Camera, project
from inference import fusion, visibility
from inference import geometry as g

log = logging.getLogger(__name__)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def _load(vectors: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(vectors / name) as d:
        return {k: d[k] for k in d.files}


def test_projection_and_grid_uv_compat(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "projection.npz")
    pix = g.project_points(
        _t(d["points"])[None],
        _t(d["K"])[None],
        _t(d["extrinsics"])[None],
        _t(d["distortion"])[None],
    )[0]
    np.testing.assert_allclose(pix.numpy(), d["pixels"], rtol=1e-10, atol=1e-9)
    H, W = d["image_hw"][0]
    uv = g.pixels_to_grid(pix, (H, W), compat=True)
    np.testing.assert_allclose(uv.numpy(), d["grid_uv"], rtol=1e-10, atol=1e-12)


def test_pixels_to_grid_ours_hits_pixel_centres() -> None:
    feat = torch.arange(12.0).view(1, 1, 3, 4)
    uv = torch.tensor([[[[2.0, 1.0], [0.0, 0.0], [3.0, 2.0]]]])
    grid = g.pixels_to_grid(uv, (3, 4), compat=False)
    out = torch.nn.functional.grid_sample(feat, grid, align_corners=False)
    np.testing.assert_allclose(out.flatten().numpy(), [6.0, 0.0, 11.0], atol=1e-5)


def test_coarse_fusion_mean_var(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "coarse_fusion.npz")
    grids = _t(d["grids"])  # (1, G, 3, 6, 6, 6)
    B, G = grids.shape[:2]
    points = grids.permute(0, 1, 3, 4, 5, 2).reshape(B, -1, 3)
    cams = (_t(d["K"])[None], _t(d["extrinsics"])[None], _t(d["distortion"])[None])
    samples, _ = fusion.sample_views(_t(d["feature_maps"]), points, *cams, compat=True)
    fused = fusion.fuse_mean_var(samples).view(B, 16, G, 6, 6, 6).transpose(1, 2)
    np.testing.assert_allclose(fused.numpy(), d["mean_var"], rtol=1e-10, atol=1e-12)


def test_view_mask_excludes_views_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    samples = torch.randn(2, 5, 3, 7, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True, False], [True, True, True, True, True]])
    fused = fusion.fuse_mean_var(samples, mask)
    np.testing.assert_allclose(
        fused[0], fusion.fuse_mean_var(samples[:1, [0, 2, 3]])[0], atol=1e-14
    )
    np.testing.assert_allclose(fused[1], fusion.fuse_mean_var(samples[1:])[0], atol=1e-14)
    # The masked views' values must not matter at all.
    poisoned = samples.clone()
    poisoned[0, 1] = 1e6
    assert torch.equal(fusion.fuse_mean_var(poisoned, mask)[0], fused[0])


def test_projection_opencv_matches_capture_camera() -> None:
    rng = np.random.default_rng(1)
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    K = np.array([[900.0, 0.3, 320.0], [0.0, 910.0, 240.0], [0.0, 0.0, 1.0]])
    cam = Camera(
        "c", 640, 480, K, np.array([-0.2, 0.05, 1e-3, -2e-3, 0.01]), R, rng.normal(size=3) * 10
    )
    cam = Camera(cam.name, 640, 480, K, cam.dist, R, cam.t + R @ np.array([0.0, 0.0, -900.0]))
    pts = rng.normal(size=(50, 3)) * 100
    Rt = np.concatenate([R, cam.t[:, None]], 1)
    ours = g.project_points(
        _t(pts)[None], _t(K)[None, None], _t(Rt)[None, None], _t(cam.dist)[None, None]
    )
    np.testing.assert_allclose(ours[0, 0].numpy(), project(cam, pts), rtol=0, atol=1e-9)


def test_grid_localizer_decode_and_warp(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "grid_localizer.npz")
    raw = _t(d["raw_output"])
    scales, A, tau = g.decode_localizer(raw.double(), float(d["scale_factor"]))
    np.testing.assert_allclose(scales.numpy(), d["scales_f64"], rtol=1e-10, atol=1e-12)
    tr = torch.cat([A, tau[..., None]], -1).numpy()
    np.testing.assert_allclose(tr, d["transformation_f64"], rtol=1e-10, atol=1e-12)
    scales, A, tau = g.decode_localizer(raw, float(d["scale_factor"]))
    tr32 = torch.cat([A, tau[..., None]], -1).numpy()
    np.testing.assert_allclose(tr32, d["transformation"], rtol=1e-5, atol=1e-6)
    offsets = g.grid_offsets(int(d["grid_dim"]), float(d["grid_inc"]))
    warped = g.warp_grid(
        offsets,
        A,
        tau,
        _t(d["grid_rotation"]),
        _t(d["grid_origin"]),
        float(d["translation_scale_mm"]),
    )
    err = np.abs(warped.numpy() - d["warped_grid"]).max()
    log.info("warped grid max error %.3g mm", err)
    assert err <= 1e-4
    np.testing.assert_allclose(
        g.quaternion_to_matrix(_t(d["grid_rotation_quaternion_wxyz"])).numpy(),
        d["grid_rotation"][2],
        atol=1e-6,
    )
    rot = g.random_rotations(1, torch.Generator().manual_seed(int(d["torch_seed"][2])))
    np.testing.assert_allclose(rot[0].numpy(), d["grid_rotation"][2], atol=1e-6)


def test_grid_offsets_are_official() -> None:
    off = g.grid_offsets(8, 2.0, dtype=torch.float64)
    assert off.shape == (3, 8, 8, 8)
    assert off[0, :, 0, 0].tolist() == [-8, -6, -4, -2, 0, 2, 4, 6]
    assert off[1, 0, :, 0].tolist() == off[0, :, 0, 0].tolist()
    assert torch.all(off[0, 3] == -2.0) and torch.all(off[2, :, :, 5] == 2.0)


def test_centered_grid_offsets_reach_both_ways() -> None:
    # a 2³ grid: the official convention would give {-8, 0} (one octant)
    assert g.grid_offsets(2, 8.0)[0, :, 0, 0].tolist() == [-8.0, 0.0]
    two = g.grid_offsets(2, 8.0, centered=True)
    assert two[0, :, 0, 0].tolist() == [-4.0, 4.0]
    for dim in (2, 3, 8):
        off = g.grid_offsets(dim, 2.0, dtype=torch.float64, centered=True)
        assert torch.allclose(off.flatten(1).mean(dim=1), torch.zeros(3, dtype=torch.float64))
        assert off[0, :, 0, 0].tolist() == [2.0 * i - (dim - 1) for i in range(dim)]
    # the normal search's line: centred the same way
    assert g.line_offsets(9, 2.0).tolist() == [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]
    assert g.line_offsets(4, 1.0).tolist() == [-1.5, -0.5, 0.5, 1.5]
    # uniform logits: the expected offset is the grid centre, i.e. the vertex stays put
    logits = torch.zeros(1, 1, 2, 2, 2)
    disp = g.soft_argmax(logits, two.unsqueeze(0).unsqueeze(0))
    assert torch.allclose(disp, torch.zeros(1, 1, 3))


def test_soft_argmax_both_styles(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "soft_argmax.npz")
    logits = _t(d["logits"])
    shared = g.soft_argmax(logits, _t(d["positions_shared"])[:, 0])
    np.testing.assert_allclose(shared.numpy(), d["expectation_shared"], rtol=1e-10, atol=1e-10)
    local = g.soft_argmax(logits, _t(d["offsets_local"]))
    np.testing.assert_allclose(local.numpy(), d["expectation_local"], rtol=1e-10, atol=1e-12)
    local_shared = g.soft_argmax(logits, _t(d["offsets_local"])[0], per_vertex=True)
    np.testing.assert_allclose(local_shared.numpy(), d["expectation_local"], rtol=1e-10, atol=1e-12)
    offsets = g.local_grid_points(
        torch.zeros(1, 10, 3), g.grid_offsets(8, 2.0), _t(d["local_rotations"])
    )
    np.testing.assert_allclose(offsets.numpy(), d["offsets_local"], atol=1e-5)
    rot = g.random_rotations(10, torch.Generator().manual_seed(11))
    np.testing.assert_allclose(rot.numpy(), d["local_rotations"], atol=1e-6)


def test_bounded_random_rotations() -> None:
    """Below 180°, rotations about random axes by at most the bound; at 180°, the uniform
    rotations of the reference (the same draws as before the bound existed)."""
    gen = torch.Generator().manual_seed(3)
    rot = g.random_rotations(2000, gen, dtype=torch.float64, max_angle_deg=45.0)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye.expand_as(rot))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(2000, dtype=torch.float64))
    angle = torch.rad2deg(
        torch.arccos(((rot.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    )
    assert angle.max() <= 45.0 + 1e-6 and angle.max() > 44.0 and 20.0 < angle.mean() < 25.0
    # the official vectors check the default draws (test_soft_argmax_both_styles)
    uniform = g.random_rotations(4, torch.Generator().manual_seed(11))
    at_180 = g.random_rotations(4, torch.Generator().manual_seed(11), max_angle_deg=180.0)
    torch.testing.assert_close(at_180, uniform, rtol=0, atol=0)


def test_vertex_normals(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "vertex_normals.npz")
    verts = torch.stack([_t(d["template_vertices"]).float(), _t(d["perturbed_vertices"])])
    normals = g.vertex_normals(verts, _t(d["faces"]))
    np.testing.assert_allclose(normals.numpy(), d["normals"], atol=1e-5)


def test_visibility_and_render(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "visibility.npz")
    faces = _t(_load(shared_vectors, "vertex_normals.npz")["faces"])
    vis, render = visibility.vertex_visibility(
        _t(d["vertices"])[None],
        faces,
        _t(d["K"])[None],
        _t(d["extrinsics"])[None],
        return_render=True,
    )
    agree = float((vis.numpy() == d["visibility"]).mean())
    pixels = float((np.abs(render[0].numpy() - d["depth_render"]) <= 1e-4).mean())
    log.info("visibility agreement %.5f, render pixels equal %.5f", agree, pixels)
    assert agree >= 0.995
    assert pixels >= 0.99
    np.testing.assert_allclose(
        visibility.compat_weights(vis).numpy(), d["visibility_sigmoid"], atol=1e-6
    )


def test_refine_fusion(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "refine_fusion.npz")
    grids = g.local_grid_points(_t(d["vertices"]), _t(d["local_offsets"]).double())
    np.testing.assert_allclose(grids.numpy(), d["grids"], atol=1e-12)
    cams = (_t(d["K"])[None], _t(d["extrinsics"])[None], _t(d["distortion"])[None])
    samples, inside = fusion.sample_views(
        _t(d["feature_maps"]), g.flatten_grid_points(grids), *cams, compat=True
    )
    fused = fusion.surface_aware_fusion(
        samples, inside, grids, _t(d["camera_centers"]), _t(d["normals"]), _t(d["visibilities"])
    )
    np.testing.assert_allclose(fused.transpose(1, 2).numpy(), d["fused"], rtol=1e-10, atol=1e-12)


def test_surface_aware_fusion_view_mask_zero_weight() -> None:
    gen = torch.Generator().manual_seed(3)
    B, V, N, d = 1, 3, 2, 2
    grids = g.local_grid_points(
        torch.randn(B, N, 3, generator=gen, dtype=torch.float64),
        g.grid_offsets(d, 1.0, torch.float64),
    )
    samples = torch.randn(B, V, 4, N * d**3, generator=gen, dtype=torch.float64)
    inside = torch.ones(B, V, N * d**3, dtype=torch.bool)
    centers = torch.randn(B, V, 3, generator=gen, dtype=torch.float64) * 100
    normals = torch.nn.functional.normalize(
        torch.randn(B, N, 3, generator=gen, dtype=torch.float64), dim=-1
    )
    vis = torch.rand(B, V, N, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[True, False, True]])
    full = fusion.surface_aware_fusion(samples, inside, grids, centers, normals, vis, mask)
    keep = [0, 2]
    sub = fusion.surface_aware_fusion(
        samples[:, keep], inside[:, keep], grids, centers[:, keep], normals, vis[:, keep]
    )
    np.testing.assert_allclose(full.numpy(), sub.numpy(), atol=1e-12)


def test_sampling_is_differentiable() -> None:
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(1, 2, 2, 6, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    pts = (torch.randn(1, 5, 3, generator=gen, dtype=torch.float64) * 5).requires_grad_()
    K = torch.tensor([[40.0, 0, 4], [0, 40.0, 3], [0, 0, 1]], dtype=torch.float64).expand(
        1, 2, 3, 3
    )
    Rt = torch.cat(
        [
            torch.eye(3, dtype=torch.float64),
            torch.tensor([[0.0], [0.0], [100.0]], dtype=torch.float64),
        ],
        1,
    )
    Rt = Rt.expand(1, 2, 3, 4)
    dist = torch.zeros(1, 2, 2, dtype=torch.float64)

    def f(feats: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        return fusion.fuse_mean_var(fusion.sample_views(feats, pts, K, Rt, dist)[0])

    assert torch.autograd.gradcheck(f, (feats, pts))


@pytest.mark.parametrize("bad", [torch.zeros(1, 4, 2), torch.zeros(1, 4)])
def test_project_points_rejects_bad_shapes(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="points"):
        g.project_points(
            bad, torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 2)
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_visibility_and_fusion_on_cuda_match_cpu(shared_vectors: Path) -> None:
    d = _load(shared_vectors, "visibility.npz")
    faces = _t(_load(shared_vectors, "vertex_normals.npz")["faces"])
    args = (_t(d["vertices"])[None], faces, _t(d["K"])[None], _t(d["extrinsics"])[None])
    cpu = visibility.vertex_visibility(*args)
    gpu = visibility.vertex_visibility(*(a.cuda() for a in args))
    assert float((gpu.cpu() == cpu).float().mean()) >= 0.999
    r = _load(shared_vectors, "refine_fusion.npz")
    grids = g.local_grid_points(_t(r["vertices"]), _t(r["local_offsets"]).double())
    cams = [_t(r["K"])[None], _t(r["extrinsics"])[None], _t(r["distortion"])[None]]
    rest = [_t(r["camera_centers"]), _t(r["normals"]), _t(r["visibilities"])]
    feats = _t(r["feature_maps"])

    def run(dev: str) -> torch.Tensor:
        gr = grids.to(dev)
        s, i = fusion.sample_views(
            feats.to(dev), g.flatten_grid_points(gr), *(c.to(dev) for c in cams), compat=True
        )
        return fusion.surface_aware_fusion(s, i, gr, *(x.to(dev) for x in rest)).cpu()

    np.testing.assert_allclose(run("cuda").numpy(), run("cpu").numpy(), atol=1e-9)
