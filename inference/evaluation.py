"""Evaluation of a model on a dataset split: vertex-to-vertex and scan-to-mesh errors.

The metric functions are pure and batched; :func:`evaluate` runs a model over a split and
returns a JSON-ready report ``{"frames": n, "coarse": {...}, "refined": {...}}`` where each
stage holds ``v2v``, ``s2m`` and ``s2m_head`` statistics (``median_mm``, ``mean_mm``, ``p90_mm``)
and the same per template region.

``s2m`` counts every scan point. ``s2m_head`` counts only the points on the head's own surface,
where the dataset tags the others (synthetic scans: the hair cap 5 mm over the scalp and the
shoulders, which the template lacks; its values are None for real scans). A head that lies
exactly on the registration is some mm from the hair points, so the scalp's ``s2m`` measures the
hair cap as much as the head; ``s2m_head`` measures the head.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from capture.errors import DatasetError
from inference.dataset import DatasetConfig, FrameSample, MultiViewDataset
from inference.geometry import scale_intrinsics
from inference.head_data import HeadTemplate
from inference.losses import closest_faces
from inference.network.model import MultiViewBatch, TempehModel

log = logging.getLogger(__name__)

STAGES = ("coarse", "refined")


def error_statistics(errors: np.ndarray | Tensor) -> dict[str, float | None]:
    """Median, mean and 90th percentile of distances (linear interpolation), mm.

    Returns ``None`` for each statistic of an empty set.
    """
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if e.size == 0:
        return {"median_mm": None, "mean_mm": None, "p90_mm": None}
    return {
        "median_mm": float(np.median(e)),
        "mean_mm": float(np.mean(e)),
        "p90_mm": float(np.percentile(e, 90)),
    }


def vertex_errors(predicted: Tensor, target: Tensor) -> Tensor:
    """Per-vertex Euclidean distance, mm.

    Parameters
    ----------
    predicted, target : Tensor
        (B, N, 3) vertices, mm, same topology.

    Returns
    -------
    Tensor
        (B, N) distances, mm.
    """
    if predicted.shape != target.shape or predicted.shape[-1] != 3:
        raise ValueError(
            f"predicted and target must both be (B, N, 3); got {tuple(predicted.shape)} "
            f"and {tuple(target.shape)}"
        )
    return (predicted - target).norm(dim=-1)


def scan_to_mesh(points: Tensor, vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """Distance of every scan point to the mesh surface and the index of its closest face.

    Parameters
    ----------
    points : Tensor
        (B, M, 3) scan points, mm.
    vertices : Tensor
        (B, N, 3) mesh vertices, mm.
    faces : Tensor
        (F, 3) int triangles.

    Returns
    -------
    distance : Tensor
        (B, M) mm.
    face_idx : Tensor
        (B, M) int64 closest face.
    """
    face_idx, sq = closest_faces(points, vertices, faces)
    return sq.clamp_min(0).sqrt(), face_idx


def vertex_region_labels(template: HeadTemplate) -> tuple[list[str], np.ndarray]:
    """Region names and a per-vertex label (index into the names, -1 for none).

    A vertex in several regions (e.g. ``lips`` inside ``face``) gets the smallest one, so
    every region keeps its own vertices.
    """
    names = list(template.regions)
    masks = [template.region_mask(name) for name in names]
    labels = np.full(template.num_vertices, -1, dtype=np.int64)
    for i in sorted(range(len(names)), key=lambda i: int(masks[i].sum())):
        labels[(labels < 0) & masks[i]] = i
    return names, labels


def face_region_labels(faces: np.ndarray, vertex_labels: np.ndarray) -> np.ndarray:
    """Per-face region label: the majority of its three vertices' labels, else its first vertex's.

    Parameters
    ----------
    faces : np.ndarray
        (F, 3) int.
    vertex_labels : np.ndarray
        (N,) int, -1 for none.

    Returns
    -------
    np.ndarray
        (F,) int labels.
    """
    lab = vertex_labels[np.asarray(faces)]
    majority = np.where(lab[:, 1] == lab[:, 2], lab[:, 1], lab[:, 0])
    return np.where(lab[:, 0] == lab[:, 1], lab[:, 0], majority)


@dataclass
class ErrorAccumulator:
    """Collects per-vertex and per-scan-point errors with their region labels for one stage."""

    v2v: list[np.ndarray]
    v2v_labels: list[np.ndarray]
    s2m: list[np.ndarray]
    s2m_labels: list[np.ndarray]
    s2m_head: list[np.ndarray]
    s2m_head_labels: list[np.ndarray]

    @classmethod
    def empty(cls) -> ErrorAccumulator:
        """An accumulator without errors."""
        return cls([], [], [], [], [], [])

    def add(
        self,
        v2v: np.ndarray,
        v2v_labels: np.ndarray,
        s2m: np.ndarray,
        s2m_labels: np.ndarray,
        extra: np.ndarray | None,
    ) -> None:
        """One frame's errors; ``extra`` (bool per scan point, True off the head) or None."""
        self.v2v.append(v2v)
        self.v2v_labels.append(v2v_labels)
        self.s2m.append(s2m)
        self.s2m_labels.append(s2m_labels)
        if extra is not None:
            self.s2m_head.append(s2m[~extra])
            self.s2m_head_labels.append(s2m_labels[~extra])

    def summary(self, names: list[str]) -> dict[str, object]:
        """``{"v2v", "s2m", "s2m_head", "regions": {name: {"v2v", "s2m", "s2m_head"}}}``
        statistics."""

        def cat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0)

        errors = {
            "v2v": (cat(self.v2v), cat(self.v2v_labels)),
            "s2m": (cat(self.s2m), cat(self.s2m_labels)),
            "s2m_head": (cat(self.s2m_head), cat(self.s2m_head_labels)),
        }
        report: dict[str, object] = {k: error_statistics(e) for k, (e, _) in errors.items()}
        report["regions"] = {
            name: {k: error_statistics(e[labels == i]) for k, (e, labels) in errors.items()}
            for i, name in enumerate(names)
        }
        return report


