"""``tempeh reconstruct``, ``bench`` and ``live``: outputs, resume, errors, two processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from app.cli import main

REPO = Path(__file__).resolve().parents[2]
FRAMES = 4

pytestmark = [pytest.mark.gl]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the tests share two cores with whatever else runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> Path:
    """A short take recorded from the emulated test4 rig (the synthetic performer)."""
    pytest.importorskip("pypylon", reason="pypylon cannot load")
    out = tmp_path_factory.mktemp("take") / "take"
    cmd = ["record", "--source", "emulated", "--rig", "test4", "--fps", "10"]
    assert main([*cmd, "--seconds", "1.2", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def famos(tmp_path_factory) -> Path:
    """A 1-subject, 2-frame synthetic dataset in the FaMoS layout (test4 rig)."""
    from capture.default_rigs import load_shipped_rig
    from inference.procedural_head import load_procedural_head
    from inference.synth import SynthConfig, write_synthetic_dataset

    out = tmp_path_factory.mktemp("famos")
    config = SynthConfig(rig="test4", frames=2, downscale=2)
    write_synthetic_dataset(
        load_shipped_rig("test4"), load_procedural_head(), out, config, progress=False
    )
    return out


def test_missing_or_corrupted_model_exits_2_naming_the_file(tmp_path, take, capsys):
    out = tmp_path / "rec"
    assert main(["reconstruct", str(take), "--out", str(out), "--model", "nope.pt"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["reconstruct", str(take), "--out", str(out), "--model", str(bad)]) == 2
    assert "broken.pt" in capsys.readouterr().err


def test_reconstruct_take_writes_each_frame_and_resumes(tmp_path, take, capsys):
    from capture.take import TakeReader
    from inference.mesh_sequence import load_npz

    records = TakeReader(take).records[:FRAMES]
    out = tmp_path / "rec"
    args = ["reconstruct", str(take), "--out", str(out), "--frames", f":{FRAMES}"]
    assert main([*args, "--formats", "ply,npz", "--no-progress"]) == 0
    expected = {f"meshes.{r.sequence:06d}.ply" for r in records}
    assert {p.name for p in out.glob("*.ply")} == expected
    seq = load_npz(out / "meshes.npz")
    assert seq.frame_ids.tolist() == [r.sequence for r in records]
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*.ply")}
    capsys.readouterr()
    assert main([*args, "--formats", "ply,npz", "--no-progress"]) == 0
    assert f"0 frames reconstructed, {FRAMES} already written" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.ply")} == stamp


def test_reconstruct_famos_layout_writes_official_paths_in_metres(tmp_path, famos):
    from inference.mesh_io import read_mesh

    out = tmp_path / "rec"
    args = ["reconstruct", str(famos), "--out", str(out), "--split", "train", "--no-progress"]
    assert main(args) == 0
    files = sorted(out.rglob("*.ply"))
    assert [p.relative_to(out).as_posix() for p in files] == [
        "SYNTH_000/anger/anger.000000.ply",
        "SYNTH_000/anger/anger.000005.ply",
    ]
    raw, _ = read_mesh(files[0], units="mm")  # the numbers as stored
    assert 0.001 < np.abs(raw).max() < 0.5  # metres: a head is ~0.1 m (not 100)


def test_bench_json_schema(capsys):
    argv = ["bench", "--views", "4", "--size", "160x120", "--iterations", "1", "--warmup", "0"]
    assert main([*argv, "--precision", "bf16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"device", "preset", "views", "stages_ms", "fps", "peak_mem_mb"} <= set(report)
    assert report["precision"] == "fp32"  # the CPU path always runs float32
    assert set(report["stages_ms"]) == {"preprocess", "coarse", "refine", "total"}
    assert all(set(v) == {"median", "p95"} for v in report["stages_ms"].values())
    assert report["views"] == 4 and report["fps"] > 0 and report["peak_mem_mb"] > 0


def test_bench_frames_rendered_once_are_read_back(tmp_path, capsys):
    frames = tmp_path / "frames"
    argv = ["bench", "--views", "4", "--size", "160x120", "--iterations", "1", "--warmup", "0",
            "--json", "--frames", str(frames)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    pngs = sorted(frames.rglob("*.png"))
    assert [p.parent.name for p in pngs] == ["set_0"] * 4 + ["set_1"] * 4
    assert cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).shape[:2] == (120, 160)
    stamps = [p.stat().st_mtime_ns for p in pngs]
    assert main(argv) == 0  # read, not rendered again
    assert json.loads(capsys.readouterr().out)["views"] == 4
    assert [p.stat().st_mtime_ns for p in pngs] == stamps
    assert main([*argv[:4], "320x240", *argv[5:]]) == 2  # frames of another size
    assert "160x120" in capsys.readouterr().err
    pngs[-1].write_bytes(b"not a png")
    assert main(argv) == 2
    assert pngs[-1].name in capsys.readouterr().err


def test_live_headless_writes_take_meshes_and_preview(tmp_path, capsys):
    pytest.importorskip("pypylon", reason="pypylon cannot load")
    import av

    from capture.take import TakeReader
    from inference.mesh_sequence import load_npz

    out = tmp_path / "live"
    argv = ["live", "--headless", "--rig", "test4", "--seconds", "2", "--fps", "10"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "meshes" in printed and "latency" in printed
    assert TakeReader(out / "take").summary()["sets"] >= 1
    seq = load_npz(out / "meshes" / "meshes.npz")
    assert seq.num_frames >= 1
    with av.open(str(out / "preview.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 1


def test_two_processes_write_every_frame_exactly_once(tmp_path, take, torchrun):
    from capture.take import TakeReader
    from inference.mesh_sequence import load_npz

    out = tmp_path / "rec"
    args = ["-m", "app.cli", "reconstruct", str(take), "--out", str(out), "--frames", f":{FRAMES}"]
    cmd = torchrun(2, *args, "--formats", "ply,npz", "--no-progress")
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ids = [r.sequence for r in TakeReader(take).records[:FRAMES]]
    assert sorted(p.name for p in out.glob("*.ply")) == [f"meshes.{i:06d}.ply" for i in ids]
    lines = (out / "meshes.frames.jsonl").read_text().splitlines()[1:]
    logged = [json.loads(line)["frame_id"] for line in lines]
    assert sorted(logged) == ids  # each frame written (and logged) once
    assert load_npz(out / "meshes.npz").frame_ids.tolist() == ids
