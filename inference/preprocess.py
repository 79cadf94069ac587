"""From a :class:`~capture.frames.FrameSet` to the network's :class:`MultiViewBatch`.

The rig is fed at its own resolution: intrinsics stay at the calibrated (full) size and
:class:`~inference.network.model.TempehModel` resizes the images per stage (``full //
factor``). Images may arrive smaller than the calibration by any factor that keeps the aspect
ratio (the FaMoS/TEMPEH data is stored downsampled by 4); they are stacked at the size of the
first view. Views are a set: any number of cameras works as long as at least
:data:`MIN_VIEWS` of them deliver, and a missing camera is a ``False`` entry of the view mask.

Threads: :class:`RigTensors` and :func:`stack_frames` are used by the inference worker's
thread only (they own pinned host buffers and device tensors).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from capture.camera import Rig
from capture.errors import CaptureError, ConfigError
from capture.frames import FrameSet
from inference.network.config import ModelConfig
from inference.network.model import MultiViewBatch

log = logging.getLogger(__name__)

MIN_VIEWS = 2
"""Views a set needs: the coarse stage fuses the mean and variance across views."""

ASPECT_TOLERANCE = 0.02
"""Relative aspect-ratio difference accepted between an image and its calibration."""


def check_rig(config: ModelConfig, rig: Rig) -> None:
    """Refuse a rig the model cannot use, with a message naming what does not fit.

    Parameters
    ----------
    config : ModelConfig
        The network's configuration (the stages' image resize factors).
    rig : Rig
        The cameras, any number of them at any resolution.

    Raises
    ------
    ConfigError
        Fewer than :data:`MIN_VIEWS` cameras, or a camera whose image is smaller than a
        stage's resize factor (the stage would get an empty image).
    """
    if len(rig) < MIN_VIEWS:
        raise ConfigError(
            f"rig {rig.name!r} has {len(rig)} camera(s); reconstruction needs at least "
            f"{MIN_VIEWS} views",
            field="rig",
        )
    factors = {
        "coarse": config.coarse.image_resize_factor,
        "refine": config.refine.image_resize_factor,
    }
    for cam in rig.cameras:
        for stage, f in factors.items():
            if cam.width // f < 1 or cam.height // f < 1:
                raise ConfigError(
                    f"image {cam.width}x{cam.height} is too small for the {stage} stage, "
                    f"which resizes by 1/{f} (needs at least {f}x{f} pixels)",
                    camera=cam.name,
                    field="rig",
                )


def common_full_size(rig: Rig) -> tuple[int, int]:
    """(W, H) the batch's cameras are expressed at: the most common calibrated size."""
    return Counter(c.image_size for c in rig.cameras).most_common(1)[0][0]


