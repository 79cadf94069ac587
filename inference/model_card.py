"""The accuracy table of a model: test split, dropped views, yaw, edge, jitter (issue 5).

:func:`model_card` runs :func:`inference.evaluation.evaluate` over the recipe's held-out sets
(see :mod:`inference.training.default_recipe`) and measures temporal behaviour:

* **jitter**: on a still head (only sensor noise and speckle change), the standard deviation of
  each output vertex over the frames, mm (the length of its per-axis standard deviations);
* **filtered**: the refined output through the live display's One-Euro filter (1 Hz), to
  report jitter with and without it;
* **pose**: on the test set, how much of the error is the head's placement: each output fitted
  to its registration by a similarity transform (scale, rotation, translation), the scale and
  rotation it needs and the vertex error left after it;
* **roughness**: on the same frames, :func:`surface_roughness` of the output and of the
  registration;
* **pull-in**: on the first of those frames, whether the refinement finds the surface from a
  known start: the registration moved 3 mm along its normals, refined (:func:`pull_in`);
* **talking**: on consecutive frames of a talking head, the per-frame median vertex error and the
  motion error ``|(p_t+1 − p_t) − (g_t+1 − g_t)|``: how much the frame-to-frame motion of the
  output differs from the true motion, mm.

:func:`markdown_table` formats the result for the README's model card.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from capture.rig_json import read_rig_json
from inference.evaluation import (
    STAGES,
    error_statistics,
    evaluate,
    frame_batch,
    vertex_region_labels,
)
from inference.geometry import vertex_normals
from inference.head_data import HeadTemplate, unique_edges
from inference.network.model import TempehModel
from inference.procedural.fields import smooth_field
from inference.temporal_filter import OneEuroFilter

log = logging.getLogger(__name__)

ACCURACY_ROWS = (
    ("test, 16 views", "test_data", None),
    ("test, 12 views", "test_data", 12),
    ("test, 8 views", "test_data", 8),
    ("yaw ±45°", "test_yaw45", None),
    ("near the edge", "test_edge", None),
)
"""(row label, recipe sub-folder, views kept) of the accuracy table."""

REGION_GROUPS = ("face", "nostrils", "lips", "eye_region", "ear", "scalp", "neck")
"""The per-region table lists the template's regions whose names contain one of these, in this
order (``left_eye_region`` and ``right_eye_region`` under ``eye_region``, and so on): issue 5's
regions, and the nostrils, a region of the procedural template's face that the evaluation
counts apart from the face."""


def temporal_stats(predicted: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    """Jitter and motion statistics of a sequence.

    Parameters
    ----------
    predicted, truth : np.ndarray
        (T, N, 3) output and ground-truth vertices, mm, T ≥ 2.

    Returns
    -------
    dict
        ``jitter`` (per-vertex standard deviation over time of the output, mm),
        ``truth_motion`` (the same of the ground truth), ``motion_error`` (per vertex and
        frame pair), ``frame_v2v_median`` (one median per frame) — each an
        :func:`inference.evaluation.error_statistics` record, the last also with ``max_mm``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    g = np.asarray(truth, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[0] < 2 or p.shape[2] != 3:
        raise ValueError(f"need two (T>=2, N, 3) arrays, got {p.shape} and {g.shape}")
    jitter = np.linalg.norm(p.std(axis=0), axis=-1)
    truth_motion = np.linalg.norm(g.std(axis=0), axis=-1)
    motion = np.linalg.norm(np.diff(p, axis=0) - np.diff(g, axis=0), axis=-1)
    per_frame = np.median(np.linalg.norm(p - g, axis=-1), axis=1)
    frames = error_statistics(per_frame)
    frames["max_mm"] = float(per_frame.max())
    return {
        "jitter": error_statistics(jitter),
        "truth_motion": error_statistics(truth_motion),
        "motion_error": error_statistics(motion.ravel()),
        "frame_v2v_median": frames,
    }


def similarity_fit(
    predicted: np.ndarray, truth: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``truth ≈ s·R·predicted + t`` (Umeyama): returns ``(s, R, t)``.

    Parameters
    ----------
    predicted, truth : np.ndarray
        (N, 3) corresponding points, mm.
    """
    p = np.asarray(predicted, dtype=np.float64)
    g = np.asarray(truth, dtype=np.float64)
    mp, mg = p.mean(axis=0), g.mean(axis=0)
    P, G = p - mp, g - mg
    U, S, Vt = np.linalg.svd(G.T @ P)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    R = U @ np.diag(d) @ Vt
    s = float((S * d).sum() / (P**2).sum())
    return s, R, mg - s * R @ mp


def pose_errors(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How far one output is from its registration in placement, and what remains after.

    Returns
    -------
    dict
        ``scale_pct`` (the output's size error: ``(1/s − 1)·100``, negative when too small),
        ``rotation_deg``, ``translation_mm`` (of the centroid) and ``aligned_v2v_mm`` (median
        vertex error after the fit).
    """
    s, R, t = similarity_fit(predicted, truth)
    aligned = s * np.asarray(predicted, dtype=np.float64) @ R.T + t
    angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))
    centroid = np.linalg.norm(np.mean(predicted, axis=0) - np.mean(truth, axis=0))
    return {
        "scale_pct": (1.0 / s - 1.0) * 100.0,
        "rotation_deg": float(angle),
        "translation_mm": float(centroid),
        "aligned_v2v_mm": float(np.median(np.linalg.norm(aligned - truth, axis=-1))),
    }


