"""Replay of the FaMoS/TEMPEH image layout and of folders of per-camera videos."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from capture.camera import Rig
from capture.default_rigs import load_shipped_rig
from capture.errors import CaptureError, TakeError
from capture.sources.famos_source import FamosReplaySource
from capture.sources.video_folder_source import VideoFolderSource

ROOT = Path(__file__).resolve().parents[2]
TEMPEH = [sys.executable, "-m", "app"]


def tempeh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TEMPEH, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def famos(tmp_path_factory) -> Path:
    """A 3-frame, 4-camera dataset written by ``tempeh synth`` (images 1/4 of the rig)."""
    out = tmp_path_factory.mktemp("famos") / "ds"
    r = tempeh(
        "synth",
        "--rig",
        "test4",
        "--subjects",
        "1",
        "--sequences",
        "1",
        "--frames",
        "3",
        "--seed",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def collect(source, timeout: float = 10.0) -> tuple[list, list]:
    frames, errors = [], []
    source.start(frames.append, errors.append)
    t_end = time.monotonic() + timeout
    while not source.finished and time.monotonic() < t_end:
        time.sleep(0.01)
    source.stop()
    return frames, errors


# --------------------------------------------------------------------------- FaMoS layout


def test_famos_replay_counts_frames_and_views(famos) -> None:
    src = FamosReplaySource(famos, fps=0)
    assert (src.subject, src.sequence) == ("SYNTH_000", "anger")
    assert len(src) == 3
    assert src.cameras == ("11_A", "11_B", "12_A", "12_B")
    # Images are downscaled relative to the .tka calibration: the rig follows the images.
    img_w, img_h = src.image_size
    assert src.full_rig.cameras[0].width == 4 * img_w
    assert all(c.image_size == (img_w, img_h) for c in src.rig.cameras)
    sets = list(src.sets())
    assert [fs.sequence for fs in sets] == [0, 1, 2]
    assert all(fs.complete for fs in sets)
    assert [fs.frames[0].frame_id for fs in sets] == [int(f) for f in src.frames]
    assert sets[1].frames[2].image.shape[:2] == (img_h, img_w)
    assert src.summary()["sets"] == 3 and src.summary()["complete"] == 3

    frames, errors = collect(FamosReplaySource(famos, fps=0))
    assert not errors and len(frames) == 12
    assert [f.trigger_id for f in frames] == [k for k in range(3) for _ in range(4)]


def test_famos_replay_seeks_and_paces(famos) -> None:
    src = FamosReplaySource(famos, "SYNTH_000", "anger", fps=20.0)
    src.seek(2)
    frames, errors = collect(src)
    assert not errors and {f.trigger_id for f in frames} == {2}
    src = FamosReplaySource(famos, fps=20.0, start=0)
    t0 = time.monotonic()
    frames, _ = collect(src)
    assert len(frames) == 12 and time.monotonic() - t0 >= 0.09  # 3 sets at 20/s
    with pytest.raises(CaptureError, match="seek"):
        src.seek(3)
    assert np.array_equal(src.frame_set(2).frames[1].image, next(src.sets(2)).frames[1].image)


def test_famos_missing_image_is_a_gap_and_bad_png_names_camera_and_frame(famos, tmp_path) -> None:
    ds = copy_tree(famos, tmp_path / "ds")
    src = FamosReplaySource(ds, fps=0)
    src.image_path(1, 2).unlink()
    bad = src.image_path(2, 3)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    fs = src.frame_set(1)
    assert fs.missing == (2,) and not fs.complete
    assert src.missing_views == 1
    with pytest.raises(TakeError, match=r"12_B.*frame 000010"):
        src.frame_set(2)
    assert src.frame_set(2, strict=False).missing == (3,)
    assert src.summary()["complete"] == 2  # by file presence: set 2's bad file exists

    frames, errors = collect(FamosReplaySource(ds, fps=0))
    assert len(frames) == 12 - 2  # nothing else dropped
    assert len(errors) == 1 and "12_B" in str(errors[0]) and "000010" in str(errors[0])


def test_famos_explicit_rig_and_unknown_sequence(famos) -> None:
    src = FamosReplaySource(famos, rig=famos / "rig.json", fps=0)
    assert len(src.rig) == 4
    with pytest.raises(TakeError, match="no sequence"):
        FamosReplaySource(famos, "SYNTH_000", "nope")
    with pytest.raises(TakeError, match="not a FaMoS"):
        FamosReplaySource(famos / "images")


def test_famos_full_size_rig_warns_only_when_the_images_are_not_a_clean_downscale(
    famos, caplog
) -> None:
    """Reconstruction keeps the calibration size (resize_rig=False). TEMPEH's layout, images at
    an integer fraction of it, is expected and logged at INFO; any other size is a warning."""
    import logging

    logger = "capture.sources.famos_source"
    with caplog.at_level(logging.INFO, logger=logger):
        src = FamosReplaySource(famos, fps=0, resize_rig=False)
    w, h = src.image_size
    assert all(c.image_size == (4 * w, 4 * h) for c in src.rig.cameras)
    records = [r for r in caplog.records if r.name == logger]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "a 1/4 downscale" in records[0].getMessage()

    caplog.clear()
    odd = src.full_rig.resized(4 * w + 10, 4 * h)
    with caplog.at_level(logging.INFO, logger=logger):
        src = FamosReplaySource(famos, rig=odd, fps=0, resize_rig=False)
    records = [r for r in caplog.records if r.name == logger]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert f"{4 * w + 10}x{4 * h}" in records[0].getMessage()
    assert "SYNTH_000" in records[0].getMessage()  # names the folder


# --------------------------------------------------------------------------- video folder

LEVEL = 20  # gray step per frame; camera c adds 6 * c


def write_video(path: Path, camera: int, n: int = 10, w: int = 64, h: int = 48) -> None:
    codec = "libx264" if path.suffix == ".mp4" else "ffv1"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for k in range(n):
            img = np.full((h, w, 3), LEVEL * k + 6 * camera, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.fixture
def rig3() -> Rig:
    rig = load_shipped_rig("test4")
    return Rig(rig.cameras[:3], "r3")


@pytest.fixture
def videos(tmp_path, rig3) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    c0, c1, c2 = rig3.cameras
    write_video(d / f"cam_{c0.serial}.mp4", 0)
    write_video(d / f"{c1.name}.mkv", 1)
    write_video(d / f"cam_{c2.name}.mp4", 2)
    (d / "notes.txt").write_text("ignored")
    return d


def level_ok(img: np.ndarray, k: int, camera: int) -> bool:
    return abs(float(img.mean()) - (LEVEL * k + 6 * camera)) < 5


def test_video_folder_replay_gives_synchronised_sets(videos, rig3) -> None:
    src = VideoFolderSource(videos, rig3, fps=0)
    assert len(src) == 10 and src.frame_counts() == (10, 10, 10)
    assert src.rig.cameras[0].image_size == (64, 48)  # resized from the rig's size
    for fs in src.sets():
        assert fs.complete
        assert all(level_ok(f.image, fs.sequence, c) for c, f in enumerate(fs.frames))
    fs = src.frame_set(3)  # seek back
    assert all(level_ok(f.image, 3, c) for c, f in enumerate(fs.frames))
    frames, errors = collect(VideoFolderSource(videos, rig3, fps=0))
    assert not errors and len(frames) == 30
    assert all(level_ok(f.image, f.trigger_id, f.camera_index) for f in frames)
    assert VideoFolderSource(videos, rig3).nominal_fps == pytest.approx(10.0)


def test_video_folder_image_sequences(tmp_path, rig3) -> None:
    import cv2

    for c, cam in enumerate(rig3.cameras):
        d = tmp_path / cam.name
        d.mkdir()
        for k in range(4):
            cv2.imwrite(str(d / f"{k:04d}.png"), np.full((12, 16), 10 * k + c, np.uint8))
    src = VideoFolderSource(tmp_path, rig3, fps=0)
    assert len(src) == 4
    fs = src.frame_set(2)
    assert [int(f.image[0, 0]) for f in fs.frames] == [20, 21, 22]


def test_video_folder_truncated_video_names_the_camera(videos, rig3) -> None:
    cam = rig3.cameras[1]
    path = videos / f"{cam.name}.mkv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = VideoFolderSource(videos, rig3, fps=0)
    assert len(src) == 10
    frames, errors = collect(src)
    assert errors and all(cam.name in str(e) and "frame" in str(e) for e in errors)
    per_cam = [sum(f.camera_index == c for f in frames) for c in range(3)]
    assert per_cam[0] == per_cam[2] == 10 and per_cam[1] < 10
    with pytest.raises(TakeError, match=rf"{cam.name}.*frame 9"):
        VideoFolderSource(videos, rig3, fps=0).frame_set(9)


def test_video_folder_unmatched_entries(videos, rig3) -> None:
    write_video(videos / "cam_stranger.mp4", 0, n=2)
    with pytest.raises(TakeError, match="stranger"):
        VideoFolderSource(videos, rig3)
    (videos / "cam_stranger.mp4").unlink()
    (videos / f"cam_{rig3.cameras[0].serial}.mp4").unlink()
    with pytest.raises(TakeError, match=rig3.cameras[0].name):
        VideoFolderSource(videos, rig3)


# --------------------------------------------------------------------------- CLI


def test_record_from_famos_replay_and_takes_show(famos, tmp_path) -> None:
    take = tmp_path / "take"
    r = tempeh("record", "--source", f"replay:{famos}", "--seconds", "5", "--out", str(take))
    assert r.returncode == 0, r.stderr
    r = tempeh("takes", "show", str(take), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["cameras"], summary["sets"], summary["complete"]) == (4, 3, 3)
    r = tempeh("takes", "show", str(famos), "--json", "--subject", "SYNTH_000")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sets"] == 3


def test_takes_show_video_folder_and_unknown_layout(videos, rig3, tmp_path) -> None:
    from capture.rig_io import write_rig

    write_rig(rig3, tmp_path / "r3.json")
    r = tempeh("takes", "show", str(videos), "--json", "--rig", str(tmp_path / "r3.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sets"] == 10
    r = tempeh("takes", "show", str(videos), "--json")
    assert r.returncode != 0 and "--rig" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = tempeh("takes", "show", str(empty))
    assert r.returncode != 0
    assert "FaMoS" in r.stderr and "take" in r.stderr and "videos" in r.stderr


# --------------------------------------------------------------------------- pylon ROI


def test_pylon_roi_offsets_and_binning_on_the_emulator(tmp_path) -> None:
    pytest.importorskip("pypylon", reason="pypylon cannot load")
    from capture.pattern import pattern_provider, ring_rig
    from capture.sources.pylon_source import CameraSettings, emulated_source

    rig = ring_rig(2, 160, 120)
    settings = CameraSettings(offset_x=16, offset_y=8, binning_horizontal=1)
    src = emulated_source(rig, pattern_provider(rig), tmp_path, count=2, settings=settings)
    src.open()
    try:
        dev = src._array[1]
        assert (dev.OffsetX.Value, dev.OffsetY.Value) == (16, 8)
        assert (dev.Width.Value, dev.Height.Value) == (160, 120)
    finally:
        src.close()
    too_far = CameraSettings(offset_x=100_000)
    src = emulated_source(rig, pattern_provider(rig), tmp_path, count=2, settings=too_far)
    with pytest.raises(CaptureError, match=r"cam00.*OffsetX=100000"):
        src.open()
    with pytest.raises(CaptureError, match="binning_vertical"):
        CameraSettings(binning_vertical=0)