@dataclass(frozen=True, eq=False)
class RigTensors:
    """The rig's cameras as resident device tensors (built once per rig).

    Attributes
    ----------
    rig : Rig
        The rig as given.
    full_size : tuple[int, int]
        (H, W) the intrinsics refer to.
    K : Tensor
        (1, V, 3, 3) float32 intrinsics at ``full_size``, pixels.
    Rt : Tensor
        (1, V, 3, 4) float32 world → camera, mm.
    dist : Tensor
        (1, V, 5) float32 OpenCV distortion.
    stack_size : tuple[int, int] or None
        (H, W) the frames are shrunk to while they are stacked: the refinement stage's input
        size, the larger of the two the model works at. Only on CPU: on a GPU the model resizes
        the full frames there, and compat mode resizes the full frames per stage like the
        official code.
    """

    rig: Rig
    full_size: tuple[int, int]
    K: Tensor
    Rt: Tensor
    dist: Tensor
    stack_size: tuple[int, int] | None = None

    @classmethod
    def build(cls, rig: Rig, config: ModelConfig, device: torch.device) -> RigTensors:
        """Check ``rig`` against ``config`` (:func:`check_rig`) and upload its cameras."""
        check_rig(config, rig)
        full = common_full_size(rig)
        odd = [c.name for c in rig.cameras if c.image_size != full]
        if odd:
            log.info("cameras %s are resized to the rig's common %dx%d", odd, *full)
        factor = config.refine.image_resize_factor
        # the model scales these full-size intrinsics to each stage's size itself
        # (geometry.scale_intrinsics, the convention the stages were trained with)
        cams = [c if c.image_size == full else c.resized(*full) for c in rig.cameras]
        K = np.stack([c.K for c in cams])
        Rt = np.stack([np.concatenate([c.R, c.t[:, None]], axis=1) for c in cams])
        dist = np.stack([c.dist for c in cams])

        def up(a: np.ndarray) -> Tensor:
            return torch.as_tensor(a, dtype=torch.float32, device=device)[None]

        base_h, base_w = config.input_size or (full[1], full[0])
        # on a GPU the full frames go over and the model resizes them there (issue 7: the
        # preprocessing runs on the device); on CPU the host is the device
        shrink = device.type == "cpu" and not config.compat
        stack = (max(1, base_h // factor), max(1, base_w // factor)) if shrink else None
        return cls(rig, (full[1], full[0]), up(K), up(Rt), up(dist), stack)


class FrameStacker:
    """Stacks a set's images into one (1, V, C, H, W) uint8 tensor on the device.

    On CPU, frames larger than the rig's ``stack_size`` are shrunk to it here with OpenCV's
    area filter: 16 views of 1600x1200 take about 8 ms this way against 40 ms for the
    antialiased resize of the full frames in torch, and the accuracy is the same (12 emulated
    sets: 10.64 mm median v2v against 10.62). Smaller frames are stacked at the size of the
    first view.

    On CUDA the host buffer is pinned and reused, and the copy is asynchronous
    (``non_blocking``). Grey and colour views may be mixed: grey views are expanded to 3
    channels when any view is colour (BGR frames become RGB). Missing views are zeros and
    ``False`` in the view mask.

    Parameters
    ----------
    rig_tensors : RigTensors
    device : torch.device
    """

    def __init__(self, rig_tensors: RigTensors, device: torch.device) -> None:
        self.rig = rig_tensors
        self.device = device
        self._host: Tensor | None = None

    def _buffer(self, shape: tuple[int, ...]) -> Tensor:
        if self._host is None or tuple(self._host.shape) != shape:
            buf = torch.empty(shape, dtype=torch.uint8)
            self._host = buf.pin_memory() if self.device.type == "cuda" else buf
        return self._host

    def __call__(self, fs: FrameSet) -> tuple[MultiViewBatch, tuple[int, ...]]:
        """The batch of ``fs`` and the indices of the views used.

        Raises
        ------
        CaptureError
            The set belongs to a rig with another number of cameras, fewer than
            :data:`MIN_VIEWS` views arrived, or an image's aspect ratio does not match its
            camera.
        """
        rig = self.rig.rig
        if len(fs.frames) != len(rig):
            raise CaptureError(
                f"set {fs.sequence}: {len(fs.frames)} views for a worker set up for "
                f"{len(rig)} cameras ({rig.name})"
            )
        present = [(i, f) for i, f in enumerate(fs.frames) if f is not None]
        if len(present) < MIN_VIEWS:
            raise CaptureError(
                f"set {fs.sequence}: {len(present)} of {len(rig)} views arrived; "
                f"reconstruction needs at least {MIN_VIEWS}"
            )
        h, w = present[0][1].image.shape[:2]
        if self.rig.stack_size is not None and h > self.rig.stack_size[0]:
            h, w = self.rig.stack_size
        colour = any(f.image.ndim == 3 for _, f in present)
        channels = 3 if colour else 1
        host = self._buffer((len(rig), channels, h, w))
        mask = torch.zeros(len(rig), dtype=torch.bool)
        for i, frame in present:
            img = frame.image
            cam = rig.cameras[i]
            ratio = (img.shape[1] / img.shape[0]) / (cam.width / cam.height)
            if abs(ratio - 1.0) > ASPECT_TOLERANCE:
                raise CaptureError(
                    f"set {fs.sequence}: camera {cam.name!r}: image {img.shape[1]}x"
                    f"{img.shape[0]} does not have the aspect of its calibration "
                    f"{cam.width}x{cam.height}"
                )
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            view = host[i].numpy()
            if img.ndim == 3:
                view[...] = img[:, :, ::-1].transpose(2, 0, 1)
            elif colour:
                view[...] = img[None]
            else:
                view[0] = img
            mask[i] = True
        for i, frame in enumerate(fs.frames):
            if frame is None:
                host[i].zero_()
        non_blocking = self.device.type == "cuda"
        images = host.to(self.device, non_blocking=non_blocking)[None]
        view_mask = mask.to(self.device, non_blocking=non_blocking)[None]
        if non_blocking:
            # The pinned buffer is reused for the next set: the copy must be done by then.
            torch.cuda.current_stream(self.device).synchronize()
        batch = MultiViewBatch(
            images, self.rig.K, self.rig.Rt, self.rig.dist, view_mask, self.rig.full_size
        )
        return batch, tuple(i for i, _ in present)
