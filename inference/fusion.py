"""Multi-view feature sampling and fusion (coarse mean/variance, refinement surface-aware).

Pure torch, batched, differentiable with respect to the features and the points. See
``tempeh-reference.md`` §2.2 (coarse ``mean_var``) and §3.3
(``visibility_filtered_normal_weighted_mean_var_v2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor

from inference.geometry import pixels_to_grid, project_points

SOFTPLUS_BETA = 50.0
SOFTPLUS_THRESHOLD = 5.0


def sample_views(
    features: Tensor, points: Tensor, K: Tensor, Rt: Tensor, dist: Tensor, compat: bool = False
) -> tuple[Tensor, Tensor]:
    """Bilinearly sample every view's feature map at the projections of ``points``.

    Parameters
    ----------
    features : Tensor
        (B, V, F, H, W) feature maps, the size of the images the intrinsics refer to.
    points : Tensor
        (B, P, 3) world points, mm.
    K, Rt, dist : Tensor
        (B, V, 3, 3), (B, V, 3, 4), (B, V, 2 or 5) cameras
        (:func:`inference.geometry.project_points`).
    compat : bool
        Use the official pixel normalisation (:func:`inference.geometry.pixels_to_grid`).

    Returns
    -------
    samples : Tensor
        (B, V, F, P); zero padding outside the image (one ``grid_sample`` over B·V maps).
    inside : Tensor
        (B, V, P) bool, True where both normalised coordinates lie in [−1, 1].
    """
    if features.dim() != 5:
        raise ValueError(f"features must have shape (B, V, F, H, W), got {tuple(features.shape)}")
    B, V, C, H, W = features.shape
    if K.shape[:2] != (B, V):
        raise ValueError(f"K must have shape ({B}, {V}, 3, 3), got {tuple(K.shape)}")
    grid = pixels_to_grid(project_points(points, K, Rt, dist), (H, W), compat)  # (B, V, P, 2)
    grid = grid.to(features.dtype)
    out = F.grid_sample(
        features.flatten(0, 1),
        grid.flatten(0, 1).unsqueeze(1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (B·V, F, 1, P)
    inside = (grid.abs() <= 1.0).all(dim=-1)
    return out.view(B, V, C, -1), inside


def fuse_mean_var(samples: Tensor, view_mask: Tensor | None = None) -> Tensor:
    """Mean and unbiased variance over views.

    Parameters
    ----------
    samples : Tensor
        (B, V, F, P) per-view samples.
    view_mask : Tensor or None
        (B, V) bool; False views (missing or dropped cameras) are excluded, not zero-filled.
        None: all views valid, identical to the official ``mean_var``.

    Returns
    -------
    Tensor
        (B, 2F, P): channels ``[0, F)`` the mean, ``[F, 2F)`` the variance with divisor
        ``n − 1`` over the ``n`` valid views (divisor clamped to 1 when a sample has one view).
    """
    if samples.dim() != 4:
        raise ValueError(f"samples must have shape (B, V, F, P), got {tuple(samples.shape)}")
    if view_mask is None:
        var, mean = torch.var_mean(samples, dim=1, correction=1)
        return torch.cat([mean, var], dim=1)
    if view_mask.shape != samples.shape[:2]:
        raise ValueError(
            f"view_mask must have shape {tuple(samples.shape[:2])}, got {tuple(view_mask.shape)}"
        )
    w = view_mask.to(samples.dtype)[:, :, None, None]
    n = w.sum(dim=1)
    mean = (w * samples).sum(dim=1) / n.clamp(min=1.0)
    var = (w * (samples - mean[:, None]) ** 2).sum(dim=1) / (n - 1.0).clamp(min=1.0)
    return torch.cat([mean, var], dim=1)


def surface_aware_fusion(
    samples: Tensor,
    inside: Tensor,
    grid_points: Tensor,
    camera_centers: Tensor,
    normals: Tensor,
    visibility: Tensor,
    view_mask: Tensor | None = None,
) -> Tensor:
    """Visibility- and normal-weighted mean/variance over views (§3.3).

    Official ``visibility_filtered_normal_weighted_mean_var_v2``: per grid point ``q`` of vertex
    ``n`` and view ``v`` the raw weight is ``vis[v, n]·max(0, −cos θ)·inside`` with
    ``cos θ = normalize(q − c_v)·normal_n``, passed through ``softplus(β=50, threshold=5)`` and
    normalised over the views; ``mean = Σ w f``, ``var = Σ w f² − mean²``.

    Parameters
    ----------
    samples : Tensor
        (B, V, F, P) with ``P = N·G`` in the order of
        :func:`inference.geometry.flatten_grid_points`.
    inside : Tensor
        (B, V, P) bool from :func:`sample_views`.
    grid_points : Tensor
        (B, N, 3, *grid) the sampled points, mm, ``G`` of them per vertex: a cube
        ``(d, d, d)`` or a line ``(K,)`` along the normal.
    camera_centers : Tensor
        (B, V, 3) mm.
    normals : Tensor
        (B, N, 3) unit vertex normals.
    visibility : Tensor
        (B, V, N) per-view vertex weights in [0, 1] (compat: ``sigmoid(100·vis)``).
    view_mask : Tensor or None
        (B, V) bool; False views get weight 0 (after the softplus).

    Returns
    -------
    Tensor
        (B, 2F, N, *grid): weighted mean then weighted variance.
    """
    if grid_points.dim() < 4 or grid_points.shape[2] != 3:
        raise ValueError(f"grid_points must be (B, N, 3, *grid), got {tuple(grid_points.shape)}")
    B, N = grid_points.shape[:2]
    grid = grid_points.shape[3:]
    Bs, V, C, P = samples.shape
    if (Bs, P) != (B, N * grid.numel()):
        raise ValueError(
            f"samples must have shape ({B}, V, F, {N * grid.numel()}), got {tuple(samples.shape)}"
        )
    if visibility.shape != (B, V, N):
        raise ValueError(
            f"visibility must have shape ({B}, {V}, {N}), got {tuple(visibility.shape)}"
        )
    q = grid_points.flatten(3)  # (B, N, 3, G)
    c = camera_centers.to(q)  # (B, V, 3)
    n = normals.to(q)
    # cos θ = (q − c)·n / |q − c|, expanded so that only (B, V, N, G) products are formed:
    # (q − c)·n = q·n − c·n and |q − c|² = |q|² − 2 q·c + |c|² (a matmul). A strided norm over
    # a (B, V, N, 3, G) ray tensor was 60 % of the lite refinement's time.
    qn = torch.einsum("bnkg,bnk->bng", q, n)
    cn = torch.einsum("bvk,bnk->bvn", c, n)
    qc = torch.einsum("bvk,bnkg->bvng", c, q)
    sq = (q * q).sum(2)[:, None] - 2.0 * qc + (c * c).sum(-1)[..., None, None]
    cos = (qn[:, None] - cn[..., None]) * sq.clamp(min=1e-24).rsqrt()
    w = visibility.to(q)[..., None] * (-cos).clamp(min=0.0) * inside.reshape(B, V, N, -1).to(q)
    w = F.softplus(w, beta=SOFTPLUS_BETA, threshold=SOFTPLUS_THRESHOLD)
    if view_mask is not None:
        if view_mask.shape != (B, V):
            raise ValueError(f"view_mask must have shape ({B}, {V}), got {tuple(view_mask.shape)}")
        w = w * view_mask.to(w)[:, :, None, None]
    w = (w / w.sum(dim=1, keepdim=True)).reshape(B, V, 1, P).to(samples.dtype)
    weighted = w * samples
    mean = weighted.sum(dim=1)
    var = (weighted * samples).sum(dim=1) - mean * mean
    return torch.cat([mean, var], dim=1).view(B, 2 * C, N, *grid)
