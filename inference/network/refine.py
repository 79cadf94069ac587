"""The refinement ("local") stage: local grids, surface-aware fusion, local V2V (section 3).

Names match the official refinement checkpoint: ``feature_net.model.*`` and
``local_densify_net.local_net.*``.

The math lives in the pure functions of :mod:`inference.geometry`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inference import fusion, geometry, visibility
from inference.head_data import unique_edges
from inference.network.coarse import check_views
from inference.network.config import RefineConfig
from inference.network.feature_net import FeatureNet
from inference.network.v2v import V2VModel

NORMAL_DILATIONS = (1, 2, 4)
"""Dilations of the normal-search convolutions (kernel 3): each score sees ±7 samples."""


class NormalSearchNet(nn.Module):
    """Scores the samples along each vertex normal: 1D convolutions over the line.

    ``layers``: per dilation in :data:`NORMAL_DILATIONS` a Conv1d (kernel 3) + BatchNorm1d +
    ReLU, then a 1×1 Conv1d to one score per sample.
    """

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for d in NORMAL_DILATIONS:
            layers += [
                nn.Conv1d(channels, hidden, 3, padding=d, dilation=d),
                nn.BatchNorm1d(hidden),
                nn.ReLU(inplace=True),
            ]
            channels = hidden
        layers.append(nn.Conv1d(hidden, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(M, C, K) fused samples along M lines -> (M, K) scores."""
        return self.layers(x).squeeze(1)


class LocalDensifyNet(nn.Module):
    """Holds the net that scores the points around each vertex: ``local_net`` (the V2V over
    the local cube, official) or ``normal_net`` (:class:`NormalSearchNet`, ``search="normal"``).
    """

    def __init__(self, config: RefineConfig) -> None:
        super().__init__()
        if config.search == "normal":
            channels = 2 * (config.feature_net.descriptor_dim + 3) + 3
            self.normal_net = NormalSearchNet(channels, config.normal_hidden)
        else:
            channels = 2 * config.feature_net.descriptor_dim + 3
            self.local_net = V2VModel(channels, 1, config.v2v)


