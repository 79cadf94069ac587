"""``tempeh rig check`` and ``tempeh rig convert`` through :func:`app.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from capture.camera import Camera, Rig
from capture.default_rigs import load_shipped_rig, shipped_rig_path
from capture.rig_io import read_rig
from capture.rig_json import write_rig_json


def test_check_shipped_rig_by_path_and_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "check", str(shipped_rig_path("default16"))]) == 0
    out = capsys.readouterr().out
    assert "16 cameras" in out and "no problems found" in out and "18_B" in out
    assert main(["rig", "check", "test4"]) == 0
    assert "4 cameras" in capsys.readouterr().out


def test_check_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "check", "default16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []
    assert len(report["cameras"]) == 16
    assert all(c["rig_center_inside"] for c in report["cameras"])
    assert set(report["stereo_pairs_mm"]) == {str(p) for p in range(11, 19)}


@pytest.mark.parametrize("out_name", ["rig.yaml", "rig.xml", "rig.json", "tka_folder"])
def test_convert_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out_name: str
) -> None:
    out = tmp_path / out_name
    # test4 has no tangential distortion, so .tka can hold it.
    src = "test4" if out_name == "tka_folder" else "default16"
    assert main(["rig", "convert", src, str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    rig = load_shipped_rig(src)
    back = read_rig(out)
    for cam in rig:
        assert back[cam.name].equals(
            type(cam)(
                cam.name,
                cam.width,
                cam.height,
                cam.K,
                cam.dist,
                cam.R,
                cam.t,
                back[cam.name].serial,
            ),
            atol=1e-9,
        )
    assert main(["rig", "check", str(out)]) == 0


def test_units_option_scales_a_metre_file(tmp_path: Path, capsys) -> None:
    doc = json.loads(shipped_rig_path("test4").read_text())
    del doc["units"]
    for cam in doc["cameras"]:
        cam["t"] = [v / 1000.0 for v in cam["t"]]
    path = tmp_path / "metres.json"
    path.write_text(json.dumps(doc))
    assert main(["rig", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "units" in err
    assert main(["rig", "check", str(path), "--units", "m"]) == 0
    assert main(["rig", "check", str(path), "--units", "mm"]) == 2
    assert "metres" in capsys.readouterr().err


def test_bad_input_exits_2_naming_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.json"
    doc = json.loads(shipped_rig_path("test4").read_text())
    del doc["cameras"][1]["K"]
    path.write_text(json.dumps(doc))
    assert main(["rig", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'11_B'" in err and "'K'" in err
    assert main(["rig", "convert", str(path), str(tmp_path / "out.yaml")]) == 2
    assert str(path) in capsys.readouterr().err
    assert not (tmp_path / "out.yaml").exists()
    assert main(["rig", "convert", "test4", str(tmp_path / "out.txt")]) == 2
    assert "out.txt" in capsys.readouterr().err
    assert main(["rig", "check", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err


def test_reflected_rotation_exits_2(tmp_path: Path, capsys) -> None:
    doc = json.loads(shipped_rig_path("test4").read_text())
    doc["cameras"][0]["R"] = [[-v for v in row] for row in doc["cameras"][0]["R"]]
    path = tmp_path / "flipped.json"
    path.write_text(json.dumps(doc))
    assert main(["rig", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "determinant" in err and "'11_A'" in err and str(path) in err


def test_check_reports_problems_with_exit_1(tmp_path: Path, capsys) -> None:
    rig = load_shipped_rig("test4")
    c = rig[0]
    turn = np.diag([-1.0, 1.0, -1.0])  # the camera looks away from the head
    away = Camera(c.name, c.width, c.height, c.K, c.dist, turn @ c.R, turn @ c.t, c.serial)
    path = tmp_path / "away.json"
    write_rig_json(Rig((away, *rig.cameras[1:]), "away"), path)
    assert main(["rig", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and "'11_A'" in out
