"""Per-view vertex visibility by a depth test, with a small z-buffer rasterizer in PyTorch.

Reproduces the official ``depth_vertex_visibility`` (``tempeh-reference.md`` §3.1) without
kaolin: the mesh is rendered per view into a ``render_size²`` image of ``1 − depth`` (nearest
surface wins), sampled back at every vertex, and a vertex is visible when its own normalised depth
is at most ``eps`` behind the rendered surface. The rasterizer follows kaolin 0.13's 'cuda'
conventions (pixel centres at ``(2c+1−W)/W``, half-open bounding box, barycentric inside test,
screen-space interpolation, background 0). No gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor

from inference.geometry import OFFICIAL_Z_EPS

BARYCENTRIC_EPS = 1e-8


def _edge(p: Tensor, q: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Edge function of the (E, 2) segments p → q at (E, k, k) pixel centres ``(x, y)``."""
    px, py = p[:, 0, None, None], p[:, 1, None, None]
    return (q[:, 0, None, None] - px) * (y - py) - (q[:, 1, None, None] - py) * (x - px)


def rasterize_depth(
    xy: Tensor,
    feature: Tensor,
    faces: Tensor,
    size: int,
    max_candidates: int = 1 << 24,
    max_pixels: int = 1 << 24,
) -> Tensor:
    """Z-buffer render of a per-vertex feature, the largest value winning.

    Parameters
    ----------
    xy : Tensor
        (M, N, 2) vertex positions in normalised image coordinates; ``x`` along the columns, ``y``
        along the rows (row ``r`` ↔ ``y = (2r+1−S)/S``).
    feature : Tensor
        (M, N) per-vertex value in [0, 1] (``1 − depth``; larger = nearer), interpolated linearly.
    faces : Tensor
        (F, 3) int triangles.
    size : int
        Image side S.
    max_candidates : int
        Memory bound: candidate pixels processed at once.
    max_pixels : int
        Time bound: when the triangles' bounding boxes cover more pixels than this in all (a
        degenerate mesh, such as an untrained network's output, whose triangles span the
        image), the image is rasterized at the size that fits and enlarged (nearest). A head
        mesh covers about 1.5 M pixels at 100² and 16 views, far below the default.

    Returns
    -------
    Tensor
        (M, S, S) rendered values, 0 where no triangle covers the pixel centre.
    """
    M = xy.shape[0]
    faces = faces.long()
    tri = xy[:, faces]  # (M, F, 3, 2)
    val = feature[:, faces]  # (M, F, 3)
    px = (tri * size + (size - 1)) * 0.5  # pixel index units: centre c ↔ px = c
    lo = torch.ceil(px.amin(dim=2)).clamp(0, size)  # half-open [min, max) of the box
    hi = (torch.ceil(px.amax(dim=2)) - 1).clamp(-1, size - 1)
    ext = (hi - lo + 1).clamp(min=0).amax(dim=-1)  # (M, F) side of the candidate square
    covered = float((ext.double() ** 2).sum())
    if covered > max_pixels and size > 8:
        small = max(8, int(size * (max_pixels / covered) ** 0.5))
        image = rasterize_depth(xy, feature, faces, small, max_candidates, max_pixels)
        return F.interpolate(image[:, None], size=(size, size), mode="nearest")[:, 0]
    image = torch.zeros(M * size * size, dtype=xy.dtype, device=xy.device)
    mi, fi = torch.nonzero(ext > 0, as_tuple=True)
    if mi.numel() == 0:
        return image.view(M, size, size)
    k_all = ext[mi, fi].long()
    bucket = torch.ceil(torch.log2(k_all.to(torch.float64))).long()
    for b in bucket.unique().tolist():
        k = 1 << b
        sel = bucket == b
        m_b, f_b = mi[sel], fi[sel]
        step = max(1, max_candidates // (k * k))
        ar = torch.arange(k, device=xy.device)
        for s in range(0, m_b.numel(), step):
            m, f = m_b[s : s + step], f_b[s : s + step]
            t = tri[m, f]  # (E, 3, 2)
            cols = lo[m, f, 0].long()[:, None, None] + ar[None, None, :]
            rows = lo[m, f, 1].long()[:, None, None] + ar[None, :, None]
            valid = (cols <= hi[m, f, 0].long()[:, None, None]) & (
                rows <= hi[m, f, 1].long()[:, None, None]
            )
            x = (2 * cols + 1 - size).to(xy.dtype) / size
            y = (2 * rows + 1 - size).to(xy.dtype) / size
            a, bb, c = t[:, 0], t[:, 1], t[:, 2]
            area = (bb[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (bb[:, 1] - a[:, 1]) * (
                c[:, 0] - a[:, 0]
            )
            safe = torch.where(area == 0, torch.ones_like(area), area)[:, None, None]

            w0 = _edge(bb, c, x, y) / safe
            w1 = _edge(c, a, x, y) / safe
            w2 = _edge(a, bb, x, y) / safe
            ok = valid & (area != 0)[:, None, None]
            ok = ok & (w0 >= -BARYCENTRIC_EPS) & (w1 >= -BARYCENTRIC_EPS) & (w2 >= -BARYCENTRIC_EPS)
            v = val[m, f]
            value = w0 * v[:, 0, None, None] + w1 * v[:, 1, None, None] + w2 * v[:, 2, None, None]
            index = (m[:, None, None] * size + rows) * size + cols
            image.scatter_reduce_(0, index[ok], value[ok], reduce="amax", include_self=True)
    return image.view(M, size, size)


def vertex_visibility(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    Rt: Tensor,
    render_size: int = 200,
    eps: float = 0.003,
    return_render: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Official depth-test visibility of every vertex in every view (§3.1).

    Parameters
    ----------
    vertices : Tensor
        (B, N, 3) mesh vertices, mm.
    faces : Tensor
        (F, 3) int triangles.
    K, Rt : Tensor
        (B, V, 3, 3) intrinsics and (B, V, 3, 4) world → camera extrinsics; no distortion.
    render_size : int
        Side of the square depth render (200 officially).
    eps : float
        Depth tolerance in normalised depth units (0.003 officially).
    return_render : bool
        Also return the (B, V, S, S) ``1 − depth`` renders.

    Returns
    -------
    Tensor
        (B, V, N) float, 1 visible, 0 occluded (and the renders if asked).
    """
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (B, N, 3), got {tuple(vertices.shape)}")
    B, N, _ = vertices.shape
    if K.dim() != 4 or K.shape[0] != B or Rt.shape[:2] != K.shape[:2]:
        raise ValueError(
            f"K, Rt must be (B={B}, V, 3, 3), (B, V, 3, 4), got {tuple(K.shape)}, {tuple(Rt.shape)}"
        )
    V = K.shape[1]
    with torch.no_grad():
        cam = torch.einsum("bvij,bnj->bvni", Rt[..., :3], vertices) + Rt[:, :, None, :, 3]
        z = cam[..., 2]
        zmin = torch.floor(z.amin(dim=-1, keepdim=True))
        zmax = torch.ceil(z.amax(dim=-1, keepdim=True))
        depth = (z - zmin) / (zmax - zmin)
        zs = torch.where(z.abs() < OFFICIAL_Z_EPS, torch.ones_like(z), z)
        xy = cam[..., :2] / zs[..., None]
        k = K[:, :, None]
        uv = torch.stack(
            [
                k[..., 0, 0] * xy[..., 0] + k[..., 0, 1] * xy[..., 1] + k[..., 0, 2],
                k[..., 1, 0] * xy[..., 0] + k[..., 1, 1] * xy[..., 1] + k[..., 1, 2],
            ],
            dim=-1,
        )
        lo = torch.floor(uv.amin(dim=2, keepdim=True))
        hi = torch.ceil(uv.amax(dim=2, keepdim=True))
        centre = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo).amax(dim=-1, keepdim=True)
        grid = (uv - centre) / half  # (B, V, N, 2), longer side spans [−1, 1]
        render = rasterize_depth(
            grid.flatten(0, 1), (1.0 - depth).flatten(0, 1), faces, render_size
        )
        sampled = F.grid_sample(
            render[:, None],
            grid.flatten(0, 1)[:, None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        ).view(B, V, N)
        vis = (depth - eps <= 1.0 - sampled).to(vertices.dtype)
    if return_render:
        return vis, render.view(B, V, render_size, render_size)
    return vis


def compat_weights(vis: Tensor) -> Tensor:
    """The official ``sigmoid(100·vis)``: 1.0 for visible, 0.5 (not 0) for occluded views."""
    return torch.sigmoid(100.0 * vis)


__all__ = ["compat_weights", "rasterize_depth", "vertex_visibility"]