def surface_roughness(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Median distance of a vertex from the mean of its mesh neighbours, mm (the size of the
    umbrella Laplacian): high-frequency noise that vertex errors alone do not show."""
    v = np.asarray(vertices, dtype=np.float64)
    edges = unique_edges(faces)
    neighbours_mean = smooth_field(v, edges, iterations=1, rate=1.0)
    used = np.bincount(edges.ravel(), minlength=len(v)) > 0
    return float(np.median(np.linalg.norm(v[used] - neighbours_mean[used], axis=1)))


POSE_KEYS = ("scale_pct", "rotation_deg", "translation_mm", "aligned_v2v_mm", "roughness_mm")


def _pose_summary(
    frames: list[dict[str, float]], keys: tuple[str, ...] = POSE_KEYS
) -> dict[str, dict[str, float]]:
    out = {}
    for key in keys:
        values = np.array([f[key] for f in frames])
        out[key] = {
            "median": float(np.median(values)),
            "p90_abs": float(np.percentile(np.abs(values), 90)),
        }
    return out


PULL_IN_MM = 3.0
"""How far :func:`pull_in` moves the registration along its normals, mm."""

PULL_IN_FRAMES = 12
"""Frames of the first accuracy row that :func:`pull_in` is measured on."""

PULL_IN_KEYS = (
    "outwards_left_mm",
    "inwards_left_mm",
    "outwards_left_skin_mm",
    "inwards_left_skin_mm",
    "unmoved_v2v_mm",
)

PULL_IN_SKIN = ("face", "lips", "left_eye_region", "right_eye_region")
"""Regions whose images show the surface the registration lies on. Elsewhere the images show
another surface: the synthetic scalp is under a hair cap 5 mm above it (as real scalps are under
hair), the eyeballs are behind the lids, so the refinement rightly stops short there."""


def pull_in(
    model: TempehModel, template: HeadTemplate, sample, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """How much of a known error the refinement removes, on one frame (all views).

    The registration is moved :data:`PULL_IN_MM` outwards and inwards along its vertex normals
    and refined from there (:meth:`TempehModel.refine_from`): ``outwards_left_mm`` and
    ``inwards_left_mm`` are the median offsets along the normals left afterwards (3 = nothing
    found, 0 = the surface found, negative = overshot); the ``_skin_`` keys take the medians
    over the :data:`PULL_IN_SKIN` regions only. ``unmoved_v2v_mm`` is the median vertex error
    after refining the registration itself (what the refinement adds to a right answer).
    """
    factor = model.config.refine.image_resize_factor
    every_view = torch.ones(sample.images.shape[0], dtype=torch.bool)
    batch = frame_batch(sample, factor, every_view, device)
    truth = sample.registration[None].float().to(device)
    faces = torch.as_tensor(template.faces, dtype=torch.long, device=device)
    normals = vertex_normals(truth, faces)
    names, labels = vertex_region_labels(template)
    skin = torch.as_tensor(np.isin(labels, [names.index(r) for r in PULL_IN_SKIN]), device=device)
    out = {}
    with torch.no_grad():
        for way, sign in (("outwards", 1.0), ("inwards", -1.0)):
            refined = model.refine_from(batch, truth + sign * PULL_IN_MM * normals).float()
            left = sign * ((refined - truth) * normals).sum(-1)[0]
            out[f"{way}_left_mm"] = float(left.median())
            out[f"{way}_left_skin_mm"] = float(left[skin].median())
        refined = model.refine_from(batch, truth).float()
        out["unmoved_v2v_mm"] = float((refined - truth).norm(dim=-1).median())
    return out


def sequence_outputs(
    model: TempehModel,
    template: HeadTemplate,
    data: str | Path,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """(T, N, 3) coarse, refined and ground-truth vertices of a dataset's ``test`` list, mm."""
    out: dict[str, list[np.ndarray]] = {"coarse": [], "refined": [], "truth": []}

    def keep(i, sample, meshes) -> None:
        out["coarse"].append(meshes["coarse"])
        out["refined"].append(meshes["refined"])
        out["truth"].append(sample.registration.numpy())

    evaluate(model, template, data, "test", device=device, scan_points=64, on_frame=keep)
    return {k: np.stack(v) for k, v in out.items()}


def model_card(
    model: TempehModel,
    template: HeadTemplate,
    recipe_root: str | Path,
    device: str | torch.device = "cpu",
    scan_points: int = 5000,
    max_frames: int | None = None,
) -> dict[str, object]:
    """Accuracy rows (:data:`ACCURACY_ROWS`) and temporal statistics of ``model``.

    Parameters
    ----------
    model : TempehModel
        In eval mode on ``device``.
    template : HeadTemplate
    recipe_root : path
        A folder written by :func:`inference.training.default_recipe.run_recipe`.
    device : str or torch.device
    scan_points : int
        Scan points per frame for the scan-to-mesh distance.
    max_frames : int, optional
        Frames per accuracy row (all when omitted).

    Returns
    -------
    dict
        ``{"rows": {label: evaluate-report}, "pose": {stage: {key: {"median", "p90_abs"}}}
        (:func:`pose_errors` and ``roughness_mm`` over the first row's frames, plus
        "truth_roughness_mm"), "jitter_static": {stage: stats},
        "talking": {stage: stats}}``; a row that needs more views than the rig has is
        ``{"frames": 0, "skipped": reason}``.
    """
    root = Path(recipe_root)
    rows = {}
    poses: dict[str, list[dict[str, float]]] = {stage: [] for stage in STAGES}
    truth_roughness: list[float] = []

    pulls: list[dict[str, float]] = []

    def pose(i: int, sample, meshes: dict[str, np.ndarray]) -> None:
        if i < PULL_IN_FRAMES:
            pulls.append(pull_in(model, template, sample, device))
        truth = sample.registration.numpy()
        for stage in STAGES:
            errors = pose_errors(meshes[stage], truth)
            errors["roughness_mm"] = surface_roughness(meshes[stage], template.faces)
            poses[stage].append(errors)
        truth_roughness.append(surface_roughness(truth, template.faces))

    for label, folder, views in ACCURACY_ROWS:
        log.info("model card: %s", label)
        cameras = len(read_rig_json(root / folder / "rig.json"))
        if views is not None and views >= cameras:
            rows[label] = {"frames": 0, "skipped": f"the rig has {cameras} cameras"}
            continue
        rows[label] = evaluate(
            model,
            template,
            root / folder,
            "test",
            views=views,
            max_frames=max_frames,
            device=device,
            scan_points=scan_points,
            on_frame=pose if label == ACCURACY_ROWS[0][0] else None,
        )
    card: dict[str, object] = {"rows": rows}
    if poses["coarse"]:
        card["pose"] = {stage: _pose_summary(poses[stage]) for stage in STAGES}
        card["pose"]["truth_roughness_mm"] = float(np.median(truth_roughness))
        card["pull_in"] = {
            "offset_mm": PULL_IN_MM,
            "frames": len(pulls),
            **_pose_summary(pulls, PULL_IN_KEYS),
        }
    for key, folder in (("jitter_static", "test_static"), ("talking", "test_talk")):
        log.info("model card: %s", key)
        seq = sequence_outputs(model, template, root / folder, device)
        seq["refined_filtered"] = filtered(seq["refined"], SEQUENCE_FPS)
        card[key] = {
            stage: temporal_stats(seq[stage], seq["truth"]) for stage in (*STAGES, FILTERED)
        }
    return card


SEQUENCE_FPS = 30.0
"""Frame rate of the temporal sets (consecutive frames of the synthetic performer)."""

FILTERED = "refined_filtered"
"""The refined output through the live display's One-Euro filter (:data:`FILTER_HZ`)."""

FILTER_HZ = 1.0
"""Cut-off at rest of that filter, Hz (``tempeh live --filter 1``)."""


def filtered(vertices: np.ndarray, fps: float, cutoff_hz: float = FILTER_HZ) -> np.ndarray:
    """(T, N, 3) vertices through :class:`inference.temporal_filter.OneEuroFilter`."""
    smooth = OneEuroFilter(cutoff_hz)
    return np.stack([smooth(v, i / fps) for i, v in enumerate(vertices)])


def _cell(stats: dict, key: str = "median_mm") -> str:
    value = stats.get(key)
    return "–" if value is None else f"{value:.2f}"


def markdown_table(card: dict[str, object]) -> str:
    """The model card's tables as Markdown (accuracy, per region, temporal)."""
    rows = card["rows"]
    lines = [
        "| set | frames | coarse v2v median / p90 (mm) | refined v2v median / p90 (mm) "
        "| refined s2m median (mm) | on the head (mm) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, rep in rows.items():
        if "skipped" in rep:
            lines.append(f"| {label} | 0 | skipped: {rep['skipped']} | | | |")
            continue
        c, r = rep["coarse"], rep["refined"]
        head = _cell(r.get("s2m_head", {}))
        lines.append(
            f"| {label} | {rep['frames']} | {_cell(c['v2v'])} / {_cell(c['v2v'], 'p90_mm')} "
            f"| {_cell(r['v2v'])} / {_cell(r['v2v'], 'p90_mm')} | {_cell(r['s2m'])} | {head} |"
        )
    first = next(iter(rows.values()))
    lines += [
        "",
        "| region (test, 16 views) | coarse v2v | refined v2v | coarse s2m | refined s2m "
        "| coarse s2m, head | refined s2m, head |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(first["coarse"]["regions"])
    ordered = [n for group in REGION_GROUPS for n in names if group in n and "eyeball" not in n]
    for name in dict.fromkeys(ordered):
        c, r = first["coarse"]["regions"][name], first["refined"]["regions"][name]
        if c["v2v"]["median_mm"] is None:
            continue
        lines.append(
            f"| {name} | {_cell(c['v2v'])} | {_cell(r['v2v'])} | {_cell(c['s2m'])} "
            f"| {_cell(r['s2m'])} | {_cell(c.get('s2m_head', {}))} "
            f"| {_cell(r.get('s2m_head', {}))} |"
        )
    if "pose" in card:
        lines += [
            "",
            f"| placement ({next(iter(rows))}; per frame: median / p90 of the magnitude) "
            "| coarse | refined |",
            "|---|---:|---:|",
        ]
        for key, label in zip(
            POSE_KEYS,
            (
                "size error (%)",
                "rotation error (°)",
                "centroid error (mm)",
                "v2v left after a best-fit similarity (mm)",
                f"roughness (mm; registrations: {card['pose']['truth_roughness_mm']:.2f})",
            ),
            strict=True,
        ):
            cells = [
                f"{card['pose'][s][key]['median']:.2f} / {card['pose'][s][key]['p90_abs']:.2f}"
                for s in STAGES
            ]
            lines.append(f"| {label} | {' | '.join(cells)} |")
    if "pull_in" in card:
        pull = card["pull_in"]
        lines += [
            "",
            f"| refinement from the registration moved {pull['offset_mm']:g} mm along its "
            f"normals ({pull['frames']} frames) | median / p90 of the magnitude (mm) |",
            "|---|---:|",
        ]
        for key, label in zip(
            PULL_IN_KEYS,
            (
                "moved outwards: offset left along the normals",
                "moved inwards: offset left along the normals",
                "moved outwards: offset left, face, lips and eye regions",
                "moved inwards: offset left, face, lips and eye regions",
                "not moved: v2v after refining",
            ),
            strict=True,
        ):
            lines.append(f"| {label} | {pull[key]['median']:.2f} / {pull[key]['p90_abs']:.2f} |")
    lines += [
        "",
        f"| temporal (100 frames) | coarse | refined | refined + One-Euro {FILTER_HZ:g} Hz |",
        "|---|---:|---:|---:|",
    ]
    for key, label, stat in (
        ("jitter_static", "still head: jitter median / p90 (mm)", "jitter"),
        ("talking", "talking: motion error median / p90 (mm)", "motion_error"),
        ("talking", "talking: per-frame v2v median, worst frame (mm)", "frame_v2v_median"),
    ):
        t = card[key]
        second = "p90_mm" if stat != "frame_v2v_median" else "max_mm"
        cells = [
            f"{_cell(t[s][stat])} / {_cell(t[s][stat], second)}" if s in t else "–"
            for s in (*STAGES, FILTERED)
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "ACCURACY_ROWS",
    "POSE_KEYS",
    "REGION_GROUPS",
    "markdown_table",
    "model_card",
    "pose_errors",
    "pull_in",
    "sequence_outputs",
    "similarity_fit",
    "surface_roughness",
    "temporal_stats",
]
