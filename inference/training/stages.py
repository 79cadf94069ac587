"""The two TEMPEH stages as plug-ins of the one trainer (style rule 8).

A batch is the dict of :func:`inference.dataset.collate_frames` after the trainer has moved it
to the device and picked the views: ``images`` (B, V, 3, H, W) ImageNet-normalised at the
stage's resolution, ``K`` (B, V, 3, 3) pixels, ``Rt`` (B, V, 3, 4) mm, ``dist`` (B, V, 2),
``centers`` (B, V, 3) mm, ``registration`` (B, N, 3) mm, ``scan`` (B, M, 3) mm or absent.
Predictions are a dict with ``vertices`` (B, N, 3) mm, rig frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from capture.errors import CheckpointError, ConfigError
from inference.geometry import (
    neighbour_mean_operator,
    repeat_neighbour_mean,
    scale_intrinsics,
)
from inference.head_data import HeadTemplate, unique_edges
from inference.losses import (
    EDGE_WEIGHTS_COARSE,
    EDGE_WEIGHTS_REFINEMENT,
    edge_loss,
    edge_vertex_weights,
    edge_weights,
    official_edges,
    point_to_surface_loss,
    region_vertex_weights,
    v2v_loss,
)
from inference.network.coarse import CoarseStage
from inference.network.config import ModelConfig
from inference.network.refine import RefineStage
from inference.training.checkpoints import latest_checkpoint, load_checkpoint
from inference.training.config import Phase, TrainConfig

LOCALIZER_PREFIX = "sparse_point_net.grid_refiner."


class Stage(Protocol):
    """What the trainer needs of a stage."""

    name: str

    def resize_factor(self, model_config: ModelConfig) -> int:
        """Full calibration size / the size of the images this stage is fed."""
        ...

    def build(self, model_config: ModelConfig, template: HeadTemplate) -> nn.Module:
        """The trainable module (its ``state_dict`` is what checkpoints hold)."""
        ...

    def forward(
        self, module: nn.Module, batch: dict, train: bool, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Predictions of a batch; ``module`` may be wrapped in DDP."""
        ...

    def losses(
        self, predictions: dict[str, Tensor], batch: dict, phase: Phase
    ) -> dict[str, Tensor]:
        """Weighted loss terms and their sum under ``"total"``."""
        ...

    def param_groups(self, module: nn.Module, cfg: TrainConfig) -> list[dict]:
        """AdamW parameter groups."""
        ...


class _TemplateLosses:
    """The loss terms of reference section 4.1 for one template (constant tensors only)."""

    def __init__(self, template: HeadTemplate, edge_table: dict[str, tuple[float, int]]) -> None:
        self.template = template
        self.faces = torch.as_tensor(template.faces, dtype=torch.long)
        self.edges = torch.as_tensor(official_edges(template.faces), dtype=torch.long)
        vw = edge_vertex_weights(
            template.num_vertices, template.faces, template.regions, edge_table
        )
        self.edge_weights = edge_weights(self.edges, vw).float()

    def __call__(self, pred: Tensor, batch: dict, phase: Phase) -> dict[str, Tensor]:
        pred = pred.float()
        target = batch["registration"]
        out: dict[str, Tensor] = {}
        if phase.v2v_weight:
            w = region_vertex_weights(
                self.template.num_vertices, self.template.regions, phase.v2v_region_weights
            ).to(pred)
            out["v2v"] = phase.v2v_weight * v2v_loss(pred, target, w)
        if phase.edge_weight:
            out["edge"] = phase.edge_weight * edge_loss(
                pred,
                target,
                self.edges.to(pred.device),
                self.edge_weights.to(pred),
            )
        if phase.p2s_weight:
            scan = batch.get("scan")
            if not isinstance(scan, Tensor):
                raise ConfigError(
                    "the point-to-surface loss needs scans; set scan_points > 0",
                    field="scan_points",
                )
            faces = self.faces.to(pred.device)
            out["p2s"] = phase.p2s_weight * point_to_surface_loss(scan, pred, faces)[0]
        out["total"] = sum(out.values(), torch.zeros((), device=pred.device))
        return out


def _groups(module: nn.Module, cfg: TrainConfig) -> list[dict]:
    main, localizer = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (localizer if LOCALIZER_PREFIX in name else main).append(p)
    groups = [{"params": main, "lr": cfg.lr, "name": "main"}]
    if localizer:
        groups.append({"params": localizer, "lr": cfg.localizer_lr, "name": "localizer"})
    return groups


