"""The coarse ("global") stage: feature net, grid localizer, V2V and soft-argmax (section 2).

Names match the official coarse checkpoint: ``feature_net.model.*``,
``sparse_point_net.global_net.*`` and ``sparse_point_net.grid_refiner.*``.

The math lives in the pure functions of :mod:`inference.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inference import fusion, geometry
from inference.network.config import CoarseConfig
from inference.network.feature_net import FeatureNet
from inference.network.localizer import IDENTITY_BIAS, RigidGridLocalizer
from inference.network.v2v import V2VModel


@dataclass(frozen=True)
class CoarseOutput:
    """Result of the coarse stage.

    Attributes
    ----------
    vertices : Tensor
        (B, N, 3) vertices, mm, rig frame.
    warped_grid : Tensor
        (B, 3, D, D, D) positions of the localized grid points, mm, rig frame.
    grid_center : Tensor
        (B, 3) centre of the localized grid (``R_rand tau_mm + origin``), mm, rig frame.
    scales : Tensor
        (B, 3) predicted grid scales relative to the search grid, unitless.
    """

    vertices: Tensor
    warped_grid: Tensor
    grid_center: Tensor
    scales: Tensor


POSITION_CHANNELS = 4
"""Grid-position inputs of the heatmap layer with a prior: ``o_x, o_y, o_z, |o|²``."""


class SparsePointNet(nn.Module):
    """Holds ``global_net`` (V2V, one heatmap per vertex) and ``grid_refiner`` (localizer)."""

    def __init__(self, config: CoarseConfig, num_vertices: int) -> None:
        super().__init__()
        fused = 2 * config.feature_net.descriptor_dim
        extra = POSITION_CHANNELS if config.heatmap_prior_sigma > 0 else 0
        self.global_net = V2VModel(fused, num_vertices, config.v2v, extra)
        self.grid_refiner = RigidGridLocalizer(fused, config.voxel_dim, config.localizer)


def grid_half_width_mm(config: CoarseConfig) -> float:
    """Half the unscaled search grid's width, ``½(D−1)·inc`` mm: the localizer's translation
    unit and the unit of the heatmap prior's positions."""
    return 0.5 * (config.voxel_dim - 1) * config.voxel_inc


def grid_position_features(config: CoarseConfig) -> Tensor:
    """(4, D, D, D) inputs of a heatmap prior: each grid point's offset ``o`` from the grid's
    centre in units of :func:`grid_half_width_mm`, and ``|o|²``."""
    o = geometry.grid_offsets(config.voxel_dim, config.voxel_inc) / grid_half_width_mm(config)
    return torch.cat([o, o.square().sum(0, keepdim=True)])


def template_prior_weights(
    config: CoarseConfig, template_vertices: Tensor, num_vertices: int
) -> Tensor:
    """(N, 4) heatmap-layer weights on :func:`grid_position_features` that make vertex ``l``'s
    logits ``(2 t_l·o − |o|²) / 2σ²``: up to a constant per heatmap (which its softmax ignores),
    a Gaussian of standard deviation σ (``heatmap_prior_sigma``) around ``t_l``, where the
    template vertex lies in a grid at the origin with the localizer's initial scale.

    ``template_vertices`` is (N, 3), mm, in the rig frame the data poses the head in;
    :class:`ValueError` if it does not have ``num_vertices`` rows.
    """
    if template_vertices.shape != (num_vertices, 3):
        raise ValueError(
            f"template_vertices must be ({num_vertices}, 3), got {tuple(template_vertices.shape)}"
        )
    sigma = config.heatmap_prior_sigma
    identity = torch.tensor([IDENTITY_BIAS])
    scale = float(geometry.decode_localizer(identity, config.localizer.scale_factor)[0][0, 0])
    t = (template_vertices.float() - torch.tensor(config.origin)) / (
        scale * grid_half_width_mm(config)
    )
    return torch.cat([t / sigma**2, torch.full_like(t[:, :1], -0.5 / sigma**2)], dim=1)