class RefineStage(nn.Module):
    """Move each coarse vertex by the expected offset within its local grid.

    Parameters
    ----------
    config : RefineConfig
    template_vertices : Tensor
        (N, 3) canonical template vertices, mm (embedded as ``embedding_scale`` x mm).
    faces : Tensor
        (M, 3) int64 triangle indices of the template.
    compat : bool
        Weight occluded views by ``sigmoid(100 vis)`` (0.5) like the official code, instead of 0.
    """

    def __init__(
        self, config: RefineConfig, template_vertices: Tensor, faces: Tensor, compat: bool = False
    ) -> None:
        super().__init__()
        self.config = config
        self.compat = compat
        self.feature_net = FeatureNet(config.feature_net)
        self.local_densify_net = LocalDensifyNet(config)
        embedding = torch.as_tensor(template_vertices, dtype=torch.float32) * config.embedding_scale
        self.register_buffer("embedding", embedding, persistent=False)
        self.register_buffer("faces", torch.as_tensor(faces, dtype=torch.long), persistent=False)
        edges = torch.as_tensor(unique_edges(self.faces.cpu().numpy()))
        self.register_buffer("edges", edges, persistent=False)

    def forward(
        self,
        images: Tensor,
        K: Tensor,
        Rt: Tensor,
        dist: Tensor,
        camera_centers: Tensor,
        coarse_vertices: Tensor,
        view_mask: Tensor,
        random_rotation: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Refine coarse vertices.

        Parameters
        ----------
        images : Tensor
            (B, V, 3, H, W) ImageNet-normalized images at this stage's resolution.
        K, Rt, dist : Tensor
            (B, V, 3, 3) intrinsics (pixels, these images), (B, V, 3, 4) extrinsics (mm),
            (B, V, k) distortion.
        camera_centers : Tensor
            (B, V, 3) camera centres, mm, rig frame.
        coarse_vertices : Tensor
            (B, N, 3) coarse vertices, mm, rig frame.
        view_mask : Tensor
            (B, V) bool; False views are excluded from fusion.
        random_rotation : bool
            Rotate each vertex's grid randomly (training).
        generator : torch.Generator, optional

        Returns
        -------
        Tensor
            (B, N, 3) refined vertices, mm, rig frame (in eval mode smoothed by
            ``config.output_smoothing`` Taubin iterations).
        """
        check_views(images, K, Rt, view_mask)

        B, V = images.shape[:2]
        N = coarse_vertices.shape[1]
        if coarse_vertices.shape != (B, N, 3) or self.embedding.shape[0] != N:
            raise ValueError(
                f"coarse_vertices must be ({B}, {self.embedding.shape[0]}, 3); "
                f"got {tuple(coarse_vertices.shape)}"
            )
        cfg = self.config
        feats = self.feature_net(images.flatten(0, 1)).unflatten(0, (B, V))
        with torch.no_grad():
            mesh = coarse_vertices.detach()
            normals = geometry.vertex_normals(mesh, self.faces)
            vis = visibility.vertex_visibility(
                mesh, self.faces, K, Rt, cfg.render_size, cfg.visibility_eps
            ).to(images.dtype)
            weights = torch.sigmoid(100.0 * vis) if self.compat else vis
        cameras = (K, Rt, dist, camera_centers)
        if cfg.search == "normal":
            # one operator for the score and the output smoothing
            mean = self._neighbour_mean(coarse_vertices)
            refined = self._normal_search(
                feats, images, cameras, coarse_vertices, normals, weights, view_mask, mean
            )
            return self._smooth_output(refined, mean)
        rotations = None
        if random_rotation:
            rotations = geometry.random_rotations(B * N, generator).to(images).view(B, N, 3, 3)
        d = cfg.voxel_dim
        offsets = geometry.grid_offsets(d, cfg.voxel_inc, centered=cfg.centered_grid).to(images)
        out = []
        for start in range(0, N, cfg.chunk_vertices):
            sl = slice(start, min(start + cfg.chunk_vertices, N))
            n = sl.stop - sl.start
            rot = None if rotations is None else rotations[:, sl]
            # (B, n, 3, d, d, d) grid points around each vertex, mm; sampled vertex-major
            points = geometry.local_grid_points(coarse_vertices[:, sl], offsets, rot)
            fused = self._fuse(feats, points, sl, cameras, normals, weights, view_mask)
            fused = fused.reshape(B, -1, n, d, d, d).transpose(1, 2)
            emb = self.embedding[sl].view(1, n, 3, 1, 1, 1).expand(B, n, 3, d, d, d)
            x = torch.cat([fused, emb.to(fused)], dim=2).flatten(0, 1)
            logits = self.local_densify_net.local_net(x)
            positions = offsets.unsqueeze(0).expand(B * n, 3, d, d, d)
            if rot is not None:
                positions = torch.einsum("kij,kjxyz->kixyz", rot.reshape(-1, 3, 3), positions)
            disp = geometry.soft_argmax(logits, positions).reshape(B, n, 3)
            out.append(coarse_vertices[:, sl] + disp)
        return self._smooth_output(torch.cat(out, dim=1))

    def _fuse(
        self,
        maps: Tensor,
        points: Tensor,
        sl: slice,
        cameras: tuple[Tensor, Tensor, Tensor, Tensor],
        normals: Tensor,
        weights: Tensor,
        view_mask: Tensor,
    ) -> Tensor:
        """Sample every view's ``maps`` at the ``points`` (B, n, 3, *grid) of the vertices
        ``sl`` and fuse them (surface-aware): (B, 2F, n, *grid)."""
        K, Rt, dist, centers = cameras
        flat = geometry.flatten_grid_points(points)
        samples, inside = fusion.sample_views(maps, flat, K, Rt, dist, self.compat)
        return fusion.surface_aware_fusion(
            samples, inside, points, centers, normals[:, sl], weights[:, :, sl], view_mask
        )

    def _neighbour_mean(self, like: Tensor) -> Tensor:
        # built per call (about 1 ms): sparse tensors cannot be deep-copied with the model
        n = self.embedding.shape[0]
        return geometry.neighbour_mean_operator(self.edges, n, like.dtype, like.device)

    def _smooth_output(self, refined: Tensor, mean: Tensor | None = None) -> Tensor:
        """Taubin-smooth the refined mesh in eval mode (``config.output_smoothing``) with the
        neighbour-mean operator ``mean`` (built here if not given)."""
        if self.training or self.config.output_smoothing <= 0:
            return refined
        if mean is None:
            mean = self._neighbour_mean(refined)
        return geometry.taubin_smooth(refined, mean, self.config.output_smoothing)

    def _normal_search(
        self,
        feats: Tensor,
        images: Tensor,
        cameras: tuple[Tensor, Tensor, Tensor, Tensor],
        mesh: Tensor,
        normals: Tensor,
        weights: Tensor,
        view_mask: Tensor,
        mean: Tensor,
    ) -> Tensor:
        """``search="normal"``: score ``normal_samples`` points along every coarse normal from
        the fused features and colours, smooth the scores over the mesh, and move each vertex
        to the soft-argmax offset along its normal."""
        cfg = self.config
        B, N = mesh.shape[:2]
        # the colours beside the learned features: the photo-consistency cue as it is
        maps = torch.cat([feats, images.to(feats)], dim=2)
        offsets = geometry.line_offsets(cfg.normal_samples, cfg.normal_inc).to(feats)
        scores = []
        for start in range(0, N, cfg.chunk_vertices):
            sl = slice(start, min(start + cfg.chunk_vertices, N))
            n = sl.stop - sl.start
            points = geometry.normal_line_points(mesh[:, sl], normals[:, sl], offsets)
            fused = self._fuse(maps, points, sl, cameras, normals, weights, view_mask)
            emb = self.embedding[sl].to(fused).T[None, :, :, None].expand(B, 3, n, offsets.numel())
            x = torch.cat([fused, emb], dim=1).transpose(1, 2).flatten(0, 1)  # (B·n, C, K)
            scores.append(self.local_densify_net.normal_net(x).view(B, n, -1))
        # (N, B, K) in the mesh's dtype, smoothed over the mesh (``mean``: neighbour means)
        logits = torch.cat(scores, dim=1).transpose(0, 1).to(mesh)
        logits = geometry.repeat_neighbour_mean(logits, mean, cfg.logit_smoothing).transpose(0, 1)
        t = (logits.softmax(dim=-1) * offsets.to(mesh)).sum(-1, keepdim=True)
        return mesh + t.to(mesh) * normals.to(mesh)
