"""The losses against the official TEMPEH vectors, trimesh and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from inference import losses as L  # noqa: N812 (short name for the module under test)
from inference.head_data import unique_edges


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


@pytest.fixture(scope="module")
def vec(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    path = request.getfixturevalue("shared_vectors")
    out: dict[str, np.ndarray] = {}
    for name in ("losses.npz", "vertex_normals.npz"):
        with np.load(path / name) as d:
            out.update({k: d[k] for k in d.files})
    return out


def test_closest_face_and_distance(vec: dict[str, np.ndarray]) -> None:
    face, sq = L.closest_faces(
        _t(vec["scan_points"]), _t(vec["template_vertices"])[None], _t(vec["faces"])
    )
    np.testing.assert_array_equal(face[0].numpy(), vec["closest_face"])
    np.testing.assert_allclose(sq[0].numpy(), vec["closest_sq_distance"], rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("sigma", "loss_key", "point_key"),
    [
        (10.0, "p2s_loss", "p2s_robust_distances"),
        (0.0, "p2s_loss_no_robustifier", "p2s_sq_plane_distances"),
    ],
)
def test_point_to_surface_loss(
    vec: dict[str, np.ndarray], sigma: float, loss_key: str, point_key: str
) -> None:
    loss, per_point = L.point_to_surface_loss(
        _t(vec["scan_points"]), _t(vec["template_vertices"])[None], _t(vec["faces"]), sigma
    )
    np.testing.assert_allclose(loss.item(), vec[loss_key], rtol=1e-10)
    np.testing.assert_allclose(per_point.numpy(), vec[point_key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["coarse_pretraining", "eyeballs_only"])
def test_v2v_loss(vec: dict[str, np.ndarray], name: str) -> None:
    w = _t(vec[f"v2v_weights_{name}"])
    loss = L.v2v_loss(_t(vec["predicted_vertices"]), _t(vec["template_vertices"])[None], w)
    np.testing.assert_allclose(loss.item(), vec[f"v2v_loss_{name}"], rtol=1e-10)


@pytest.mark.parametrize("name", ["coarse", "refinement"])
def test_edge_weights_and_loss(vec: dict[str, np.ndarray], name: str) -> None:
    edges = L.official_edges(vec["faces"])
    np.testing.assert_array_equal(edges, vec["edges"])
    np.testing.assert_array_equal(
        np.sort(edges, axis=0), np.sort(unique_edges(vec["faces"]), axis=0)
    )
    ew = L.edge_weights(edges, _t(vec[f"edge_vertex_weights_{name}"]))
    np.testing.assert_allclose(ew.numpy(), vec[f"edge_weights_{name}"], rtol=1e-12)
    loss = L.edge_loss(
        _t(vec["predicted_vertices"]), _t(vec["template_vertices"])[None], _t(edges), ew
    )
    np.testing.assert_allclose(loss.item(), vec[f"edge_loss_{name}"], rtol=1e-10)


def test_default_weight_tables_match_vectors(vec: dict[str, np.ndarray]) -> None:
    import json

    def strip(d: dict, prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in d.items()}

    assert (
        strip(json.loads(str(vec["v2v_mask_weights_coarse_pretraining"])), "w_point_")
        == L.V2V_WEIGHTS_PRETRAINING
    )
    assert (
        strip(json.loads(str(vec["v2v_mask_weights_eyeballs_only"])), "w_point_")
        == L.V2V_WEIGHTS_EYEBALLS_ONLY
    )
    for name, table in (
        ("coarse", L.EDGE_WEIGHTS_COARSE),
        ("refinement", L.EDGE_WEIGHTS_REFINEMENT),
    ):
        got = strip(json.loads(str(vec[f"edge_mask_weights_{name}"])), "w_edge_")
        assert got == {k: w for k, (w, _) in table.items()}


def _strip_mesh(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A 1 × n strip of 2n triangles along x (vertex i at x = i, top row y = 1)."""
    xs = np.arange(n + 1, dtype=float)
    verts = np.concatenate(
        [np.stack([xs, 0 * xs, 0 * xs], 1), np.stack([xs, 1 + 0 * xs, 0 * xs], 1)]
    )
    faces = []
    for i in range(n):
        a, b, c, d = i, i + 1, n + 1 + i, n + 2 + i
        faces += [[a, b, d], [a, d, c]]
    return verts, np.array(faces)


