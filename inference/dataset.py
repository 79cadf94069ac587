"""A torch dataset over the TEMPEH/FaMoS split layout (tempeh-reference §1.2, §1.5–1.8).

Reads what :mod:`inference.synth` writes and, therefore, the released FaMoS data::

    <image_dir>/<subject>/<sequence>/<frame>/<sequence>.<frame>.<camera>.<ext>
    <calibration_dir>/<subject>/<sequence>/<camera>.tka
    <scan_dir>/<subject>/<sequence>/<sequence>.<frame>.npy            (mm)
    <scan_dir>/<subject>/<sequence>/<sequence>.<frame>.extra.npy      (synthetic only: point tags)
    <registration_dir>/<subject>/<sequence>/<sequence>.<frame>.ply    (metres → mm)

Views are the calibration files in sorted order (stereo ``_A``/``_B`` cameras only by default,
as TEMPEH). Images are resized (antialiased) to the full calibration size divided by the
stage's ``resize_factor`` whenever their on-disk size differs; portrait cameras are rotated to
landscape as the official loader does. Unlike the official loader, a missing image, a missing
calibration or an image whose size is not an integer downscale of the calibration size raises
:class:`capture.errors.DatasetError` naming subject, sequence, frame and camera; no view is
dropped silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as nnf
from torch.utils.data import Dataset

from capture.camera import Rig
from capture.errors import CalibrationError, DatasetError, MeshIOError
from capture.rig_tka import official_landscape_update, read_rig_tka
from inference.mesh_io import read_mesh

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FrameKey = tuple[str, str, str]


@dataclass(frozen=True)
class DatasetConfig:
    """Where the data lies and how a frame is read.

    Attributes
    ----------
    image_dir, calibration_dir : Path
        Roots of the images and of the ``.tka`` calibrations.
    scan_dir, registration_dir : Path or None
        Roots of the scans and registrations; ``None`` skips them.
    list_file : Path
        JSON list of ``[subject, sequence, frame]`` triples.
    resize_factor : int
        Images are delivered at the full calibration size divided by this (coarse 8,
        refinement 4).
    scan_points : int
        Scan points per sample, drawn at random (0: no scan).
    scan_tags : bool
        Also read each scan's point tags (``<sequence>.<frame>.extra.npy``, written by
        :mod:`inference.synth`: True on surfaces the template lacks) where the file exists.
    views : str
        ``"stereo"`` (cameras named ``*_A*``/``*_B*``, TEMPEH's choice) or ``"all"``.
    official_resize : bool
        Resize cameras the official way (mm focal length divided before the distortion fit).
    augment : bool
        Also deliver augmented images and intrinsics (§1.6).
    scale_range : tuple[float, float]
        Range of the random scale.
    brightness_sigma : float
        Standard deviation of the per-view, per-channel brightness factor.
    normalize : bool
        Apply ImageNet mean/std normalisation.
    image_ext : str
        Image file extension.
    seed : int or None
        Seed of scan subsampling and augmentation (per index); ``None`` uses OS entropy.
    """

    image_dir: Path
    calibration_dir: Path
    list_file: Path
    scan_dir: Path | None = None
    registration_dir: Path | None = None
    resize_factor: int = 8
    scan_points: int = 20000
    scan_tags: bool = False
    views: str = "stereo"
    official_resize: bool = False
    augment: bool = False
    scale_range: tuple[float, float] = (0.9, 1.1)
    brightness_sigma: float = 0.33
    normalize: bool = True
    image_ext: str = "png"
    seed: int | None = None

    @classmethod
    def from_root(cls, root: str | Path, split: str, **options: object) -> DatasetConfig:
        """The config of a folder written by :mod:`inference.synth` for split ``split``."""
        root = Path(root)
        return cls(
            image_dir=root / "images",
            calibration_dir=root / "calibrations",
            scan_dir=root / "scans",
            registration_dir=root / "registrations",
            list_file=root / "lists" / f"{split}.json",
            **options,
        )


@dataclass(frozen=True, eq=False)
class FrameSample:
    """One multi-view frame.

    Attributes
    ----------
    images : Tensor
        (V, 3, H, W) float32, [0, 1] or ImageNet-normalised.
    K : Tensor
        (V, 3, 3) float32 intrinsics for ``images``, pixels.
    Rt : Tensor
        (V, 3, 4) float32 world → camera, mm.
    dist : Tensor
        (V, 2) float32 radial distortion ``(k1, k2)`` (OpenCV forward model).
    centers : Tensor
        (V, 3) float32 camera centres, world mm.
    view_names : tuple[str, ...]
        Camera names in view order.
    images_augmented, K_augmented : Tensor or None
        Augmented copies (same shapes), ``None`` without augmentation.
    scan : Tensor or None
        (M, 3) float32 scan points, mm.
    scan_extra : Tensor or None
        (M,) bool, True for scan points on a surface the template lacks (hair, shoulders);
        ``None`` unless ``scan_tags`` is set and the dataset has the tags.
    registration : Tensor or None
        (N, 3) float32 registration vertices, mm.
    faces : Tensor or None
        (F, 3) int64 registration faces.
    subject, sequence, frame : str
        The frame key; ``index`` its position in the list.
    """

    images: Tensor
    K: Tensor
    Rt: Tensor
    dist: Tensor
    centers: Tensor
    view_names: tuple[str, ...]
    images_augmented: Tensor | None
    K_augmented: Tensor | None
    scan: Tensor | None
    scan_extra: Tensor | None
    registration: Tensor | None
    faces: Tensor | None
    subject: str
    sequence: str
    frame: str
    index: int


def read_frame_list(path: str | Path) -> list[FrameKey]:
    """Read a JSON frame list; :class:`DatasetError` if missing or malformed."""
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read frame list: {exc}", path=path) from exc
    if not isinstance(items, list) or not all(
        isinstance(t, list | tuple) and len(t) == 3 and all(isinstance(s, str) for s in t)
        for t in items
    ):
        raise DatasetError("expected a list of [subject, sequence, frame] strings", path=path)
    return [(s, q, f) for s, q, f in items]


def resize_images(images: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of (V, C, h, w) images to ``size_hw``."""
    if tuple(images.shape[-2:]) == tuple(size_hw):
        return images
    return nnf.interpolate(
        images, size=size_hw, mode="bilinear", antialias=True, align_corners=False
    ).clamp(0.0, 1.0)


def augment_views(
    images: Tensor,
    K: Tensor,
    rng: np.random.Generator,
    scale_range: tuple[float, float],
    brightness_sigma: float,
) -> tuple[Tensor, Tensor]:
    """Random scale (crop top-left or pad centred) and brightness per view (§1.6).

    Parameters
    ----------
    images : Tensor
        (V, 3, H, W) float in [0, 1] (not yet normalised).
    K : Tensor
        (V, 3, 3) intrinsics of ``images``.

    Returns
    -------
    (Tensor, Tensor)
        Augmented (V, 3, H, W) images in [0, 1] and ``K_aug = T_pad S(s) K``.
    """
    V, _, H, W = images.shape
    out = torch.zeros_like(images)
    K_aug = K.clone()
    for i in range(V):
        s = float(rng.uniform(*scale_range))
        h, w = max(1, round(H * s)), max(1, round(W * s))
        scaled = resize_images(images[i : i + 1], (h, w))[0]
        K_aug[i, :2, :] *= s
        if s >= 1.0:
            out[i] = scaled[:, :H, :W]
        else:
            top, left = (H - h) // 2, (W - w) // 2
            out[i, :, top : top + h, left : left + w] = scaled
            K_aug[i, 0, 2] += left
            K_aug[i, 1, 2] += top
    factor = 1.0 + brightness_sigma * rng.standard_normal((V, 3, 1, 1))
    out = (out * torch.as_tensor(factor, dtype=out.dtype)).clamp(0.0, 1.0)
    return out, K_aug


def _normalize(images: Tensor) -> Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


class MultiViewDataset(Dataset):
    """Frames of the split layout as :class:`FrameSample` records (one per list entry).

    Parameters
    ----------
    config : DatasetConfig
        Folders, list and reading options.

    Notes
    -----
    Calibrations are cached per ``(subject, sequence)``; safe to use with DataLoader workers
    (each worker holds its own cache).
    """

    def __init__(self, config: DatasetConfig) -> None:
        if config.resize_factor < 1:
            raise DatasetError(f"resize_factor must be >= 1, got {config.resize_factor}")
        if config.views not in ("stereo", "all"):
            raise DatasetError(f"views must be 'stereo' or 'all', got {config.views!r}")
        self.config = config
        self.frames = read_frame_list(config.list_file)
        self._rigs: dict[tuple[str, str], tuple[Rig, Rig]] = {}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh augmentation and scan subsets for ``epoch`` (epoch 0: the seed alone)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def rigs(self, subject: str, sequence: str, frame: str | None = None) -> tuple[Rig, Rig]:
        """``(full-resolution rig, rig at the stage resize factor)`` of a sequence."""
        key = (subject, sequence)
        if key not in self._rigs:
            folder = self.config.calibration_dir / subject / sequence
            try:
                full = read_rig_tka(folder)
                stage = read_rig_tka(folder, self.config.resize_factor, self.config.official_resize)
            except CalibrationError as exc:
                raise DatasetError(
                    f"calibration: {exc}",
                    subject=subject,
                    sequence=sequence,
                    frame=frame,
                    camera=exc.camera,
                ) from exc
            names = [n for n in full.names if self.config.views == "all" or _is_stereo(n)]
            if not names:
                raise DatasetError(
                    f"no {self.config.views} cameras among {full.names}",
                    subject=subject,
                    sequence=sequence,
                    frame=frame,
                    path=folder,
                )
            pick = lambda rig: Rig(tuple(rig[n] for n in names), rig.name, rig.metadata)  # noqa: E731
            self._rigs[key] = (pick(full), pick(stage))
        return self._rigs[key]

    def _read_image(self, path: Path, key: FrameKey, camera: str) -> Tensor:
        if not path.is_file():
            raise DatasetError(
                "image is missing",
                subject=key[0],
                sequence=key[1],
                frame=key[2],
                camera=camera,
                path=path,
            )
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except OSError as exc:
            raise DatasetError(
                f"unreadable image: {exc}",
                subject=key[0],
                sequence=key[1],
                frame=key[2],
                camera=camera,
                path=path,
            ) from exc
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def registration_path(self, key: FrameKey) -> Path | None:
        """Where the registration of frame ``key`` lies; None when the config reads none."""
        if self.config.registration_dir is None:
            return None
        subject, sequence, frame = key
        return self.config.registration_dir / subject / sequence / f"{sequence}.{frame}.ply"

    def read_registration(self, key: FrameKey) -> tuple[Tensor, Tensor] | tuple[None, None]:
        """``(vertices (N, 3) float32 mm, faces (F, 3) int64)`` of frame ``key``, or
        ``(None, None)`` when the config reads no registrations; DatasetError naming the file
        if it cannot be read."""
        path = self.registration_path(key)
        if path is None:
            return None, None
        try:
            v, f = read_mesh(path, units="m")
        except MeshIOError as exc:
            subject, sequence, frame = key
            raise DatasetError(
                f"registration: {exc}", subject=subject, sequence=sequence, frame=frame, path=path
            ) from exc
        return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f, dtype=torch.int64)

    def __getitem__(self, index: int) -> FrameSample:
        cfg = self.config
        subject, sequence, frame = key = self.frames[index]
        full, stage = self.rigs(subject, sequence, frame)
        if cfg.seed is None:
            rng = np.random.default_rng()
        else:
            rng = np.random.default_rng([cfg.seed, index] + ([self.epoch] if self.epoch else []))
        images, Ks = [], []
        folder = cfg.image_dir / subject / sequence / frame
        for cam_full, cam in zip(full, stage, strict=True):
            path = folder / f"{sequence}.{frame}.{cam.name}.{cfg.image_ext}"
            img = self._read_image(path, key, cam.name)
            h, w = img.shape[-2:]
            d = round(cam_full.width / w) if w else 0
            if d < 1 or cam_full.width // d != w or cam_full.height // d != h:
                raise DatasetError(
                    f"image is {w}x{h}, not an integer downscale of the calibrated "
                    f"{cam_full.width}x{cam_full.height}",
                    subject=subject,
                    sequence=sequence,
                    frame=frame,
                    camera=cam.name,
                    path=path,
                )
            img = resize_images(img[None], (cam.height, cam.width))[0]
            K = cam.K
            if cam.height > cam.width:
                img = torch.rot90(img, 1, dims=(1, 2))
                K, _ = official_landscape_update(K, (cam.height, cam.width))
            images.append(img)
            Ks.append(K)
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) != 1:
            raise DatasetError(
                f"views differ in size after resizing: {sorted(shapes)}",
                subject=subject,
                sequence=sequence,
                frame=frame,
            )
        imgs = torch.stack(images)
        K = torch.as_tensor(np.stack(Ks), dtype=torch.float32)
        imgs_aug = K_aug = None
        if cfg.augment:
            imgs_aug, K_aug = augment_views(imgs, K, rng, cfg.scale_range, cfg.brightness_sigma)
            if cfg.normalize:
                imgs_aug = _normalize(imgs_aug)
        if cfg.normalize:
            imgs = _normalize(imgs)
        Rt = np.stack([np.concatenate([c.R, c.t[:, None]], axis=1) for c in stage])
        registration, faces = self.read_registration(key)
        scan, scan_extra = self._read_scan(key, rng)
        return FrameSample(
            images=imgs,
            K=K,
            Rt=torch.as_tensor(Rt, dtype=torch.float32),
            dist=torch.as_tensor(np.stack([c.dist[:2] for c in stage]), dtype=torch.float32),
            centers=torch.as_tensor(np.stack([c.center for c in stage]), dtype=torch.float32),
            view_names=tuple(stage.names),
            images_augmented=imgs_aug,
            K_augmented=K_aug,
            scan=scan,
            scan_extra=scan_extra,
            registration=registration,
            faces=faces,
            subject=subject,
            sequence=sequence,
            frame=frame,
            index=index,
        )

    def _read_scan(
        self, key: FrameKey, rng: np.random.Generator
    ) -> tuple[Tensor | None, Tensor | None]:
        """The frame's scan points, subsampled, and their tags (see :class:`FrameSample`)."""
        cfg = self.config
        if cfg.scan_dir is None or cfg.scan_points <= 0:
            return None, None
        subject, sequence, frame = key
        where = {"subject": subject, "sequence": sequence, "frame": frame}
        path = cfg.scan_dir / subject / sequence / f"{sequence}.{frame}.npy"
        try:
            points = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"scan is missing or unreadable: {exc}", path=path, **where) from exc
        if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
            raise DatasetError(
                f"scan must be (M, 3) with M > 0, got {points.shape}", path=path, **where
            )
        pick = np.sort(
            rng.choice(len(points), cfg.scan_points, replace=len(points) < cfg.scan_points)
        )
        scan = torch.as_tensor(points[pick], dtype=torch.float32)
        tags_path = scan_tags_path(path)
        if not cfg.scan_tags or not tags_path.is_file():
            return scan, None
        try:
            tags = np.load(tags_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"scan tags unreadable: {exc}", path=tags_path, **where) from exc
        if tags.shape != (len(points),) or tags.dtype != np.bool_:
            raise DatasetError(
                f"scan tags must be ({len(points)},) bool like the scan's points, got "
                f"{tags.shape} {tags.dtype}",
                path=tags_path,
                **where,
            )
        return scan, torch.as_tensor(tags[pick])


def scan_tags_path(scan: Path) -> Path:
    """The point tags beside a scan file: ``<sequence>.<frame>.extra.npy`` for
    ``<sequence>.<frame>.npy``."""
    return scan.with_name(f"{scan.stem}.extra.npy")


def _is_stereo(name: str) -> bool:
    return "_A" in name or "_B" in name


def collate_frames(samples: list[FrameSample]) -> dict[str, object]:
    """Stack samples into a batch dict (tensors get a leading B; strings become lists)."""
    batch: dict[str, object] = {}
    for name in FrameSample.__dataclass_fields__:
        values = [getattr(s, name) for s in samples]
        if isinstance(values[0], Tensor):
            batch[name] = torch.stack(values)
        else:
            batch[name] = values
    return batch
