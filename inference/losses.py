"""Training losses: point-to-surface (GMO-robust), vertex-to-vertex and edge, with region weights.

Pure torch, batched, in mm (``tempeh-reference.md`` §4.1). The closest triangle of each scan point
is found by an exact chunked search under ``no_grad`` (no kaolin); the loss itself is the
differentiable distance to that triangle's plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from inference.head_data import unique_edges

__all__ = [
    "EDGE_ORDER",
    "EDGE_WEIGHTS_COARSE",
    "EDGE_WEIGHTS_REFINEMENT",
    "REGION_GROUPS",
    "V2V_ORDER",
    "V2V_WEIGHTS_EYEBALLS_ONLY",
    "V2V_WEIGHTS_PRETRAINING",
    "closest_faces",
    "edge_loss",
    "edge_vertex_weights",
    "edge_weights",
    "official_edges",
    "point_to_surface_loss",
    "point_triangle_distance_sq",
    "region_vertex_weights",
    "unique_edges",
    "v2v_loss",
]

REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "face": ("face",),
    "ears": ("left_ear", "right_ear"),
    "eyeballs": ("left_eyeball", "right_eyeball"),
    "eye_region": ("left_eye_region", "right_eye_region"),
    "lips": ("lips",),
    "neck": ("neck",),
    "nostrils": ("nostrils",),
    "scalp": ("scalp",),
    "boundary": ("boundary",),
}
"""Weight groups of the official losses → the template's region masks they cover."""

V2V_ORDER = (
    "face",
    "ears",
    "eyeballs",
    "eye_region",
    "lips",
    "neck",
    "nostrils",
    "scalp",
    "boundary",
)
"""Assignment order of the vertex-to-vertex weights (later groups overwrite earlier ones)."""
EDGE_ORDER = (
    "face",
    "eyeballs",
    "ears",
    "eye_region",
    "lips",
    "neck",
    "nostrils",
    "scalp",
    "boundary",
)
"""Assignment order of the edge-loss vertex weights."""

V2V_WEIGHTS_PRETRAINING = dict.fromkeys(V2V_ORDER, 1.0)
"""Coarse pre-training: every region 1."""
V2V_WEIGHTS_EYEBALLS_ONLY = {**dict.fromkeys(V2V_ORDER, 0.0), "eyeballs": 1.0}
"""Coarse main phase and refinement: eyeballs 1, other regions 0 (unmasked vertices keep 1)."""
EDGE_WEIGHTS_COARSE: dict[str, tuple[float, int]] = {
    "face": (2.0, 0),
    "eyeballs": (50.0, 0),
    "ears": (3.0, 1),
    "eye_region": (10.0, 3),
    "lips": (3.0, 3),
    "neck": (1.0, 0),
    "nostrils": (10.0, 0),
    "scalp": (1.0, 0),
    "boundary": (10.0, 1),
}
"""Edge-loss ``(weight, rings)`` per group, coarse defaults."""
EDGE_WEIGHTS_REFINEMENT = {**EDGE_WEIGHTS_COARSE, "lips": (10.0, 3)}
"""Edge-loss ``(weight, rings)`` per group, refinement defaults (lips 10)."""

GMO_EPS = 1e-16
DEGENERATE_NORMAL_SQ = 1e-16


def point_triangle_distance_sq(points: Tensor, tri: Tensor) -> Tensor:
    """Exact squared distance of every point to every triangle (Ericson's Voronoi regions).

    Parameters
    ----------
    points : Tensor
        (P, 3).
    tri : Tensor
        (T, 3, 3) triangle corners.

    Returns
    -------
    Tensor
        (P, T) squared distances (units²).
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (P, 3), got {tuple(points.shape)}")
    if tri.dim() != 3 or tri.shape[1:] != (3, 3):
        raise ValueError(f"tri must have shape (T, 3, 3), got {tuple(tri.shape)}")
    return _closest_sq(points[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])


def _closest_sq(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Squared distance of ``p`` to triangles ``(a, b, c)``, all (..., 3) and broadcastable."""
    ab, ac = b - a, c - a

    def dot(x: Tensor, y: Tensor) -> Tensor:
        return (x * y).sum(-1)

    def div(n: Tensor, d: Tensor) -> Tensor:
        return n / torch.where(d == 0, torch.ones_like(d), d)

    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    # Inside the face first, then override region by region in reverse priority.
    q = a + ab * div(vb, denom)[..., None] + ac * div(vc, denom)[..., None]
    wbc = div(d4 - d3, (d4 - d3) + (d5 - d6))[..., None]
    q = torch.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None], b + (c - b) * wbc, q)
    wac = div(d2, d2 - d6)[..., None]
    q = torch.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], a + ac * wac, q)
    q = torch.where(((d6 >= 0) & (d5 <= d6))[..., None], c, q)
    wab = div(d1, d1 - d3)[..., None]
    q = torch.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], a + ab * wab, q)
    q = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], b, q)
    q = torch.where(((d1 <= 0) & (d2 <= 0))[..., None], a, q)
    return ((p - q) ** 2).sum(-1)