def test_region_vertex_weights_order_and_groups() -> None:
    regions = {
        "face": np.array([0, 1, 2]),
        "left_eyeball": np.array([2, 3]),
        "right_eyeball": np.array([5]),
    }
    w = L.region_vertex_weights(7, regions, {"face": 4.0, "eyeballs": 9.0}, L.V2V_ORDER)
    assert w.tolist() == [4.0, 4.0, 9.0, 9.0, 1.0, 9.0, 1.0]
    w = L.region_vertex_weights(7, regions, L.V2V_WEIGHTS_EYEBALLS_ONLY)
    assert w.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_edge_vertex_weights_rings() -> None:
    _, faces = _strip_mesh(6)  # bottom row 0..6, top row 7..13
    regions = {"face": np.array([0]), "lips": np.array([10])}
    w = L.edge_vertex_weights(
        14, faces, regions, {"face": (2.0, 0), "lips": (8.0, 1)}, L.EDGE_ORDER
    )
    # 1-ring of 10 (top x=3): 9, 11 (top) and 2, 3 (bottom; the diagonals join bottom i, top i+1).
    ring = {2, 3, 9, 11}
    for i in range(14):
        want = 8.0 if i == 10 else 4.0 if i in ring else 2.0 if i == 0 else 1.0
        assert w[i].item() == want, i
    # A later region overwrites the ring of an earlier one; rings never overwrite their own region.
    w = L.edge_vertex_weights(
        14,
        faces,
        {"lips": np.array([10]), "boundary": np.array([9])},
        {"lips": (8.0, 1), "boundary": (10.0, 2)},
    )
    assert w[9].item() == 10.0 and w[10].item() == 5.0 and w[3].item() == 5.0


def test_closest_points_match_trimesh() -> None:
    rng = np.random.default_rng(0)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=50.0)
    verts = mesh.vertices + rng.normal(0, 2.0, mesh.vertices.shape)
    mesh = trimesh.Trimesh(verts, mesh.faces, process=False)
    pts = rng.normal(0, 40.0, (300, 3))
    # trimesh's exact per-triangle closest point on every (point, face) pair (no rtree needed).
    tri = mesh.triangles[None].repeat(len(pts), 0).reshape(-1, 3, 3)
    closest = trimesh.triangles.closest_point(tri, pts.repeat(len(mesh.faces), 0))
    dist = (
        np.linalg.norm(closest - pts.repeat(len(mesh.faces), 0), axis=1)
        .reshape(len(pts), -1)
        .min(1)
    )
    face, sq = L.closest_faces(_t(pts)[None], _t(verts)[None], _t(mesh.faces))
    np.testing.assert_allclose(np.sqrt(sq[0].numpy()), dist, rtol=0, atol=1e-4)
    full = L.point_triangle_distance_sq(_t(pts), _t(mesh.triangles))
    np.testing.assert_array_equal(face[0].numpy(), full.argmin(dim=1).numpy())


def test_point_triangle_regions_exact() -> None:
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=torch.float64)
    pts = torch.tensor(
        [[0.2, 0.2, 3], [-1, -1, 0], [2, -1, 0], [-1, 2, 0], [0.5, -2, 0], [-2, 0.5, 0], [1, 1, 1]],
        dtype=torch.float64,
    )
    want = [9.0, 2.0, 2.0, 2.0, 4.0, 4.0, 0.5 + 1.0]
    np.testing.assert_allclose(
        L.point_triangle_distance_sq(pts, tri)[:, 0].numpy(), want, atol=1e-14
    )


def test_loss_gradients_match_finite_differences() -> None:
    gen = torch.Generator().manual_seed(0)
    verts_np, faces_np = _strip_mesh(3)
    verts = (_t(verts_np) + 0.1 * torch.randn(8, 3, generator=gen, dtype=torch.float64))[None]
    verts[..., 2] += 0.2 * torch.randn(8, generator=gen, dtype=torch.float64)
    faces = _t(faces_np)
    scan = torch.rand(1, 12, 3, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5])
    target = verts + 0.1 * torch.randn(verts.shape, generator=gen, dtype=torch.float64)
    edges = _t(unique_edges(faces_np))
    ew = torch.rand(len(edges), generator=gen, dtype=torch.float64)
    vw = torch.rand(8, generator=gen, dtype=torch.float64)
    v = verts.clone().requires_grad_()
    s = scan.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, s: L.point_to_surface_loss(s, v, faces, 0.3)[0], (v, s)
    )
    assert torch.autograd.gradcheck(lambda v: L.v2v_loss(v, target, vw), (v,))
    assert torch.autograd.gradcheck(lambda v: L.edge_loss(v, target, edges, ew), (v,))


def test_point_to_surface_loss_batches_like_single_samples() -> None:
    from render.primitives import icosphere

    v, f = icosphere(2, 50.0)
    gen = torch.Generator().manual_seed(3)
    base = torch.from_numpy(v)
    meshes = torch.stack(
        [base, base * 1.1 + torch.randn(base.shape, generator=gen, dtype=base.dtype)]
    )
    scan = torch.randn(2, 300, 3, generator=gen, dtype=base.dtype) * 40.0
    loss, per_point = L.point_to_surface_loss(scan, meshes, torch.from_numpy(f))
    singles = [L.point_to_surface_loss(scan[b : b + 1], meshes[b : b + 1], f) for b in range(2)]
    for b, (_, single_points) in enumerate(singles):
        torch.testing.assert_close(per_point[b], single_points[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(
        loss, torch.stack([s[0] for s in singles]).mean(), rtol=1e-12, atol=0
    )
