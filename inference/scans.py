"""Synthetic multi-view-stereo scans of a posed head, with the flaws of real MVS output.

A scan is made like this:

1. The head plus two surfaces that the template lacks (:func:`extra_surfaces`: a hair cap a
   few mm over the scalp and a shoulder block below the neck) are rendered as depth maps in
   every camera of the rig, at about ``depth_width`` pixels wide, back faces culled and **without
   lens distortion** (a distortion-free copy of each camera; the points are world mm, so the lens
   model used to find them does not matter as long as rendering and back-projection agree).
2. Depth pixels are back-projected with :func:`capture.camera.backproject`; a point is kept
   when it is seen (depth test within ``visibility_tolerance_mm``) by at least
   ``min_views`` cameras, as MVS needs two views to triangulate.
3. Points are subsampled, holes (random spherical blobs) are cut, Gaussian noise is added.

Each point is tagged as head or extra surface by comparing the combined depth map with the
head-only one, so tests can check the head points against the registration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import moderngl
import numpy as np

from capture.camera import Camera, Rig, backproject, depth, project
from inference.head_data import HeadTemplate
from render.mesh_renderer import vertex_normals
from render.offscreen import OffscreenRenderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanConfig:
    """How scans are simulated.

    Attributes
    ----------
    noise_sigma_mm : float
        Standard deviation of the isotropic Gaussian noise, mm.
    max_points : int
        Points kept after subsampling (fewer if fewer are visible).
    min_views : int
        Cameras that must see a point.
    visibility_tolerance_mm : float
        Depth-test tolerance, mm.
    depth_width : int
        Depth maps are rendered at about this width: the camera size divided by
        ``max(1, round(width / depth_width))``.
    holes : int
        Number of hole blobs cut out of the scan.
    hole_radius_mm : tuple[float, float]
        Range of the blob radii, mm.
    hair_offset_mm : float
        Distance of the hair cap above the scalp, mm (0 disables the cap).
    shoulders : bool
        Add the shoulder block below the neck.
    """

    noise_sigma_mm: float = 0.3
    max_points: int = 60000
    min_views: int = 2
    visibility_tolerance_mm: float = 2.0
    depth_width: int = 400
    holes: int = 6
    hole_radius_mm: tuple[float, float] = (5.0, 20.0)
    hair_offset_mm: float = 5.0
    shoulders: bool = True


@dataclass(frozen=True, eq=False)
class Scan:
    """A simulated scan.

    Attributes
    ----------
    points : np.ndarray
        (M, 3) float32 world mm, noisy.
    is_extra : np.ndarray
        (M,) bool, True for points on a surface that is not in the template (hair, shoulders).
    """

    points: np.ndarray
    is_extra: np.ndarray


def _hair_faces(template: HeadTemplate) -> np.ndarray:
    """Faces of the scalp: the ``scalp`` region if the template names one, else its top back."""
    if "scalp" in template.regions:
        mask = template.region_mask("scalp")
    else:
        v = template.vertices
        y0, y1 = v[:, 1].min(), v[:, 1].max()
        mask = (v[:, 1] > y0 + 0.7 * (y1 - y0)) & (v[:, 2] < np.median(v[:, 2]) + 20.0)
    return template.faces[mask[template.faces].all(axis=1)]


def _shoulders(center: np.ndarray, radii: tuple[float, float], height: float, n: int = 48):
    """A closed elliptic cylinder (axis y) whose top cap is centred at ``center`` (mm)."""
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    ring = np.stack([radii[0] * np.cos(a), np.zeros(n), radii[1] * np.sin(a)], axis=1)
    top, bottom = ring + center, ring + center - [0.0, height, 0.0]
    v = np.concatenate([top, bottom, [center, center - [0.0, height, 0.0]]])
    i = np.arange(n)
    j = (i + 1) % n
    side = np.concatenate([np.stack([i, j, n + i], 1), np.stack([j, n + j, n + i], 1)])
    cap_top = np.stack([np.full(n, 2 * n), j, i], 1)
    cap_bottom = np.stack([np.full(n, 2 * n + 1), n + i, n + j], 1)
    return v, np.concatenate([side, cap_top, cap_bottom]).astype(np.int64)


def extra_surfaces(
    vertices: np.ndarray, template: HeadTemplate, translation: np.ndarray, config: ScanConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Hair cap and shoulders for a posed head.

    Parameters
    ----------
    vertices : np.ndarray
        (N, 3) posed head vertices, mm.
    template : HeadTemplate
        Its topology and regions.
    translation : np.ndarray
        (3,) the head's translation, mm (the shoulders follow it, not the head rotation).
    config : ScanConfig
        Offsets and switches.

    Returns
    -------
    (np.ndarray, np.ndarray)
        (K, 3) float64 vertices, mm, and (G, 3) int64 faces of the extra surfaces (may be empty).
    """
    parts_v, parts_f, offset = [], [], 0
    if config.hair_offset_mm > 0:
        faces = _hair_faces(template)
        if len(faces):
            normals = vertex_normals(vertices, template.faces).astype(np.float64)
            used = np.unique(faces)
            remap = np.full(len(vertices), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            parts_v.append(vertices[used] + config.hair_offset_mm * normals[used])
            parts_f.append(remap[faces])
            offset += len(used)
    if config.shoulders:
        lowest = template.vertices[:, 1].min()
        center = np.array([0.0, lowest - 10.0, -20.0]) + np.asarray(translation, dtype=np.float64)
        sv, sf = _shoulders(center, (190.0, 110.0), 150.0)
        parts_v.append(sv)
        parts_f.append(sf + offset)
    if not parts_v:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(parts_v), np.concatenate(parts_f)


def _pinhole(camera: Camera, downscale: int) -> Camera:
    cam = camera.scaled(downscale) if downscale != 1 else camera
    return Camera(cam.name, cam.width, cam.height, cam.K, np.zeros(5), cam.R, cam.t, cam.serial)


def _lookup(depth_map: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Depth at the nearest pixel of (P, 2) pixel positions; 0 outside the image."""
    h, w = depth_map.shape
    u = np.rint(uv[:, 0]).astype(np.int64)
    v = np.rint(uv[:, 1]).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    out = np.zeros(len(uv), dtype=np.float64)
    out[inside] = depth_map[v[inside], u[inside]]
    return out


def simulate_scan(
    rig: Rig,
    vertices: np.ndarray,
    template: HeadTemplate,
    translation: np.ndarray,
    rng: np.random.Generator,
    config: ScanConfig | None = None,
    ctx: moderngl.Context | None = None,
) -> Scan:
    """Simulate the MVS scan of a posed head seen by ``rig``.

    Parameters
    ----------
    rig : Rig
        Cameras, full resolution, world mm.
    vertices : np.ndarray
        (N, 3) posed head vertices, mm.
    template : HeadTemplate
        Faces and regions of the head.
    translation : np.ndarray
        (3,) head translation, mm (places the shoulders).
    rng : np.random.Generator
        Source of subsampling, holes and noise.
    config : ScanConfig, optional
        Simulation settings.
    ctx : moderngl.Context, optional
        GL context current on this thread to render with (e.g. the image renderer's, since
        a second context would not be current); default a temporary one. The scan is the same
        in any context: the depth pass sets its own state (back faces culled).

    Returns
    -------
    Scan
        (M, 3) float32 points in mm and their extra-surface tags.
    """
    config = ScanConfig() if config is None else config
    head_v = np.asarray(vertices, dtype=np.float64)
    ev, ef = extra_surfaces(head_v, template, translation, config)
    all_v = np.concatenate([head_v, ev])
    all_f = np.concatenate([template.faces, ef + len(head_v)])
    cams = [_pinhole(c, max(1, round(c.width / config.depth_width))) for c in rig]
    maps, head_maps = [], []
    renderers: dict[tuple[int, int], OffscreenRenderer] = {}
    try:
        for cam in cams:
            r = renderers.get(cam.image_size)
            if r is None:
                r = OffscreenRenderer(cam.width, cam.height, ctx=ctx)
                renderers[cam.image_size] = r
            # back faces culled: MVS sees outer surfaces, and the inside of the open neck or
            # of the hair cap stays empty (the synthetic datasets have always been made so)
            maps.append(r.render_depth(cam, all_v, all_f, cull_back_faces=True))
            head_maps.append(r.render_depth(cam, head_v, template.faces, cull_back_faces=True))
    finally:
        for r in renderers.values():
            r.release()
    per_view = max(1, 3 * config.max_points // max(1, len(cams)))
    points, extra = [], []
    for i, cam in enumerate(cams):
        vs, us = np.nonzero(maps[i] > 0)
        if len(us) > per_view:
            keep = rng.choice(len(us), per_view, replace=False)
            vs, us = vs[keep], us[keep]
        z = maps[i][vs, us].astype(np.float64)
        pts = backproject(cam, np.stack([us, vs], axis=1).astype(np.float64), z)
        seen = np.zeros(len(pts), dtype=np.int64)
        for other in cams:
            d = depth(other, pts)
            ref = _lookup(maps[cams.index(other)], project(other, pts))
            seen += (ref > 0) & (np.abs(ref - d) < config.visibility_tolerance_mm)
        ok = seen >= config.min_views
        head_z = head_maps[i][vs, us].astype(np.float64)
        points.append(pts[ok])
        extra.append((np.abs(head_z - z) > 0.5 * config.visibility_tolerance_mm)[ok])
    pts = np.concatenate(points) if points else np.zeros((0, 3))
    tag = np.concatenate(extra) if extra else np.zeros(0, dtype=bool)
    if len(pts) > config.max_points:
        keep = rng.choice(len(pts), config.max_points, replace=False)
        pts, tag = pts[keep], tag[keep]
    if config.holes and len(pts):
        centres = pts[rng.choice(len(pts), min(config.holes, len(pts)), replace=False)]
        radii = rng.uniform(*config.hole_radius_mm, len(centres))
        keep = np.ones(len(pts), dtype=bool)
        for c, r in zip(centres, radii, strict=True):
            keep &= np.linalg.norm(pts - c, axis=1) > r
        pts, tag = pts[keep], tag[keep]
    pts = pts + rng.normal(0.0, config.noise_sigma_mm, pts.shape)
    log.debug("scan: %d points (%d on extra surfaces)", len(pts), int(tag.sum()))
    return Scan(points=pts.astype(np.float32), is_extra=tag)


def _point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Distance from (P, 3) points to (P, 3)-cornered triangles (Ericson's closest point)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    v, w = vb / denom, vc / denom
    plane = np.linalg.norm(p - (a + ab * v[:, None] + ac * w[:, None]), axis=1)
    # Outside the face the closest point lies on one of the three edge segments.
    edge = np.full(len(p), np.inf)
    for e0, e1 in ((a, b), (b, c), (c, a)):
        seg = e1 - e0
        s = np.clip(((p - e0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-30), 0, 1)
        edge = np.minimum(edge, np.linalg.norm(p - (e0 + seg * s[:, None]), axis=1))
    outside = (va < 0) | (vb < 0) | (vc < 0)
    return np.where(outside, edge, plane)


def point_to_surface_distance(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 24
) -> np.ndarray:
    """Unsigned distance (mm) from (P, 3) points to a triangle mesh.

    Exact over the ``candidates`` faces whose centroids are nearest to each point, which is
    exact in practice for points near a well-sampled surface.

    Returns
    -------
    np.ndarray
        (P,) float64 distances, same unit as the inputs.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    k = min(candidates, len(f))
    _, idx = cKDTree(tri.mean(axis=1)).query(p, k=k)
    idx = idx.reshape(len(p), k)
    best = np.full(len(p), np.inf)
    for j in range(k):
        t = tri[idx[:, j]]
        best = np.minimum(best, _point_triangle_distance(p, t[:, 0], t[:, 1], t[:, 2]))
    return best