def closest_faces(
    points: Tensor, vertices: Tensor, faces: Tensor, chunk: int = 1 << 22
) -> tuple[Tensor, Tensor]:
    """Closest triangle of every point, exact, chunked (no gradient).

    Every point is tested exactly against the triangles whose bounding sphere could hold the
    closest one (a pruned brute force; the result equals the full search).

    Parameters
    ----------
    points : Tensor
        (B, M, 3) query points, mm.
    vertices : Tensor
        (B, N, 3) mesh vertices, mm.
    faces : Tensor
        (F, 3) int triangles.
    chunk : int
        Point-triangle pairs evaluated at once (memory bound).

    Returns
    -------
    face_idx : Tensor
        (B, M) int64 index of the closest face (lowest index on ties).
    sq_dist : Tensor
        (B, M) squared distance to it, mm².
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, M, 3), got {tuple(points.shape)}")
    if vertices.dim() != 3 or vertices.shape[0] != points.shape[0]:
        raise ValueError(
            f"vertices must have shape ({points.shape[0]}, N, 3), got {tuple(vertices.shape)}"
        )
    faces = torch.as_tensor(faces, device=vertices.device).long()
    B, M, _ = points.shape
    T = faces.shape[0]
    step = max(1, chunk // max(1, T))
    idx = torch.empty(B, M, dtype=torch.long, device=points.device)
    dist = torch.empty(B, M, dtype=points.dtype, device=points.device)
    with torch.no_grad():
        for b in range(B):
            tri = vertices[b].detach()[faces]  # (T, 3, 3)
            centre = tri.mean(dim=1)
            radius = (tri - centre[:, None]).norm(dim=-1).amax(dim=1)
            if not points.is_cuda and chunk < M * T:
                found = _closest_by_tree(points[b].detach(), tri, centre, radius, chunk)
                if found is not None:
                    idx[b], dist[b] = found
                    continue
            for s in range(0, M, step):
                p = points[b, s : s + step].detach()
                # Bounding spheres prune the exact test: |p − centre| ± radius bracket the distance.
                dc = torch.cdist(p, centre, compute_mode="donot_use_mm_for_euclid_dist")
                upper = (dc + radius).amin(dim=1, keepdim=True)
                pi, ti = torch.nonzero(dc - radius <= upper * (1 + 1e-6) + 1e-9, as_tuple=True)
                found = _nearest_candidates(p, tri, pi, ti)
                idx[b, s : s + step], dist[b, s : s + step] = found
    return idx, dist


def _nearest_candidates(p: Tensor, tri: Tensor, pi: Tensor, ti: Tensor) -> tuple[Tensor, Tensor]:
    """Exact test of the candidate pairs (point ``pi``, triangle ``ti``).

    Returns the (n,) closest triangle of every point (lowest index on ties) and its squared
    distance; the candidates must include every point's closest triangle.
    """
    d2 = _closest_sq(p[pi], tri[ti, 0], tri[ti, 1], tri[ti, 2])
    n = p.shape[0]
    best = torch.full((n,), torch.inf, dtype=d2.dtype, device=d2.device)
    best = best.scatter_reduce(0, pi, d2, reduce="amin")
    win = d2 == best[pi]
    first = torch.full((n,), tri.shape[0], dtype=torch.long, device=d2.device)
    first = first.scatter_reduce(0, pi[win], ti[win], reduce="amin")
    return first, best.to(p.dtype)


def _closest_by_tree(
    p: Tensor, tri: Tensor, centre: Tensor, radius: Tensor, limit: int, k: int = 8
) -> tuple[Tensor, Tensor] | None:
    """The exact search of :func:`closest_faces` with candidates from a k-d tree (CPU).

    The closest face of a point lies within ``upper + max(radius)`` of it (centre distance),
    where ``upper`` bounds its distance from the ``k`` nearest centres; only faces in that
    ball are tested exactly, so the result equals the full search. ``None`` when the balls
    would hold more than ``limit`` pairs (a mesh of huge triangles): the caller falls back.
    """
    from scipy.spatial import cKDTree

    pts = p.double().numpy()
    tree = cKDTree(centre.double().numpy())
    rad = radius.double().numpy()
    dk, ik = tree.query(pts, k=min(k, len(rad)))
    dk, ik = np.atleast_2d(dk.T).T, np.atleast_2d(ik.T).T
    upper = (dk + rad[ik]).min(axis=1)
    reach = upper * (1 + 1e-6) + 1e-9 + rad.max()
    if int(tree.query_ball_point(pts, reach, return_length=True).sum()) > limit:
        return None
    lists = tree.query_ball_point(pts, reach)
    counts = np.fromiter((len(c) for c in lists), dtype=np.int64, count=len(lists))
    pi = torch.from_numpy(np.repeat(np.arange(len(lists)), counts))
    ti = torch.from_numpy(np.concatenate(lists).astype(np.int64) if counts.sum() else counts)
    return _nearest_candidates(p, tri, pi, ti)


def point_to_surface_loss(
    scan: Tensor, vertices: Tensor, faces: Tensor, sigma: float = 10.0
) -> tuple[Tensor, Tensor]:
    """Official scan → mesh point-to-surface loss with the square-rooted Geman–McClure robustifier.

    For each scan point, the closest face (exact search, no gradient) gives a plane; the point
    is projected on it with unclamped barycentric coordinates, ``d²`` is the squared distance to
    the projection (differentiable in the vertices and the points) and the point contributes
    ``sqrt(σ²d²/(σ²+d²) + 1e-16)`` (≈ d for small d, saturating at σ).

    Parameters
    ----------
    scan : Tensor
        (B, M, 3) scan points, mm.
    vertices : Tensor
        (B, N, 3) predicted mesh, mm.
    faces : Tensor
        (F, 3) int triangles.
    sigma : float
        Robustifier scale, mm; 0 disables it (each point contributes plain ``d²``, mm²).

    Returns
    -------
    loss : Tensor
        () mean over points and batch.
    per_point : Tensor
        (B, M) per-point values.
    """
    faces = torch.as_tensor(faces, device=vertices.device).long()
    face_idx, _ = closest_faces(scan, vertices, faces)
    batch = torch.arange(vertices.shape[0], device=vertices.device)[:, None, None]
    tri = vertices[batch, faces[face_idx]]  # (B, M, 3 corners, 3)
    v0, v1, v2 = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    e1, e2, w = v1 - v0, v2 - v0, scan - v0
    n = torch.cross(e1, e2, dim=-1)
    nn = (n * n).sum(-1)
    nn = torch.where(nn < DEGENERATE_NORMAL_SQ, torch.ones_like(nn), nn)
    gamma = (torch.cross(e1, w, dim=-1) * n).sum(-1) / nn
    beta = (torch.cross(w, e2, dim=-1) * n).sum(-1) / nn
    alpha = 1.0 - beta - gamma
    proj = alpha[..., None] * v0 + beta[..., None] * v1 + gamma[..., None] * v2
    d2 = ((scan - proj) ** 2).sum(-1)
    if sigma == 0:
        per_point = d2
    else:
        s2 = sigma * sigma
        per_point = torch.sqrt(s2 * d2 / (s2 + d2) + GMO_EPS)
    return per_point.mean(), per_point


def v2v_loss(pred: Tensor, target: Tensor, vertex_weights: Tensor) -> Tensor:
    """Weighted vertex-to-vertex loss ``mean over B×N×3 of (w·(pred − target))²``.

    Parameters
    ----------
    pred, target : Tensor
        (B, N, 3) mm.
    vertex_weights : Tensor
        (N,) or (B, N) per-vertex weights.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    w = vertex_weights.to(pred)[..., None]
    return ((w * pred - w * target) ** 2).mean()


