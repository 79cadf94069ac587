"""Camera projection, sampling grids, rotations, soft-argmax and vertex normals (pure torch).

All functions are batched, work in float32 or float64 on any device and are differentiable
unless stated otherwise. Lengths are millimetres in the world frame of the calibration; pixel
coordinates ``(u, v)`` run along the width and the height. Volumes are ``(..., 3, D, D, D)`` with
the volume axes ``i, j, k`` stepping along x, y, z ("ij" indexing), as in the official TEMPEH code
(``tempeh-reference.md`` §1.4, §2.2–2.6, §3.1–3.2).

The feature fusion lives in :mod:`inference.fusion` and the depth-test visibility in
:mod:`inference.visibility`.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor

OFFICIAL_Z_EPS = 1e-7
"""|z| below this is replaced by 1 in the official projection (§1.4)."""
OPENCV_Z_EPS = 1e-12
"""|z| below this is replaced by this value, as in :func:`capture.camera.project`."""


def _check(name: str, t: Tensor, shape: tuple) -> None:
    """Raise ValueError unless ``t`` matches ``shape`` (``None`` = any size)."""
    ok = t.dim() == len(shape) and all(
        s is None or s == g for s, g in zip(shape, t.shape, strict=False)
    )
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def project_points(points: Tensor, K: Tensor, Rt: Tensor, dist: Tensor) -> Tensor:
    """Project world points into every view.

    Parameters
    ----------
    points : Tensor
        (B, P, 3) world points, mm.
    K : Tensor
        (B, V, 3, 3) pixel intrinsics.
    Rt : Tensor
        (B, V, 3, 4) world → camera extrinsics ``[R | t]``, mm.
    dist : Tensor
        (B, V, D) distortion. D = 2: the official radial ``(k1, k2)`` model with the
        ``|z| < 1e-7 → z = 1`` guard (``tempeh-reference.md`` §1.4). D = 5: OpenCV
        ``(k1, k2, p1, p2, k3)``, identical to :func:`capture.camera.project`.

    Returns
    -------
    Tensor
        (B, V, P, 2) pixel coordinates ``(u, v)``. Points behind a camera are not masked.
    """
    _check("points", points, (None, None, 3))
    _check("K", K, (points.shape[0], None, 3, 3))
    B, V = K.shape[:2]
    _check("Rt", Rt, (B, V, 3, 4))
    if dist.dim() != 3 or dist.shape[:2] != (B, V) or dist.shape[2] not in (2, 5):
        raise ValueError(f"dist must have shape ({B}, {V}, 2 or 5), got {tuple(dist.shape)}")
    p = torch.einsum("bvij,bpj->bvpi", Rt[..., :3], points) + Rt[:, :, None, :, 3]
    z = p[..., 2]
    if dist.shape[2] == 2:
        z = torch.where(z.abs() < OFFICIAL_Z_EPS, torch.ones_like(z), z)
    else:
        z = torch.where(z.abs() < OPENCV_Z_EPS, torch.full_like(z, OPENCV_Z_EPS), z)
    x, y = p[..., 0] / z, p[..., 1] / z
    r2 = x * x + y * y
    d = dist[:, :, None, :]
    if dist.shape[2] == 2:
        s = 1.0 + d[..., 0] * r2 + d[..., 1] * r2 * r2
        xd, yd = s * x, s * y
    else:
        k1, k2, p1, p2, k3 = d.unbind(-1)
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    k = K[:, :, None]
    u = k[..., 0, 0] * xd + k[..., 0, 1] * yd + k[..., 0, 2]
    v = k[..., 1, 0] * xd + k[..., 1, 1] * yd + k[..., 1, 2]
    return torch.stack([u, v], dim=-1)


def scale_intrinsics(
    K: Tensor, size: tuple[int, int], new_size: tuple[int, int], pixel_area: bool = True
) -> Tensor:
    """(..., 3, 3) intrinsics of images of ``size`` (H, W) -> those of the images resized to
    ``new_size`` (h, w).

    ``pixel_area`` (ours): a pixel centre ``u`` maps to ``(u + 0.5)·s − 0.5``, the convention of
    antialiased resizing (``F.interpolate``, ``align_corners=False``) and of our datasets
    (:meth:`capture.camera.Camera.resized`). False: ``u·s``, the official code's (compat mode;
    reference §1.3). Going back up with the same convention inverts it exactly.
    """
    sx, sy = new_size[1] / size[1], new_size[0] / size[0]
    out = K * torch.tensor([sx, sy, 1.0], dtype=K.dtype, device=K.device).view(3, 1)
    if pixel_area:
        out[..., 0, 2] += 0.5 * sx - 0.5
        out[..., 1, 2] += 0.5 * sy - 0.5
    return out


def pixels_to_grid(uv: Tensor, hw: tuple[int, int], compat: bool = False) -> Tensor:
    """Normalise pixel coordinates for ``grid_sample(align_corners=False)``.

    Parameters
    ----------
    uv : Tensor
        (..., 2) pixel coordinates ``(u, v)``; integer values are pixel centres.
    hw : tuple of int
        Feature map size ``(H, W)``.
    compat : bool
        True: the official ``2u/(W−1) − 1`` (the align_corners=True convention, §1.4 — off by up
        to half a pixel). False: ``(2u+1)/W − 1``, exact pixel centres.

    Returns
    -------
    Tensor
        (..., 2) normalised coordinates; [−1, 1] covers the image.
    """
    H, W = int(hw[0]), int(hw[1])
    u, v = uv[..., 0], uv[..., 1]
    if compat:
        return torch.stack([2.0 * u / (W - 1) - 1.0, 2.0 * v / (H - 1) - 1.0], dim=-1)
    return torch.stack([(2.0 * u + 1.0) / W - 1.0, (2.0 * v + 1.0) / H - 1.0], dim=-1)


def grid_offsets(
    dim: int,
    inc: float,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    centered: bool = False,
) -> Tensor:
    """The canonical grid offsets per axis: official ``arange(−D/2, D/2)·inc``, or centred.

    Parameters
    ----------
    dim, inc : int, float
        Points per axis and their spacing, mm.
    centered : bool
        ``(i − (D − 1)/2)·inc``: symmetric about the centre. The official grid is asymmetric for
        even D, which costs half a spacing at D = 8 but leaves a D = 2 grid only ``{−inc, 0}``
        (offsets into one octant); official weights expect the official grid.

    Returns
    -------
    Tensor
        (3, D, D, D) offsets, mm; official: ``[:, i, j, k] = inc·(i − D/2, j − D/2, k − D/2)``
        (−400…375 mm for 32 × 25 mm, −8…6 mm for 8 × 2 mm).
    """
    start = -(dim - 1) / 2 if centered else -dim / 2
    a = (torch.arange(dim, dtype=torch.float64, device=device) + start) * inc
    return torch.stack(torch.meshgrid(a, a, a, indexing="ij")).to(dtype)


def rotation_6d_to_matrix(x: Tensor) -> Tensor:
    """6-D rotation (Zhou et al.) to matrices, pytorch3d convention (rows).

    Parameters
    ----------
    x : Tensor
        (..., 6): ``a1 = x[..., :3]``, ``a2 = x[..., 3:]``.

    Returns
    -------
    Tensor
        (..., 3, 3) with rows ``b1 = a1/|a1|``, ``b2 = normalize(a2 − (b1·a2) b1)``, ``b3 = b1×b2``.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"x must have shape (..., 6), got {tuple(x.shape)}")
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` (..., 4) to rotation matrices (..., 3, 3)."""
    if q.shape[-1] != 4:
        raise ValueError(f"q must have shape (..., 4), got {tuple(q.shape)}")
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def random_rotations(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    max_angle_deg: float = 180.0,
) -> Tensor:
    """(n, 3, 3) random rotations.

    With ``max_angle_deg`` >= 180 they are uniform over all rotations (normalised Gaussian
    quaternions, wxyz); below, about a uniformly random axis by an angle uniform in
    ``[0, max_angle_deg]``.
    """
    if max_angle_deg >= 180.0:
        q = torch.randn(n, 4, generator=generator, dtype=dtype, device=device)
        return quaternion_to_matrix(F.normalize(q, dim=-1))
    axis = F.normalize(torch.randn(n, 3, generator=generator, dtype=dtype, device=device), dim=-1)
    half = torch.rand(n, 1, generator=generator, dtype=dtype, device=device)
    half = half * (0.5 * max_angle_deg * torch.pi / 180.0)
    return quaternion_to_matrix(torch.cat([torch.cos(half), axis * torch.sin(half)], dim=-1))


def decode_localizer(raw: Tensor, scale_factor: float = 0.4) -> tuple[Tensor, Tensor, Tensor]:
    """Decode the grid localizer's 12 outputs (§2.4).

    Parameters
    ----------
    raw : Tensor
        (B, 12): scale pre-activations ``[0:3]``, 6-D rotation ``[3:9]``, translation ``[9:12]``.
    scale_factor : float
        Largest scale, 0.4 in TEMPEH.

    Returns
    -------
    scales : Tensor
        (B, 3) ``scale_factor·½(tanh + 1)``.
    A : Tensor
        (B, 3, 3) ``diag(scales)·R``.
    tau : Tensor
        (B, 3) ``tanh(raw[9:12])`` in grid units (multiply by ``½(D−1)·inc`` for mm).
    """
    _check("raw", raw, (None, 12))
    scales = scale_factor * 0.5 * (torch.tanh(raw[:, :3]) + 1.0)
    A = scales[:, :, None] * rotation_6d_to_matrix(raw[:, 3:9])
    return scales, A, torch.tanh(raw[:, 9:12])


def warp_grid(
    offsets: Tensor,
    A: Tensor,
    tau: Tensor,
    R_rand: Tensor | None,
    origin: Tensor,
    translation_scale_mm: float,
) -> Tensor:
    """Warped localizer grid ``R_rand·(A·d + scale·τ) + origin``.

    Parameters
    ----------
    offsets : Tensor
        (3, D, D, D) canonical offsets ``d``, mm (:func:`grid_offsets`).
    A, tau : Tensor
        (B, 3, 3) and (B, 3) from :func:`decode_localizer`.
    R_rand : Tensor or None
        (B, 3, 3) random grid rotation (training), None for the identity.
    origin : Tensor
        (3,) grid origin, or (B, 3) one per batch element, mm.
    translation_scale_mm : float
        ``½(D−1)·inc`` (387.5 mm in TEMPEH).

    Returns
    -------
    Tensor
        (B, 3, D, D, D) grid points, mm.
    """
    _check("offsets", offsets, (3, None, None, None))
    p = (
        torch.einsum("bij,jxyz->bixyz", A, offsets)
        + (translation_scale_mm * tau)[..., None, None, None]
    )
    if R_rand is not None:
        p = torch.einsum("bij,bjxyz->bixyz", R_rand, p)
    return p + origin.to(p).reshape(-1, 3, 1, 1, 1)


def soft_argmax(logits: Tensor, positions: Tensor, per_vertex: bool | None = None) -> Tensor:
    """Softmax over each volume's voxels, then the expected position (as a matrix product).

    Parameters
    ----------
    logits : Tensor
        (B, L, D, D, D) one logit volume per vertex.
    positions : Tensor
        Shared ``(B, 3, D, D, D)`` (the coarse warped grid; never repeated L times) or per-vertex
        ``(L, 3, D, D, D)`` / ``(B, L, 3, D, D, D)`` (refinement offsets).
    per_vertex : bool or None
        Force the interpretation of a 5-D ``positions``; None infers it (6-D → per vertex; 5-D →
        shared if its first size is B, per vertex otherwise).

    Returns
    -------
    Tensor
        (B, L, 3) expected positions in the units of ``positions``.
    """
    if logits.dim() != 5:
        raise ValueError(f"logits must have shape (B, L, D, D, D), got {tuple(logits.shape)}")
    B = logits.shape[0]
    p = torch.softmax(logits.flatten(2), dim=-1)  # (B, L, D³)
    if per_vertex is None:
        per_vertex = positions.dim() == 6 or positions.shape[0] != B
    if positions.dim() == 6:
        return torch.einsum("blk,blck->blc", p, positions.flatten(3))
    if positions.dim() != 5 or positions.shape[1] != 3:
        raise ValueError(
            f"positions must have shape (B, 3, D, D, D), (L, 3, D, D, D) or (B, L, 3, D, D, D), "
            f"got {tuple(positions.shape)}"
        )
    if per_vertex:
        return torch.einsum("blk,lck->blc", p, positions.flatten(2))
    return torch.bmm(p, positions.flatten(2).transpose(1, 2))


SOFT_ARGMAX_CHUNK = 256
"""Heatmaps per chunk in :func:`soft_argmax_linear`: 256 × 16³ logits (4 MB) stay in cache."""


def _chunk_softmax(h: Tensor, w: Tensor, bias: Tensor, start: int, chunk: int) -> Tensor:
    """Softmax over the voxels of heatmaps ``start:start+chunk``: (c, D³) from (C, D³) features."""
    logits = torch.addmm(bias[start : start + chunk, None], w[start : start + chunk], h)
    return torch.softmax(logits, dim=-1)


class _SoftArgmaxLinear(torch.autograd.Function):
    """:func:`soft_argmax_linear` with a backward that recomputes each chunk's softmax instead of
    keeping the (B, L, D³) probabilities: the gradients of the expected positions

    ``y_l = Σ_k p_lk x_k`` with ``p_l = softmax_k(w_l · h_k + b_l)`` are
    ``∂/∂logit_lk = p_lk (g_l · x_k − g_l · y_l)`` and ``∂/∂x_k = Σ_l p_lk g_l``, for an
    upstream gradient ``g_l``; the logits' gradient then flows to ``w``, ``b`` and ``h`` as for
    any linear layer. Products with the 3 coordinates are taken with the voxels as the long
    side ((3, c) @ (c, D³) rather than (D³, c) @ (c, 3): 13x faster on CPU). Computed in float32
    (autocast off inside): a softmax over thousands of voxels needs it.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, h: Tensor, w: Tensor, bias: Tensor, xt: Tensor, chunk: int) -> Tensor:
        # h (B, C, K) features, w (L, C), bias (L,), xt (B, 3, K) positions -> (B, L, 3)
        out = _expected_positions(h, w, bias, xt, chunk)
        ctx.save_for_backward(h, w, bias, xt, out)
        ctx.chunk = chunk
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad: Tensor):
        h, w, bias, xt, out = ctx.saved_tensors
        chunk = ctx.chunk
        grad = grad.to(h.dtype)
        gh, gxt = torch.zeros_like(h), torch.zeros_like(xt)
        gw = torch.zeros_like(w)
        for b in range(h.shape[0]):
            for start in range(0, w.shape[0], chunk):
                rows = slice(start, start + chunk)
                p = _chunk_softmax(h[b], w, bias, start, chunk)  # (c, K)
                g = grad[b, rows]  # (c, 3)
                gxt[b] += g.transpose(0, 1) @ p
                g_y = (g * out[b, rows]).sum(-1, keepdim=True)
                s = torch.addmm(g_y.neg(), g, xt[b]).mul_(p)  # p_lk (g_l·x_k − g_l·y_l)
                gw[rows] += s @ h[b].transpose(0, 1)
                gh[b] += w[rows].transpose(0, 1) @ s
        # a bias shifts its heatmap evenly, which the softmax ignores: ∂/∂b_l = Σ_k ∂/∂logit_lk = 0
        return gh, gw, torch.zeros_like(bias), gxt, None


def _expected_positions(h: Tensor, w: Tensor, bias: Tensor, xt: Tensor, chunk: int) -> Tensor:
    """(B, L, 3) soft-argmax of (B, C, K) features through (L, C) weights over (B, 3, K)
    positions, ``chunk`` heatmaps at a time."""
    out = h.new_empty(h.shape[0], w.shape[0], 3)
    for b in range(h.shape[0]):
        for start in range(0, w.shape[0], chunk):
            p = _chunk_softmax(h[b], w, bias, start, chunk)
            out[b, start : start + chunk] = (xt[b] @ p.transpose(0, 1)).transpose(0, 1)
    return out


def soft_argmax_linear(
    features: Tensor,
    weight: Tensor,
    bias: Tensor,
    positions: Tensor,
    chunk: int = SOFT_ARGMAX_CHUNK,
) -> Tensor:
    """:func:`soft_argmax` of a 1×1×1 convolution's output, computed a chunk of heatmaps at a time.

    Equal to ``soft_argmax(conv3d(features, weight, bias), positions)`` for shared positions,
    but the (B, L, D³) logits (90 MB for the lite coarse stage's 5512 heatmaps over 16³) are
    never held at once: each chunk is made, normalised and reduced while it is in cache, which
    is 2.5x faster on a 2-core CPU at inference. With gradients, the backward pass recomputes
    each chunk (:class:`_SoftArgmaxLinear`) instead of keeping every probability: a lite coarse
    training step's heatmaps take a third of the time of the plain path.

    Parameters
    ----------
    features : Tensor
        (B, C, D, D, D) input of the convolution.
    weight, bias : Tensor
        (L, C, 1, 1, 1) or (L, C) weights and (L,) bias.
    positions : Tensor
        (B, 3, D, D, D) shared positions.
    chunk : int
        Heatmaps per step.

    Returns
    -------
    Tensor
        (B, L, 3) expected positions in the units of ``positions``.
    """
    _check("features", features, (None, None, None, None, None))
    B = features.shape[0]
    _check("positions", positions, (B, 3, None, None, None))
    w = weight.flatten(1)
    h = features.flatten(2)
    xt = positions.flatten(2)  # (B, 3, D³)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (h, w, bias, xt)):
        return _SoftArgmaxLinear.apply(h, w, bias, xt, chunk)
    return _expected_positions(h, w, bias, xt, chunk)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    vertices : Tensor
        (B, N, 3) mm.
    faces : Tensor
        (F, 3) int triangles; their winding sets the normal side.

    Returns
    -------
    Tensor
        (B, N, 3) unit normals: the normalised sum of the incident faces' ``(v1−v0)×(v2−v0)``.
    """
    _check("vertices", vertices, (None, None, 3))
    faces = torch.as_tensor(faces, device=vertices.device).long()
    _check("faces", faces, (None, 3))
    tri = vertices[:, faces]  # (B, F, 3, 3)
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    n = torch.zeros_like(vertices)
    for k in range(3):
        n = n.index_add(1, faces[:, k], fn)
    return F.normalize(n, dim=-1)


def neighbour_mean_operator(
    edges: Tensor,
    num_vertices: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """(N, N) sparse CSR matrix whose product with per-vertex values gives, for every vertex,
    the mean over its mesh neighbours (a row of zeros for a vertex without edges).

    Parameters
    ----------
    edges : Tensor
        (E, 2) int undirected edges, each listed once.
    num_vertices : int
    dtype, device
        Of the matrix.
    """
    _check("edges", edges, (None, 2))
    edges = edges.long().to(device)
    src = torch.cat([edges[:, 0], edges[:, 1]])
    dst = torch.cat([edges[:, 1], edges[:, 0]])
    order = torch.argsort(src * num_vertices + dst)
    src, dst = src[order], dst[order]
    degree = torch.bincount(src, minlength=num_vertices)
    rows = torch.zeros(num_vertices + 1, dtype=torch.long, device=src.device)
    rows[1:] = torch.cumsum(degree, 0)
    values = (1.0 / degree[src].to(torch.float64)).to(dtype)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": used for matmul only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            rows, dst, values, (num_vertices, num_vertices), dtype=dtype, device=src.device
        )


def repeat_neighbour_mean(values: Tensor, neighbour_mean: Tensor, steps: int) -> Tensor:
    """Replace per-vertex values by their neighbours' mean ``steps`` times.

    Parameters
    ----------
    values : Tensor
        (N, ...) one row of values per vertex.
    neighbour_mean : Tensor
        (N, N) sparse operator from :func:`neighbour_mean_operator`, same dtype and device.
    steps : int

    Returns
    -------
    Tensor
        Same shape as ``values`` (one sparse product per step over all trailing values).
    """
    x = values.reshape(values.shape[0], -1)
    for _ in range(steps):
        x = neighbour_mean @ x
    return x.reshape(values.shape)


def taubin_smooth(
    vertices: Tensor,
    neighbour_mean: Tensor,
    iterations: int,
    lam: float = 0.5,
    mu: float = -0.53,
) -> Tensor:
    """Taubin λ|μ smoothing: removes vertex noise without the shrinking of plain Laplacian steps.

    Each iteration moves every vertex ``λ`` of the way to the mean of its neighbours, then
    ``μ`` (< 0: back out); isolated vertices stay put.

    Parameters
    ----------
    vertices : Tensor
        (B, N, 3).
    neighbour_mean : Tensor
        (N, N) sparse operator from :func:`neighbour_mean_operator`, same dtype and device.
    iterations : int
    lam, mu : float
        Step sizes, ``0 < λ < −μ`` (Taubin 1995: 0.5 and −0.53).

    Returns
    -------
    Tensor
        (B, N, 3) smoothed vertices.
    """
    _check("vertices", vertices, (None, None, 3))
    B, N, _ = vertices.shape
    if neighbour_mean.shape != (N, N):
        raise ValueError(f"neighbour_mean must be ({N}, {N}); got {tuple(neighbour_mean.shape)}")
    if iterations <= 0:
        return vertices
    has = (neighbour_mean.crow_indices().diff() > 0).to(vertices.dtype).unsqueeze(-1)
    x = vertices.transpose(0, 1).reshape(N, B * 3)  # one sparse product for the whole batch
    for _ in range(iterations):
        for rate in (lam, mu):
            x = x + rate * (neighbour_mean @ x - x * has)
    return x.reshape(N, B, 3).transpose(0, 1)


def local_grid_points(vertices: Tensor, offsets: Tensor, rotations: Tensor | None = None) -> Tensor:
    """Local grids around vertices, ``vertex + R_n·d``.

    Parameters
    ----------
    vertices : Tensor
        (B, N, 3) grid centres, mm.
    offsets : Tensor
        (3, d, d, d) offsets, mm (:func:`grid_offsets`).
    rotations : Tensor or None
        (N, 3, 3) or (B, N, 3, 3) per-vertex rotations (training), None for axis-aligned grids.

    Returns
    -------
    Tensor
        (B, N, 3, d, d, d) points, mm. :func:`flatten_grid_points` gives the (B, N·d³, 3) order
        that :func:`inference.fusion.surface_aware_fusion` expects its samples in.
    """
    _check("vertices", vertices, (None, None, 3))
    _check("offsets", offsets, (3, None, None, None))
    off = offsets.to(vertices)[None, None]
    if rotations is not None:
        eq = "nij,jxyz->nixyz" if rotations.dim() == 3 else "bnij,jxyz->bnixyz"
        off = torch.einsum(eq, rotations.to(vertices), offsets.to(vertices))
        if rotations.dim() == 3:
            off = off[None]
    return vertices[..., None, None, None] + off


def normal_line_points(vertices: Tensor, normals: Tensor, offsets: Tensor) -> Tensor:
    """Points along each vertex normal, ``vertex + t·normal`` for every ``t`` in ``offsets``.

    Parameters
    ----------
    vertices, normals : Tensor
        (B, N, 3) line centres (mm) and unit directions.
    offsets : Tensor
        (K,) signed distances along the normal, mm.

    Returns
    -------
    Tensor
        (B, N, 3, K) points, mm (the layout :func:`flatten_grid_points` takes).
    """
    _check("vertices", vertices, (None, None, 3))
    _check("normals", normals, tuple(vertices.shape))
    _check("offsets", offsets, (None,))
    return vertices[..., None] + normals[..., None] * offsets.to(vertices)


def line_offsets(count: int, inc: float) -> Tensor:
    """(count,) offsets ``(k − (count − 1)/2)·inc``, mm: symmetric about 0."""
    return (torch.arange(count, dtype=torch.float64) - (count - 1) / 2).mul(inc).float()


def flatten_grid_points(grid_points: Tensor) -> Tensor:
    """(B, N, 3, *grid) points (a cube ``d, d, d`` or a line ``K``) to (B, N·G, 3),
    vertex-major then grid order."""
    if grid_points.dim() < 4 or grid_points.shape[2] != 3:
        raise ValueError(f"grid_points must be (B, N, 3, *grid), got {tuple(grid_points.shape)}")
    return grid_points.flatten(3).transpose(2, 3).flatten(1, 2)


__all__ = [
    "decode_localizer",
    "flatten_grid_points",
    "grid_offsets",
    "line_offsets",
    "local_grid_points",
    "normal_line_points",
    "pixels_to_grid",
    "project_points",
    "quaternion_to_matrix",
    "random_rotations",
    "repeat_neighbour_mean",
    "rotation_6d_to_matrix",
    "scale_intrinsics",
    "soft_argmax",
    "soft_argmax_linear",
    "vertex_normals",
    "warp_grid",
]
