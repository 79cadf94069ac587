"""Every rig format round-trips, and every broken file names its path, camera and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from capture.camera import Camera, Rig
from capture.errors import CalibrationError
from capture.rig_io import read_rig, write_rig
from capture.rig_json import read_rig_json, rig_to_json_text


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".xml"])
def test_file_formats_round_trip(tmp_path: Path, small_rig, suffix: str) -> None:
    rig = small_rig(4)
    path = tmp_path / f"rig{suffix}"
    write_rig(rig, path)
    back = read_rig(path)
    assert back.names == rig.names
    assert back.name == rig.name
    assert back.equals(rig, atol=1e-9)
    assert [c.serial for c in back] == [c.serial for c in rig]


def test_tka_folder_round_trips(tmp_path: Path, small_rig) -> None:
    rig = small_rig(4, radial_only=True)
    write_rig(rig, tmp_path / "calib")
    assert sorted(p.name for p in (tmp_path / "calib").iterdir()) == [
        f"{n}.tka" for n in sorted(rig.names)
    ]
    back = read_rig(tmp_path / "calib")
    for cam in rig:  # serials are not stored in .tka
        b = back[cam.name]
        assert (b.width, b.height) == (cam.width, cam.height)
        for attr in ("K", "dist", "R", "t"):
            np.testing.assert_allclose(getattr(b, attr), getattr(cam, attr), rtol=0, atol=1e-9)
    again = tmp_path / "again"
    write_rig(back, again)
    assert read_rig(again).equals(back, atol=1e-9)


def test_tka_refuses_tangential_distortion(tmp_path: Path, small_rig) -> None:
    with pytest.raises(CalibrationError) as info:
        write_rig(small_rig(2), tmp_path / "calib")
    assert info.value.field == "dist" and info.value.camera == "11_A"


@pytest.mark.parametrize(("units", "scale"), [("m", 1000.0), ("cm", 10.0), ("mm", 1.0)])
def test_json_declared_units_are_scaled_to_mm(tmp_path: Path, small_rig, units, scale) -> None:
    rig = small_rig(2)
    doc = json.loads(rig_to_json_text(rig))
    doc["units"] = units
    for cam in doc["cameras"]:
        cam["t"] = [v / scale for v in cam["t"]]
    path = tmp_path / "rig.json"
    path.write_text(json.dumps(doc))
    assert read_rig(path).equals(rig, atol=1e-9)


def test_opencv_accepts_rvec_and_units(tmp_path: Path, small_rig) -> None:
    import cv2

    rig = small_rig(2)
    path = tmp_path / "rig.yaml"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("units", "m")
    fs.startWriteStruct("cameras", cv2.FileNode_SEQ)
    for cam in rig:
        fs.write("", cam.name)
    fs.endWriteStruct()
    for i, cam in enumerate(rig):
        fs.startWriteStruct(f"camera_{i}", cv2.FileNode_MAP)
        fs.write("serial", cam.serial)
        fs.write("image_width", cam.width)
        fs.write("image_height", cam.height)
        fs.write("K", cam.K.copy())
        fs.write("D", cam.dist[:4].reshape(1, 4).copy() if i else cam.dist.reshape(5, 1).copy())
        fs.write("rvec", cv2.Rodrigues(cam.R.copy())[0])
        fs.write("T", (cam.t / 1000.0).reshape(3, 1))
        fs.endWriteStruct()
    fs.release()
    back = read_rig(path)
    np.testing.assert_allclose(back[0].dist, rig[0].dist, rtol=0, atol=1e-15)
    np.testing.assert_allclose(back[1].dist[:4], rig[1].dist[:4], rtol=0, atol=1e-15)
    for a, b in zip(back, rig, strict=True):
        np.testing.assert_allclose(a.R, b.R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- broken files


def _doc(rig: Rig) -> dict:
    return json.loads(rig_to_json_text(rig))


def _break_json(tmp_path: Path, doc: dict) -> CalibrationError:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError) as info:
        read_rig_json(path)
    assert str(path) in str(info.value)
    return info.value


def _reflect(R: list) -> list:
    return (-np.asarray(R)).tolist()


BREAKAGES = {
    "missing key": (lambda d: d["cameras"][1].pop("K"), "11_B", "K", "missing"),
    "NaN": (lambda d: d["cameras"][2]["t"].__setitem__(1, float("nan")), "12_A", "t", "NaN"),
    "wrong type": (lambda d: d["cameras"][0].__setitem__("dist", "none"), "11_A", "dist", "dist"),
    "wrong shape": (lambda d: d["cameras"][3]["R"].pop(), "12_B", "R", "shape"),
    "non-orthonormal R": (
        lambda d: d["cameras"][1]["R"][0].__setitem__(0, d["cameras"][1]["R"][0][0] + 1e-3),
        "11_B",
        "R",
        "orthonormal",
    ),
    "det -1 R": (
        lambda d: d["cameras"][2].__setitem__("R", _reflect(d["cameras"][2]["R"])),
        "12_A",
        "R",
        "determinant",
    ),
    "missing image size": (lambda d: d["cameras"][0].pop("image_size"), "11_A", "image_size", ""),
    "float image size": (
        lambda d: d["cameras"][0].__setitem__("image_size", [1600.0, 1200]),
        "11_A",
        "image_size",
        "integers",
    ),
    "principal point outside": (
        lambda d: d["cameras"][3]["K"][0].__setitem__(2, 2000.0),
        "12_B",
        "K",
        "outside",
    ),
    "duplicate names": (
        lambda d: d["cameras"][2].__setitem__("name", "11_A"),
        "11_A",
        None,
        "not unique",
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_broken_json_names_camera_and_field(tmp_path: Path, small_rig, case: str) -> None:
    mutate, camera, field, words = BREAKAGES[case]
    doc = _doc(small_rig(4))
    mutate(doc)
    err = _break_json(tmp_path, doc)
    assert err.camera == camera
    assert err.field == field
    assert words in str(err)
    if camera is not None:
        assert repr(camera) in str(err)


def test_metres_without_units_are_refused(tmp_path: Path, small_rig) -> None:
    doc = _doc(small_rig(4))
    for cam in doc["cameras"]:
        cam["t"] = [v / 1000.0 for v in cam["t"]]
    err = _break_json(tmp_path, doc)
    assert err.field == "t"
    assert "metres" in str(err) and '"units": "m"' in str(err)


def test_missing_units_key_asks_to_declare_it(tmp_path: Path, small_rig) -> None:
    doc = _doc(small_rig(2))
    del doc["units"]
    err = _break_json(tmp_path, doc)
    assert err.field == "units" and "declare" in str(err)


def test_unknown_units_and_not_json(tmp_path: Path, small_rig) -> None:
    doc = _doc(small_rig(2))
    doc["units"] = "inch"
    assert _break_json(tmp_path, doc).field == "units"
    path = tmp_path / "garbage.json"
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match=r"garbage[.]json"):
        read_rig(path)


def test_broken_opencv_file_names_camera_and_field(tmp_path: Path, small_rig) -> None:
    path = tmp_path / "rig.yaml"
    write_rig(small_rig(2), path)
    text = path.read_text()
    start = text.index("camera_1:")
    broken = text[:start] + text[start:].replace(
        "   K: !!opencv-matrix", "   Kx: !!opencv-matrix", 1
    )
    path.write_text(broken)
    with pytest.raises(CalibrationError) as info:
        read_rig(path)
    assert (info.value.camera, info.value.field) == ("11_B", "K")
    assert str(path) in str(info.value)
    path.write_text("%YAML:1.0\n---\nfoo: [1, 2\n")
    with pytest.raises(CalibrationError, match=r"rig[.]yaml"):
        read_rig(path)


def test_truncated_tka_names_file_and_key(tmp_path: Path, small_rig) -> None:
    folder = tmp_path / "calib"
    write_rig(small_rig(2, radial_only=True), folder)
    tka = folder / "11_B.tka"
    lines = tka.read_text().splitlines()
    tka.write_text("\n".join(lines[:10]) + "\n")  # stops after %K2
    with pytest.raises(CalibrationError) as info:
        read_rig(folder)
    assert (info.value.camera, info.value.field) == ("11_B", "%S")
    assert "missing key" in str(info.value)
    assert str(tka) in str(info.value)
    tka.write_text("\n".join(lines[:2]) + "\n")  # rotation cut short
    with pytest.raises(CalibrationError) as info:
        read_rig(folder)
    assert info.value.field == "%M" and str(tka) in str(info.value)


def test_unknown_extension_and_missing_path(tmp_path: Path, small_rig) -> None:
    with pytest.raises(CalibrationError, match="unknown rig format"):
        write_rig(small_rig(2), tmp_path / "rig.txt")
    (tmp_path / "rig.txt").write_text("x")
    with pytest.raises(CalibrationError, match=r"rig[.]txt"):
        read_rig(tmp_path / "rig.txt")
    with pytest.raises(CalibrationError, match="no such file"):
        read_rig(tmp_path / "absent.json")


def test_camera_shape_error_names_the_field() -> None:
    with pytest.raises(CalibrationError) as info:
        Camera("c", 10, 10, np.eye(2), np.zeros(5), np.eye(3), np.zeros(3))
    assert (info.value.camera, info.value.field) == ("c", "K")