def edge_loss(pred: Tensor, target: Tensor, edges: Tensor, edge_weights: Tensor) -> Tensor:
    """Weighted edge-vector loss ``mean over B×E×3 of (w_e·(e_pred − e_target))²``.

    Parameters
    ----------
    pred, target : Tensor
        (B, N, 3) mm.
    edges : Tensor
        (E, 2) int vertex pairs ``(a, b)``; the edge vector is ``v[a] − v[b]``.
    edge_weights : Tensor
        (E,) weights (:func:`edge_weights`).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    edges = torch.as_tensor(edges, device=pred.device).long()
    w = edge_weights.to(pred)[:, None]
    ep = pred[:, edges[:, 0]] - pred[:, edges[:, 1]]
    et = target[:, edges[:, 0]] - target[:, edges[:, 1]]
    return ((w * ep - w * et) ** 2).mean()


def _group_indices(regions: Mapping[str, np.ndarray], group: str) -> np.ndarray | None:
    """Vertex indices of a weight group: ``regions[group]`` or the union of its member masks."""
    if group in regions:
        return np.asarray(regions[group], dtype=np.int64)
    parts = [
        np.asarray(regions[m], dtype=np.int64) for m in REGION_GROUPS.get(group, ()) if m in regions
    ]
    return np.unique(np.concatenate(parts)) if parts else None


def region_vertex_weights(
    num_vertices: int,
    regions: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    order: Sequence[str] = V2V_ORDER,
) -> Tensor:
    """Per-vertex weights from region masks (official vertex-to-vertex construction).

    Parameters
    ----------
    num_vertices : int
        N.
    regions : mapping
        Region name → int vertex indices; a weight group (``"ears"``) is either a key itself or
        the union of its masks in :data:`REGION_GROUPS` (``left_ear``, ``right_ear``).
    weights : mapping
        Group name → weight; groups absent from ``weights`` or ``regions`` are skipped.
    order : sequence of str
        Assignment order; later groups overwrite earlier ones. Unmasked vertices keep 1.

    Returns
    -------
    Tensor
        (N,) float64 weights.
    """
    w = np.ones(num_vertices)
    for group in order:
        idx = _group_indices(regions, group)
        if group in weights and idx is not None:
            w[idx] = weights[group]
    return torch.from_numpy(w)


def edge_vertex_weights(
    num_vertices: int,
    faces: np.ndarray,
    regions: Mapping[str, np.ndarray],
    weights: Mapping[str, tuple[float, int]],
    order: Sequence[str] = EDGE_ORDER,
) -> Tensor:
    """Per-vertex edge-loss weights with k-ring extensions (official construction).

    For each group in ``order`` with weight ``(w, k)``: the ``k``-ring neighbourhood of the
    region, excluding the region itself, is set to ``w/2``, then the region to ``w``. Later groups
    overwrite earlier ones; vertices outside every region keep 1.

    Parameters
    ----------
    num_vertices : int
        N.
    faces : np.ndarray
        (F, 3) int triangles (the ring adjacency).
    regions : mapping
        As in :func:`region_vertex_weights`.
    weights : mapping
        Group name → ``(weight, rings)`` (:data:`EDGE_WEIGHTS_COARSE`,
        :data:`EDGE_WEIGHTS_REFINEMENT`).
    order : sequence of str
        Assignment order.

    Returns
    -------
    Tensor
        (N,) float64 vertex weights; :func:`edge_weights` turns them into edge weights.
    """
    edges = unique_edges(faces)
    w = np.ones(num_vertices)
    for group in order:
        idx = _group_indices(regions, group)
        if group not in weights or idx is None:
            continue
        value, rings = weights[group]
        mask = np.zeros(num_vertices, dtype=bool)
        mask[idx] = True
        grown = mask.copy()
        for _ in range(int(rings)):
            nxt = grown.copy()
            nxt[edges[grown[edges[:, 1]], 0]] = True
            nxt[edges[grown[edges[:, 0]], 1]] = True
            grown = nxt
        w[grown & ~mask] = 0.5 * value
        w[mask] = value
    return torch.from_numpy(w)


def edge_weights(edges: Tensor | np.ndarray, vertex_weights: Tensor) -> Tensor:
    """(E,) edge weights: the mean of the two endpoint weights of (E, 2) ``edges``."""
    e = torch.as_tensor(np.asarray(edges), device=vertex_weights.device).long()
    return 0.5 * (vertex_weights[e[:, 0]] + vertex_weights[e[:, 1]])


def official_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique edges ``(a, b)``, ``a < b``, in the official edge-loss order (by b, then a)."""
    e = unique_edges(faces)
    return e[np.lexsort((e[:, 0], e[:, 1]))]