class CoarseStage(nn.Module):
    """Regress all template vertices from multi-view images.

    Parameters
    ----------
    config : CoarseConfig
    num_vertices : int
        Vertices of the head template (5023 for FLAME).
    compat : bool
        Reproduce the official projection quirks (passed to ``fusion.sample_views``).
    template_vertices : Tensor, optional
        (N, 3) template, mm: with :attr:`CoarseConfig.heatmap_prior_sigma` the heatmaps start
        as a prior around it (:func:`template_prior_weights`); without a template that prior
        starts at zero (a model about to load its weights needs none).
    """

    def __init__(
        self,
        config: CoarseConfig,
        num_vertices: int,
        compat: bool = False,
        template_vertices: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_vertices = num_vertices
        self.compat = compat
        self.feature_net = FeatureNet(config.feature_net)
        self.sparse_point_net = SparsePointNet(config, num_vertices)
        self.register_buffer("origin", torch.tensor(config.origin), persistent=False)
        self.translation_scale_mm = grid_half_width_mm(config)
        self.register_buffer("position_features", None, persistent=False)
        if config.heatmap_prior_sigma > 0:
            self.position_features = grid_position_features(config)
            prior = 0.0
            if template_vertices is not None:
                prior = template_prior_weights(config, template_vertices, num_vertices)
            weight = self.sparse_point_net.global_net.output_layer.weight  # (N, C + 4, 1, 1, 1)
            with torch.no_grad():
                weight[:, -POSITION_CHANNELS:, 0, 0, 0] = prior

    def forward(
        self,
        images: Tensor,
        K: Tensor,
        Rt: Tensor,
        dist: Tensor,
        view_mask: Tensor,
        random_grid: bool = False,
        generator: torch.Generator | None = None,
        origin_shift: Tensor | None = None,
        max_rotation_deg: float = 180.0,
    ) -> CoarseOutput:
        """Run the coarse stage.

        Parameters
        ----------
        images : Tensor
            (B, V, 3, H, W) ImageNet-normalized images at this stage's resolution.
        K : Tensor
            (B, V, 3, 3) intrinsics for these images, pixels.
        Rt : Tensor
            (B, V, 3, 4) world-to-camera extrinsics, mm.
        dist : Tensor
            (B, V, k) distortion coefficients.
        view_mask : Tensor
            (B, V) bool; False views are excluded from fusion.
        random_grid : bool
            Rotate the search grid by a random rotation (training): uniform over all rotations
            as the reference, or up to ``max_rotation_deg``.
        generator : torch.Generator, optional
            Source of the random rotation.
        origin_shift : Tensor, optional
            (B, 3) mm added to the search grid's origin (training: heads away from where the
            data put them).
        max_rotation_deg : float
            Largest angle of the random grid rotation (:func:`geometry.random_rotations`).

        Returns
        -------
        CoarseOutput
        """
        check_views(images, K, Rt, view_mask)

        B, V = images.shape[:2]
        d = self.config.voxel_dim
        offsets = geometry.grid_offsets(d, self.config.voxel_inc).to(images)
        feats = self.feature_net(images.flatten(0, 1)).unflatten(0, (B, V))
        if random_grid:
            rot = geometry.random_rotations(B, generator, max_angle_deg=max_rotation_deg)
            rot = rot.to(images)
        else:
            rot = torch.eye(3, dtype=images.dtype, device=images.device).expand(B, 3, 3)
        origin = self.origin.expand(B, 3)
        if origin_shift is not None:
            origin = origin + origin_shift.to(origin)
        search = rot @ offsets.reshape(1, 3, -1) + origin.unsqueeze(-1)
        volume = self._fuse(feats, search.transpose(1, 2), K, Rt, dist, view_mask, d)
        raw = self.sparse_point_net.grid_refiner(volume)
        scales, A, tau = geometry.decode_localizer(raw, self.config.localizer.scale_factor)
        warped = geometry.warp_grid(offsets, A, tau, rot, origin, self.translation_scale_mm)
        points = warped.flatten(2).transpose(1, 2)
        volume = self._fuse(feats, points, K, Rt, dist, view_mask, d)
        # the heatmaps a chunk at a time, never all at once (geometry.soft_argmax_linear)
        net = self.sparse_point_net.global_net
        features = net.features(volume)
        if self.position_features is not None:
            grid = self.position_features.to(features).expand(B, -1, -1, -1, -1)
            features = torch.cat([features, grid], dim=1)
        out = net.output_layer
        vertices = geometry.soft_argmax_linear(features, out.weight, out.bias, warped)
        center = (rot @ (tau * self.translation_scale_mm).unsqueeze(-1)).squeeze(-1) + origin
        return CoarseOutput(
            vertices=vertices, warped_grid=warped, grid_center=center, scales=scales
        )

    def _fuse(
        self,
        feats: Tensor,
        points: Tensor,
        K: Tensor,
        Rt: Tensor,
        dist: Tensor,
        view_mask: Tensor,
        d: int,
    ) -> Tensor:
        """Sample (B, V, F, H, W) features at (B, D^3, 3) points -> (B, 2F, D, D, D)."""

        samples, _ = fusion.sample_views(feats, points, K, Rt, dist, self.compat)
        fused = fusion.fuse_mean_var(samples, view_mask)
        return fused.view(fused.shape[0], fused.shape[1], d, d, d)


def check_views(images: Tensor, K: Tensor, Rt: Tensor, view_mask: Tensor) -> None:
    """Raise ValueError unless (B, V, 3, H, W) images, (B, V, 3, 3) K, (B, V, 3, 4) Rt and
    (B, V) view_mask agree."""
    if images.dim() != 5 or images.shape[2] != 3:
        raise ValueError(f"images must be (B, V, 3, H, W); got {tuple(images.shape)}")
    bv = tuple(images.shape[:2])
    for name, t, tail in (("K", K, (3, 3)), ("Rt", Rt, (3, 4)), ("view_mask", view_mask, ())):
        if tuple(t.shape) != bv + tail:
            raise ValueError(f"{name} must be {bv + tail} to match images; got {tuple(t.shape)}")