class CoarseTrainingStage:
    """The coarse stage: random search-grid rotation (and shift) while training.

    Parameters
    ----------
    template : HeadTemplate
    grid_shift_mm : float
        Half-width of the uniform random shift of the search grid per axis, mm (0: none).
    grid_rotation_deg : float
        Largest angle of the random search-grid rotation (180: uniform over all rotations).
    """

    name = "coarse"

    def __init__(
        self, template: HeadTemplate, grid_shift_mm: float = 0.0, grid_rotation_deg: float = 180.0
    ) -> None:
        self._losses = _TemplateLosses(template, EDGE_WEIGHTS_COARSE)
        self.grid_shift_mm = grid_shift_mm
        self.grid_rotation_deg = grid_rotation_deg

    def resize_factor(self, model_config: ModelConfig) -> int:
        return model_config.coarse.image_resize_factor

    def build(self, model_config: ModelConfig, template: HeadTemplate) -> nn.Module:
        verts = torch.as_tensor(template.vertices, dtype=torch.float32)
        return CoarseStage(model_config.coarse, len(verts), model_config.compat, verts)

    def forward(
        self, module: nn.Module, batch: dict, train: bool, generator: torch.Generator
    ) -> dict[str, Tensor]:
        shift = None
        if train and self.grid_shift_mm > 0:
            B = batch["images"].shape[0]
            shift = (torch.rand(B, 3, generator=generator) * 2 - 1) * self.grid_shift_mm
        out = module(
            batch["images"],
            batch["K"],
            batch["Rt"],
            batch["dist"],
            batch["view_mask"],
            train,
            generator,
            shift,
            self.grid_rotation_deg,
        )
        return {"vertices": out.vertices}

    def losses(
        self, predictions: dict[str, Tensor], batch: dict, phase: Phase
    ) -> dict[str, Tensor]:
        return self._losses(predictions["vertices"], batch, phase)

    def param_groups(self, module: nn.Module, cfg: TrainConfig) -> list[dict]:
        return _groups(module, cfg)


OFFSET_SMOOTHING_STEPS = 30
"""Neighbour-mean steps that turn white noise into :func:`smooth_offsets`. On the procedural
head (5.3 mm edges) the offsets of two vertices correlate by 0.64 at 10–20 mm apart, 0.43 at
20–30 mm, 0.21 at 30–50 mm and not at all beyond 80 mm: errors of the size of a nose or a lip."""


def smooth_offsets(
    neighbour_mean: Tensor, frames: int, mean_mm: float, generator: torch.Generator
) -> Tensor:
    """(frames, N, 3) smooth random offset fields, mm, on CPU.

    Gaussian noise averaged over mesh neighbours (``neighbour_mean``, the CPU operator of
    :func:`inference.geometry.neighbour_mean_operator`) :data:`OFFSET_SMOOTHING_STEPS` times, scaled
    per frame to a mean vertex offset drawn uniformly from [0, 2 ``mean_mm``]. Added to the
    coarse meshes while the refinement trains, they reward finding the surface in the images
    rather than learning the coarse stage's average error. (The default recipe uses 3 mm with
    the lite normal search. In a 1500-step run of a 17-sample search they took the pull-in from
    the registration moved 3 mm outwards from 2.33 to 1.90 mm left, and the test v2v from 6.97
    to 6.91 mm.)
    """
    num_vertices = neighbour_mean.shape[0]
    noise = torch.randn(num_vertices, frames, 3, generator=generator)
    field = repeat_neighbour_mean(noise, neighbour_mean, OFFSET_SMOOTHING_STEPS).transpose(0, 1)
    field = field / field.norm(dim=-1).mean(dim=1).view(frames, 1, 1)
    scale = torch.rand(frames, 1, 1, generator=generator) * (2.0 * mean_mm)
    return field * scale


