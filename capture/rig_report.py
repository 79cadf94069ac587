"""Plausibility report of a rig: baselines, the point the cameras look at, its visibility."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from capture.camera import Rig, depth, project, validate_rig
from capture.errors import CalibrationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RigReport:
    """What :func:`check_rig` found.

    Attributes
    ----------
    name : str
        Rig name.
    cameras : list[dict]
        Per camera: ``name``, ``serial``, ``image_size`` [W, H], ``fx``, ``fy``, ``center``
        (3,) mm, ``distance_to_rig_center`` mm, ``rig_center_pixel`` [u, v],
        ``rig_center_inside`` bool.
    baselines : np.ndarray
        (N, N) distances between camera centres, mm.
    stereo_pairs : dict[str, float]
        Pod name → distance between ``<pod>_A`` and ``<pod>_B``, mm.
    rig_center : np.ndarray
        (3,) world point closest to all optical axes (least squares), mm.
    problems : list[str]
        Human-readable problems; empty for a good rig.
    """

    name: str
    cameras: list[dict]
    baselines: np.ndarray
    stereo_pairs: dict[str, float]
    rig_center: np.ndarray
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary of the report."""
        return {
            "name": self.name,
            "ok": self.ok,
            "cameras": self.cameras,
            "baselines_mm": self.baselines.tolist(),
            "stereo_pairs_mm": self.stereo_pairs,
            "rig_center_mm": self.rig_center.tolist(),
            "problems": list(self.problems),
        }


def axes_center(centers: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(3,) point minimising the summed squared distance to N lines ``c_i + s d_i``.

    Parameters
    ----------
    centers, directions : np.ndarray
        (N, 3) points on the lines and unit directions.
    """
    eye = np.eye(3)
    proj = eye[None] - directions[:, :, None] * directions[:, None, :]  # (N, 3, 3)
    A = proj.sum(axis=0)
    b = np.einsum("nij,nj->i", proj, centers)
    if np.linalg.cond(A) > 1e12:
        raise CalibrationError("optical axes are parallel; the rig centre is undefined")
    return np.linalg.solve(A, b)


def check_rig(rig: Rig) -> RigReport:
    """Measure ``rig`` and list what looks wrong (validation errors, rig centre not seen)."""
    problems: list[str] = []
    try:
        validate_rig(rig)
    except CalibrationError as exc:
        problems.append(str(exc))
    centers = np.stack([c.center for c in rig])
    directions = np.stack([c.R[2] for c in rig])  # optical axis = Rᵀ [0, 0, 1]
    baselines = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    try:
        rig_center = axes_center(centers, directions)
    except CalibrationError as exc:
        problems.append(str(exc))
        rig_center = np.full(3, np.nan)
    cams = []
    for i, cam in enumerate(rig):
        uv = project(cam, rig_center[None])[0]
        z = depth(cam, rig_center[None])[0]
        inside = bool(z > 0 and 0 <= uv[0] <= cam.width - 1 and 0 <= uv[1] <= cam.height - 1)
        if not inside:
            problems.append(
                f"camera {cam.name!r}: the rig centre projects to ({uv[0]:.1f}, {uv[1]:.1f}) "
                f"at depth {z:.1f} mm, outside its {cam.width}x{cam.height} image"
            )
        cams.append(
            {
                "name": cam.name,
                "serial": cam.serial,
                "image_size": [int(cam.width), int(cam.height)],
                "fx": float(cam.K[0, 0]),
                "fy": float(cam.K[1, 1]),
                "center": centers[i].tolist(),
                "distance_to_rig_center": float(np.linalg.norm(centers[i] - rig_center)),
                "rig_center_pixel": uv.tolist(),
                "rig_center_inside": inside,
            }
        )
    index = {n: i for i, n in enumerate(rig.names)}
    pairs = {
        n[:-2]: float(baselines[i, index[n[:-2] + "_B"]])
        for n, i in index.items()
        if n.endswith("_A") and n[:-2] + "_B" in index
    }
    return RigReport(rig.name, cams, baselines, pairs, rig_center, problems)


def format_report(report: RigReport) -> str:
    """The report as text for the terminal."""
    c = report.rig_center
    lines = [
        f"rig {report.name!r}: {len(report.cameras)} cameras",
        f"rig centre (closest to all optical axes): ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm",
        f"{'camera':<10} {'serial':<12} {'size':>10} {'fx':>9} {'dist mm':>9} "
        f"{'centre px':>18} inside",
    ]
    for cam in report.cameras:
        u, v = cam["rig_center_pixel"]
        size = "{}x{}".format(*cam["image_size"])
        lines.append(
            f"{cam['name']:<10} {cam['serial']:<12} {size:>10} {cam['fx']:>9.1f} "
            f"{cam['distance_to_rig_center']:>9.1f} {f'({u:.1f}, {v:.1f})':>18} "
            f"{'yes' if cam['rig_center_inside'] else 'NO'}"
        )
    if len(report.cameras) > 1:
        off = report.baselines[~np.eye(len(report.baselines), dtype=bool)]
        lines.append(f"baselines: min {off.min():.1f} mm, max {off.max():.1f} mm")
    for pod, b in report.stereo_pairs.items():
        lines.append(f"stereo pair {pod}: baseline {b:.1f} mm")
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  - {p}" for p in report.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)
