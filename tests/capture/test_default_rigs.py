"""The shipped rigs are reproducible and look at the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capture.camera import Camera, Rig
from capture.default_rigs import (
    SHIPPED_RIGS,
    load_shipped_rig,
    shipped_rig_path,
    write_shipped_rigs,
)
from capture.errors import CalibrationError
from capture.rig_report import check_rig, format_report


def test_generator_reproduces_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    written = write_shipped_rigs(tmp_path)
    assert sorted(p.stem for p in written) == sorted(SHIPPED_RIGS)
    for path in written:
        assert path.read_bytes() == shipped_rig_path(path.stem).read_bytes(), path.name
    again = write_shipped_rigs(tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_default16_layout() -> None:
    rig = load_shipped_rig("default16")
    assert rig.names == [f"{pod}_{s}" for pod in range(11, 19) for s in "AB"]
    assert [c.serial for c in rig] == [f"0815-{i:04d}" for i in range(16)]
    assert all(c.image_size == (1600, 1200) for c in rig)
    report = check_rig(rig)
    assert report.ok, report.problems
    np.testing.assert_allclose(report.rig_center, 0.0, atol=1e-6)
    assert all(c["rig_center_inside"] for c in report.cameras)
    assert all(abs(b - 100.0) < 1e-9 for b in report.stereo_pairs.values())
    assert len(report.stereo_pairs) == 8
    distances = [np.linalg.norm(c.center) for c in rig]
    assert min(distances) > 950 and max(distances) < 1050
    fx = rig[0].K[0, 0]
    assert 0.4 < 250.0 * fx / 1000.0 / 1600 < 0.6  # a 25 cm head spans about half the width
    assert all(np.abs(c.dist).max() <= 0.1 for c in rig)
    azimuths = [np.degrees(np.arctan2(c.center[0], c.center[2])) for c in rig]
    assert min(azimuths) < -80 and max(azimuths) > 80


def test_test4_is_small_and_sees_the_centre() -> None:
    rig = load_shipped_rig("test4")
    assert len(rig) == 4 and all(c.image_size == (64, 48) for c in rig)
    report = check_rig(rig)
    assert report.ok, report.problems
    assert "no problems found" in format_report(report)


def test_unknown_shipped_rig() -> None:
    with pytest.raises(CalibrationError, match="unknown shipped rig"):
        load_shipped_rig("nope")


def test_report_flags_a_camera_looking_away() -> None:
    rig = load_shipped_rig("test4")
    c = rig[3]
    turn = np.diag([-1.0, 1.0, -1.0])  # half turn about the camera's y axis; same centre
    away = Camera(c.name, c.width, c.height, c.K, c.dist, turn @ c.R, turn @ c.t, c.serial)
    np.testing.assert_allclose(away.center, c.center, atol=1e-9)
    report = check_rig(Rig((*rig.cameras[:3], away), "bad"))
    assert not report.ok
    assert any("'12_B'" in p and "outside" in p for p in report.problems)
    assert "1 problem(s)" in format_report(report)
