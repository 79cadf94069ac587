"""``tempeh export`` converting real files between NPZ, USD and per-frame PLY/OBJ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from inference.head_model import load_head_model_data
from inference.mesh_sequence import MeshSequence, load_npz, read_usd, save_npz

FPS = 24.0


@pytest.fixture
def take_npz(tmp_path: Path) -> Path:
    template = load_head_model_data("procedural").template
    ids = np.array([10, 11, 12, 14])
    frames = [np.asarray(template.vertices) + [0.0, 3.0 * k, 0.0] for k in range(len(ids))]
    seq = MeshSequence(
        np.stack(frames), template.faces, FPS, (ids - ids[0]) / FPS, ids, source="test take"
    )
    return save_npz(seq, tmp_path / "take.npz")


def test_npz_to_usd_and_back(
    take_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    usd = tmp_path / "out" / "take.usd"
    assert main(["export", str(take_npz), "--format", "usd", "--out", str(usd)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 4 frames (5512 vertices") and str(usd) in line and "KB" in line
    assert read_usd(usd).fps == FPS

    back = tmp_path / "back.npz"
    assert main(["export", str(usd), "--format", "npz", "--out", str(back)]) == 0
    original, again = load_npz(take_npz), load_npz(back)
    np.testing.assert_allclose(again.vertices, original.vertices, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(again.faces, original.faces)
    np.testing.assert_array_equal(again.frame_ids, original.frame_ids)
    np.testing.assert_array_equal(again.timestamps, original.timestamps)
    assert again.source == "test take"


def test_npz_to_ply_folder_and_back(
    take_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    assert main(["export", str(take_npz), "--format", "ply", "--out", str(folder)]) == 0
    assert "wrote 4 frames" in capsys.readouterr().out
    assert sorted(p.name for p in folder.glob("*.ply")) == [
        f"frame.{i:06d}.ply" for i in (10, 11, 12, 14)
    ]
    back = tmp_path / "back.npz"
    assert main(["export", str(folder), "--format", "npz", "--out", str(back)]) == 0
    original, again = load_npz(take_npz), load_npz(back)
    np.testing.assert_allclose(again.vertices, original.vertices, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(again.frame_ids, original.frame_ids)
    assert again.fps == FPS

    # --fps overrides the stored rate.
    assert main(["export", str(folder), "--format", "npz", "--out", str(back), "--fps", "60"]) == 0
    assert load_npz(back).fps == 60.0


@pytest.mark.parametrize(
    ("source", "content", "args", "message"),
    [
        ("missing.npz", None, ["--format", "usd", "--out", "x.usd"], "missing.npz"),
        (
            "broken.npz",
            b"PK\x03\x04 not a zip",
            ["--format", "usd", "--out", "x.usd"],
            "broken.npz",
        ),
        ("take.npz", None, ["--format", "usd", "--out", "x.abc"], "--out"),
        ("take.npz", None, ["--format", "npz", "--out", "x.npz", "--fps", "0"], "--fps"),
        ("empty", None, ["--format", "npz", "--out", "x.npz"], "empty"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    take_npz: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    content: bytes | None,
    args: list[str],
    message: str,
) -> None:
    if content is not None:
        (tmp_path / source).write_bytes(content)
    if source == "empty":
        (tmp_path / source).mkdir()
    out_args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    assert main(["export", str(tmp_path / source), *out_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tempeh export: error:") and message in err
    assert not list(tmp_path.glob("x.*"))


def test_unknown_format_is_a_usage_error(
    take_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", str(take_npz), "--format", "fbx", "--out", "x.fbx"])
    assert info.value.code == 2
    assert "usd" in capsys.readouterr().err