def frame_batch(
    sample: FrameSample,
    factor: int,
    view_mask: Tensor,
    device: str | torch.device = "cpu",
) -> MultiViewBatch:
    """A one-frame :class:`MultiViewBatch` on ``device`` from a dataset sample read at
    1/``factor`` size.

    The model resizes from the full calibrated size, so the intrinsics are scaled back up by
    ``factor`` (the datasets' pixel-area convention, which this inverts exactly) and
    ``full_size`` is the image size times ``factor``.
    """
    h, w = sample.images.shape[-2:]
    K = scale_intrinsics(sample.K, (h, w), (h * factor, w * factor))
    return MultiViewBatch(
        images=sample.images[None].to(device),
        K=K[None].to(device),
        Rt=sample.Rt[None].to(device),
        dist=sample.dist[None].to(device),
        view_mask=view_mask[None].to(device),
        full_size=(h * factor, w * factor),
    )


def random_view_mask(num_views: int, k: int | None, seed: int, index: int) -> Tensor:
    """(V,) bool mask keeping ``k`` views chosen at random (seeded per frame), all if ``None``.

    Raises
    ------
    ValueError
        If ``k`` is not in ``1..V``.
    """
    if k is None:
        return torch.ones(num_views, dtype=torch.bool)
    if not 1 <= k <= num_views:
        raise ValueError(f"--views must be in 1..{num_views}, got {k}")
    rng = np.random.default_rng([seed, index])
    mask = torch.zeros(num_views, dtype=torch.bool)
    mask[torch.as_tensor(rng.choice(num_views, size=k, replace=False))] = True
    return mask


def heat_colors(errors: np.ndarray, max_mm: float) -> np.ndarray:
    """(N,) errors -> (N, 3) float RGB in [0, 1]: blue (0) via green and yellow to red (max)."""
    t = np.clip(np.asarray(errors, dtype=np.float64) / max(max_mm, 1e-9), 0.0, 1.0)
    stops = np.array(
        [[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1, 0, 0]]
    )
    x = t * (len(stops) - 1)
    i = np.minimum(x.astype(np.int64), len(stops) - 2)
    f = (x - i)[:, None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.float32)


