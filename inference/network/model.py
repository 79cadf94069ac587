"""Both TEMPEH stages chained in memory: multi-view images + cameras -> coarse and refined mesh."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from inference import geometry
from inference.head_data import HeadTemplate
from inference.network.coarse import CoarseOutput, CoarseStage
from inference.network.config import ModelConfig
from inference.network.refine import RefineStage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MultiViewBatch:
    """Synchronized multi-view images with their cameras.

    Attributes
    ----------
    images : Tensor
        (B, V, C, H, W) with C = 1 (grey) or 3 (RGB); uint8 in [0, 255] or float in [0, 1].
    K : Tensor
        (B, V, 3, 3) intrinsics at ``full_size``, pixels.
    Rt : Tensor
        (B, V, 3, 4) world-to-camera extrinsics, mm.
    dist : Tensor
        (B, V, k) distortion coefficients at ``full_size``.
    view_mask : Tensor
        (B, V) bool; False marks a missing or dropped view.
    full_size : tuple of int, optional
        (H, W) of the images the cameras were calibrated for; the image size when omitted.
    """

    images: Tensor
    K: Tensor
    Rt: Tensor
    dist: Tensor
    view_mask: Tensor
    full_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ReconstructionOutput:
    """Coarse and refined vertices of a batch.

    Attributes
    ----------
    coarse : Tensor
        (B, N, 3) coarse vertices, mm, rig frame.
    refined : Tensor
        (B, N, 3) refined vertices, mm, rig frame.
    timings : dict of str to float
        Wall-clock milliseconds per stage (``"prepare"``: resizing, ``"coarse"``,
        ``"refine"``).
    coarse_output : CoarseOutput
        The coarse stage's full record (localized grid etc.).
    """

    coarse: Tensor
    refined: Tensor
    timings: dict[str, float]
    coarse_output: CoarseOutput


class TempehModel(nn.Module):
    """The coarse and refinement stages for one head template.

    Parameters
    ----------
    config : ModelConfig
    template : HeadTemplate
        Output topology; its vertex count sizes the coarse output layer.
    """

    def __init__(self, config: ModelConfig, template: HeadTemplate) -> None:
        super().__init__()
        self.config = config
        verts = torch.as_tensor(template.vertices, dtype=torch.float32)
        faces = torch.as_tensor(template.faces, dtype=torch.long)
        self.coarse = CoarseStage(config.coarse, len(verts), config.compat, verts)
        self.refine = RefineStage(config.refine, verts, faces, config.compat)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    def forward(
        self,
        batch: MultiViewBatch,
        random_grid: bool = False,
        generator: torch.Generator | None = None,
    ) -> ReconstructionOutput:
        """Reconstruct the heads of a batch.

        Parameters
        ----------
        batch : MultiViewBatch
        random_grid : bool
            Random grid rotations in both stages (training augmentation).
        generator : torch.Generator, optional

        Returns
        -------
        ReconstructionOutput
        """
        images = batch.images
        if images.dim() != 5 or images.shape[2] not in (1, 3):
            raise ValueError(f"images must be (B, V, 1|3, H, W); got {tuple(images.shape)}")
        full = batch.full_size or tuple(images.shape[-2:])
        timings = {}

        start = _now(images)
        fc = self.config.coarse.image_resize_factor
        fr = self.config.refine.image_resize_factor
        refine_imgs = self._resize(images, self._stage_size(full, fr))
        # Resizing the refinement images again is ~50x cheaper than resizing the full frames;
        # compat mode resizes the full frames for each stage like the official code.
        source = images if self.config.compat or fc % fr else refine_imgs
        coarse_imgs = self._resize(source, self._stage_size(full, fc))
        timings["prepare"] = (_now(images) - start) * 1e3

        start = _now(images)
        K = self._stage_intrinsics(batch.K, full, coarse_imgs.shape[-2:])
        coarse = self.coarse(
            self._normalize(coarse_imgs),
            K,
            batch.Rt,
            batch.dist,
            batch.view_mask,
            random_grid,
            generator,
        )
        timings["coarse"] = (_now(images) - start) * 1e3

        start = _now(images)
        refined = self._refine(batch, refine_imgs, coarse.vertices, random_grid, generator)
        timings["refine"] = (_now(images) - start) * 1e3
        return ReconstructionOutput(coarse.vertices, refined, timings, coarse)

    def refine_from(self, batch: MultiViewBatch, vertices: Tensor) -> Tensor:
        """Only the refinement stage, started from ``vertices`` instead of the coarse stage's.

        Parameters
        ----------
        batch : MultiViewBatch
        vertices : Tensor
            (B, N, 3) meshes to refine, mm, rig frame.

        Returns
        -------
        Tensor
            (B, N, 3) refined vertices, mm.
        """
        full = batch.full_size or tuple(batch.images.shape[-2:])
        size = self._stage_size(full, self.config.refine.image_resize_factor)
        return self._refine(batch, self._resize(batch.images, size), vertices)

    def _stage_size(self, full: tuple[int, int], factor: int) -> tuple[int, int]:
        """(h, w) a stage's images have: the trained input size (or ``full``) // ``factor``."""
        base = self.config.input_size or full
        return base[0] // factor, base[1] // factor

    def _refine(
        self,
        batch: MultiViewBatch,
        refine_imgs: Tensor,
        start: Tensor,
        random_grid: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        full = batch.full_size or tuple(batch.images.shape[-2:])
        R, t = batch.Rt[..., :3], batch.Rt[..., 3:]
        centers = -(R.transpose(-1, -2) @ t).squeeze(-1)
        return self.refine(
            self._normalize(refine_imgs),
            self._stage_intrinsics(batch.K, full, refine_imgs.shape[-2:]),
            batch.Rt,
            batch.dist,
            centers,
            start,
            batch.view_mask,
            random_grid,
            generator,
        )

    def _resize(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        """(B, V, C, H, W) uint8 or float -> (B, V, C, h, w) float in [0, 1], antialiased."""
        x = images.flatten(0, 1)
        if tuple(x.shape[-2:]) != size:
            # uint8 has a fast antialiased path on CPU (convert after shrinking); CUDA has
            # none for uint8, so there the images become float first
            if x.dtype == torch.uint8 and x.device.type != "cpu":
                x = x.to(self.mean.dtype)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        x = x.to(self.mean.dtype)
        if images.dtype == torch.uint8:
            x = x / 255.0
        return x.unflatten(0, images.shape[:2])

    def _stage_intrinsics(self, K: Tensor, full: tuple[int, int], size: tuple[int, int]) -> Tensor:
        """(B, V, 3, 3) intrinsics at ``full`` (H, W) -> at a stage's ``size`` (h, w), by the
        convention the stages were trained with: the pixel-area one of our datasets, or in
        compat mode the official plain ratio."""
        return geometry.scale_intrinsics(K, full, size, pixel_area=not self.config.compat)

    def _normalize(self, images: Tensor) -> Tensor:
        """(B, V, 1|3, H, W) in [0, 1] -> (B, V, 3, H, W) ImageNet-normalized."""
        return (images.expand(-1, -1, 3, -1, -1) - self.mean) / self.std


def _now(t: Tensor) -> float:
    """Seconds, after the device has finished queued work."""
    if t.is_cuda:
        torch.cuda.synchronize(t.device)
    return time.perf_counter()