class RefineTrainingModule(nn.Module):
    """The refinement stage plus an optional frozen coarse stage that feeds it.

    Parameters
    ----------
    refine : RefineStage
    coarse : CoarseStage or None
        Frozen (no gradients, always in eval mode); ``None``: coarse vertices are given.
    coarse_factor : int
        Resize factor of the coarse stage relative to the full calibration size.
    refine_factor : int
        The same for the refinement images this module is fed.
    """

    def __init__(
        self,
        refine: RefineStage,
        coarse: CoarseStage | None,
        coarse_factor: int,
        refine_factor: int,
    ) -> None:
        super().__init__()
        self.refine = refine
        self.coarse = coarse
        self.coarse_factor = coarse_factor
        self.refine_factor = refine_factor
        if coarse is not None:
            coarse.requires_grad_(False)
            coarse.eval()

    def train(self, mode: bool = True) -> RefineTrainingModule:
        super().train(mode)
        if self.coarse is not None:
            self.coarse.eval()
        return self

    def forward(
        self,
        images: Tensor,
        K: Tensor,
        Rt: Tensor,
        dist: Tensor,
        centers: Tensor,
        view_mask: Tensor,
        coarse_vertices: Tensor | None,
        random_rotation: bool,
        generator: torch.Generator,
        coarse_offset: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(refined, coarse) vertices, (B, N, 3) mm; ``images`` at the refinement size.

        ``coarse_offset`` (B, N, 3) mm is added to the coarse vertices the refinement starts
        from (and that are returned as ``coarse``).
        """
        if coarse_vertices is None:
            if self.coarse is None:
                raise ConfigError("no coarse model and no coarse vertices", field="coarse_run")
            h, w = images.shape[-2:]
            r = self.coarse_factor / self.refine_factor
            size = (int(h / r), int(w / r))
            # normalisation is affine per channel, so resizing normalised images is exact
            small = F.interpolate(
                images.flatten(0, 1), size=size, mode="bilinear", antialias=True
            ).unflatten(0, images.shape[:2])
            # the coarse stage's intrinsics as its own training's dataset made them
            K_small = scale_intrinsics(K, (h, w), size, pixel_area=not self.refine.compat)
            with torch.no_grad():
                coarse_vertices = self.coarse(small, K_small, Rt, dist, view_mask).vertices
        if coarse_offset is not None:
            coarse_vertices = coarse_vertices + coarse_offset.to(coarse_vertices)
        refined = self.refine(
            images, K, Rt, dist, centers, coarse_vertices, view_mask, random_rotation, generator
        )
        return refined, coarse_vertices


class RefineTrainingStage:
    """The refinement stage fed by a frozen coarse model, or by the registration + noise.

    Parameters
    ----------
    template : HeadTemplate
    coarse_run : path or None
        A coarse run folder: its latest checkpoint predicts the coarse meshes and its
        ``feature_net.*`` initialises the refinement feature net.
    noise_mm : float
        Without ``coarse_run``: standard deviation of the noise added to the registration.
    offset_mm : float
        With ``coarse_run``, while training: mean length of a smooth random offset field
        added to the coarse vertices (:func:`smooth_offsets`; 0: off).
    """

    name = "refine"

    def __init__(
        self,
        template: HeadTemplate,
        coarse_run: str | Path | None,
        noise_mm: float = 2.0,
        offset_mm: float = 0.0,
    ) -> None:
        self._losses = _TemplateLosses(template, EDGE_WEIGHTS_REFINEMENT)
        self.coarse_run = None if coarse_run is None else Path(coarse_run)
        self.noise_mm = noise_mm
        self.offset_mm = offset_mm
        edges = torch.as_tensor(unique_edges(template.faces))
        self._neighbour_mean = neighbour_mean_operator(edges, template.num_vertices)

    def resize_factor(self, model_config: ModelConfig) -> int:
        return model_config.refine.image_resize_factor

    def build(self, model_config: ModelConfig, template: HeadTemplate) -> nn.Module:
        verts = torch.as_tensor(template.vertices, dtype=torch.float32)
        faces = torch.as_tensor(template.faces, dtype=torch.long)
        refine = RefineStage(model_config.refine, verts, faces, model_config.compat)
        coarse = None
        coarse_factor = model_config.coarse.image_resize_factor
        if self.coarse_run is not None:
            coarse_cfg = TrainConfig.load(self.coarse_run)
            if coarse_cfg.stage != "coarse":
                raise ConfigError(
                    f"expected a coarse run, found stage {coarse_cfg.stage!r}",
                    path=self.coarse_run,
                )
            path = latest_checkpoint(self.coarse_run)
            if path is None:
                raise CheckpointError("the coarse run has no checkpoint", path=self.coarse_run)
            state = load_checkpoint(path)["model"]
            coarse = CoarseStage(
                coarse_cfg.model.coarse, template.num_vertices, coarse_cfg.model.compat
            )
            try:
                coarse.load_state_dict(state)
                refine.feature_net.load_state_dict(
                    {
                        k.removeprefix("feature_net."): v
                        for k, v in state.items()
                        if k.startswith("feature_net.")
                    }
                )
            except RuntimeError as exc:
                raise CheckpointError(f"does not fit the model: {exc}", path=path) from exc
            coarse_factor = coarse_cfg.model.coarse.image_resize_factor
        return RefineTrainingModule(
            refine, coarse, coarse_factor, model_config.refine.image_resize_factor
        )

    def forward(
        self, module: nn.Module, batch: dict, train: bool, generator: torch.Generator
    ) -> dict[str, Tensor]:
        inner = getattr(module, "module", module)
        given = offset = None
        if inner.coarse is None:
            reg = batch["registration"]
            noise = torch.randn(reg.shape, generator=generator)
            given = reg + self.noise_mm * noise.to(reg)
        elif train and self.offset_mm > 0:
            frames = batch["images"].shape[0]
            offset = smooth_offsets(self._neighbour_mean, frames, self.offset_mm, generator)
        refined, coarse = module(
            batch["images"],
            batch["K"],
            batch["Rt"],
            batch["dist"],
            batch["centers"],
            batch["view_mask"],
            given,
            train,
            generator,
            offset,
        )
        return {"vertices": refined, "coarse": coarse}

    def losses(
        self, predictions: dict[str, Tensor], batch: dict, phase: Phase
    ) -> dict[str, Tensor]:
        return self._losses(predictions["vertices"], batch, phase)

    def param_groups(self, module: nn.Module, cfg: TrainConfig) -> list[dict]:
        return _groups(module, cfg)


def make_stage(cfg: TrainConfig, template: HeadTemplate) -> Stage:
    """The stage plug-in of ``cfg.stage``."""
    if cfg.stage == "coarse":
        return CoarseTrainingStage(template, cfg.grid_shift_mm, cfg.grid_rotation_deg)
    return RefineTrainingStage(template, cfg.coarse_run, cfg.coarse_noise_mm, cfg.coarse_offset_mm)