def evaluate(
    model: TempehModel,
    template: HeadTemplate,
    data: str | Path,
    split: str = "test",
    views: int | None = None,
    max_frames: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    scan_points: int = 20000,
    on_frame: Callable[[int, FrameSample, dict[str, np.ndarray]], None] | None = None,
) -> dict[str, object]:
    """Run ``model`` over a split and return the report.

    Parameters
    ----------
    model : TempehModel
        In eval mode on ``device``.
    template : HeadTemplate
        The model's template (regions, faces).
    data : str or Path
        Dataset root (the layout of :mod:`inference.synth`).
    split : str
        Frame list name (``lists/<split>.json``).
    views : int, optional
        Number of randomly chosen views per frame (seeded); all when omitted.
    max_frames : int, optional
        Evaluate at most this many frames (the first of the list).
    seed : int
        Seed of the view choice.
    device : str or torch.device
    scan_points : int
        Scan points sampled per frame for the scan-to-mesh distance.
    on_frame : callable, optional
        Called as ``on_frame(i, sample, {"coarse": (N, 3), "refined": (N, 3), "coarse_v2v":
        (N,), "refined_v2v": (N,)})`` after each frame (numpy, mm).

    Returns
    -------
    dict
        ``{"frames", "coarse", "refined"}`` as described in the module docstring.

    Raises
    ------
    DatasetError
        If the split is empty or a frame lacks its registration or scan, or the registration
        has another vertex count than the template.
    """
    factor = model.config.refine.image_resize_factor
    config = DatasetConfig.from_root(
        data,
        split,
        resize_factor=factor,
        normalize=False,
        augment=False,
        seed=seed,
        scan_points=scan_points,
        scan_tags=True,
    )
    dataset = MultiViewDataset(config)
    count = len(dataset) if max_frames is None else min(len(dataset), max_frames)
    if count == 0:
        raise DatasetError(f"split {split!r} holds no frames", path=config.list_file)
    names, vlabels = vertex_region_labels(template)
    flabels = torch.as_tensor(face_region_labels(template.faces, vlabels))
    faces = torch.as_tensor(template.faces, dtype=torch.long, device=device)
    acc = {stage: ErrorAccumulator.empty() for stage in STAGES}
    for i in range(count):
        sample = dataset[i]
        where = {"subject": sample.subject, "sequence": sample.sequence, "frame": sample.frame}
        if sample.registration is None or sample.scan is None:
            raise DatasetError("evaluation needs the registration and the scan", **where)
        if sample.registration.shape[0] != template.num_vertices:
            raise DatasetError(
                f"registration has {sample.registration.shape[0]} vertices, the model's "
                f"template {template.name!r} has {template.num_vertices}",
                **where,
            )
        mask = random_view_mask(sample.images.shape[0], views, seed, i)
        batch = frame_batch(sample, factor, mask, device)
        with torch.no_grad():
            out = model(batch)
        target = sample.registration[None].to(device)
        scan = sample.scan[None].to(device)
        extra = None if sample.scan_extra is None else sample.scan_extra.numpy()
        meshes: dict[str, np.ndarray] = {}
        for stage, verts in (("coarse", out.coarse), ("refined", out.refined)):
            v2v = vertex_errors(verts.float(), target)[0].cpu()
            s2m, fidx = scan_to_mesh(scan, verts.float(), faces)
            s2m_labels = flabels[fidx[0].cpu()].numpy()
            acc[stage].add(v2v.numpy(), vlabels, s2m[0].cpu().numpy(), s2m_labels, extra)
            meshes[stage] = verts[0].detach().cpu().numpy()
            meshes[f"{stage}_v2v"] = v2v.numpy()
        log.info("evaluated frame %d/%d %s", i + 1, count, where)
        if on_frame is not None:
            on_frame(i, sample, meshes)
    report: dict[str, object] = {"frames": count}
    for stage in STAGES:
        report[stage] = acc[stage].summary(names)
    return report


def write_report(report: dict[str, object], out_dir: str | Path) -> Path:
    """Write ``report.json`` into ``out_dir`` (created) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
