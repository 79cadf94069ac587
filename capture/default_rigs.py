"""Deterministic built-in rigs, shipped as ``resources/rigs/<name>.json``.

* ``default16``: 16 grayscale 1600×1200 cameras like the FaMoS capture rig: 8 stereo pods
  ``11`` … ``18`` (cameras ``<pod>_A`` left, ``<pod>_B`` right, 100 mm apart), spread over the
  front half of the head (azimuth −90° … +90°) at two elevations (+20° / −10°, alternating),
  pod centres 1000 mm from the head centre at the world origin. World frame: y up, the face
  looks along +z. Every camera looks at the origin. ``fx = fy = 3200`` px, so a 250 mm wide
  head spans half the image width at 1 m. Principal points and small distortions vary per
  camera from a fixed seed. Serials ``0815-0000`` … ``0815-0015`` match the Basler emulator.
* ``test4``: 4 cameras at 64×48 for tests: pods 11 and 12 at azimuth −30° and +30°
  (elevation 0, 1000 mm) with a wide 530 mm baseline, so the cameras sit at about −45°, −15°,
  +15° and +45°; ``fx = fy = 128`` px, principal point at the image centre, no distortion.

``python -m capture.default_rigs`` regenerates both files byte for byte.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from capture.camera import Camera, Rig, look_at
from capture.errors import CalibrationError
from resources import resource_path

log = logging.getLogger(__name__)

SHIPPED_RIGS = ("default16", "test4")
HEAD_CENTER = (0.0, 0.0, 0.0)
UP = (0.0, 1.0, 0.0)


def _pod_cameras(
    pod: int,
    azimuth_deg: float,
    elevation_deg: float,
    distance: float,
    baseline: float,
    size: tuple[int, int],
    focal: float,
    serial_start: int,
    rng: np.random.Generator | None,
) -> list[Camera]:
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    pod_center = distance * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    right = look_at(pod_center, HEAD_CENTER, UP)[0]  # camera x axis of the pod
    cams = []
    for j, (suffix, offset) in enumerate((("A", -0.5), ("B", 0.5))):
        center = pod_center + offset * baseline * right
        R = look_at(center, HEAD_CENTER, UP)
        w, h = size
        if rng is None:
            cx, cy, dist = (w - 1) / 2, (h - 1) / 2, np.zeros(5)
        else:
            cx = round((w - 1) / 2 + rng.uniform(-10, 10), 3)
            cy = round((h - 1) / 2 + rng.uniform(-10, 10), 3)
            dist = np.round(
                [
                    rng.uniform(-0.05, 0.05),
                    rng.uniform(-0.1, 0.1),
                    rng.uniform(-5e-4, 5e-4),
                    rng.uniform(-5e-4, 5e-4),
                    0.0,
                ],
                6,
            )
        K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
        cams.append(
            Camera(f"{pod}_{suffix}", w, h, K, dist, R, -R @ center, f"0815-{serial_start + j:04d}")
        )
    return cams


def make_default16() -> Rig:
    """The 16-camera FaMoS-like rig (see the module docstring)."""
    rng = np.random.default_rng(20231116)
    cams: list[Camera] = []
    for i, az in enumerate(np.linspace(-90.0, 90.0, 8)):
        el = 20.0 if i % 2 == 0 else -10.0
        cams += _pod_cameras(11 + i, float(az), el, 1000.0, 100.0, (1600, 1200), 3200.0, 2 * i, rng)
    return Rig(tuple(cams), "default16")


def make_test4() -> Rig:
    """The small 4-camera test rig (see the module docstring)."""
    cams: list[Camera] = []
    for i, az in enumerate((-30.0, 30.0)):
        cams += _pod_cameras(11 + i, az, 0.0, 1000.0, 530.0, (64, 48), 128.0, 2 * i, None)
    return Rig(tuple(cams), "test4")


MAKERS = {"default16": make_default16, "test4": make_test4}


def shipped_rig_path(name: str) -> Path:
    """Path of the shipped rig file ``resources/rigs/<name>.json``."""
    if name not in SHIPPED_RIGS:
        raise CalibrationError(f"unknown shipped rig {name!r}; expected one of {SHIPPED_RIGS}")
    return resource_path("rigs", name + ".json")


def load_shipped_rig(name: str) -> Rig:
    """Read a shipped rig (``"default16"`` or ``"test4"``)."""
    from capture.rig_json import read_rig_json

    return read_rig_json(shipped_rig_path(name))


def write_shipped_rigs(folder: Path | None = None) -> list[Path]:
    """Regenerate every shipped rig into ``folder`` (default: ``resources/rigs``)."""
    from capture.rig_json import write_rig_json

    folder = resource_path("rigs") if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in MAKERS.items():
        path = folder / f"{name}.json"
        write_rig_json(make(), path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_shipped_rigs(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(p)
