"""Mesh sequences written in every format and read back (files on disk, real numbers)."""

from __future__ import annotations

import json
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pxr import Sdf, Usd, UsdGeom

from capture.errors import ConfigError, MeshIOError
from inference.head_model import load_head_model_data
from inference.mesh_io import read_mesh
from inference.mesh_sequence import (
    FORMATS,
    MeshSequence,
    SequenceWriter,
    export_sequence,
    frame_path,
    journal_path,
    load_npz,
    load_sequence,
    read_usd,
    save_npz,
    write_frame,
    write_usd,
)

FPS = 30.0
UM = 1e-3  # One micrometre in mm.


def animated_head(num_frames: int = 5) -> MeshSequence:
    """The procedural head moving a few mm per frame; frame 102 was dropped by the camera."""
    template = load_head_model_data("procedural").template
    base = np.asarray(template.vertices, dtype=np.float64)
    frames = []
    for k in range(num_frames):
        v = base.copy()
        v[:, 0] += 2.5 * k  # Sideways drift, mm.
        v[:, 1] *= 1.0 + 0.01 * k  # Stretch, a few mm at the chin.
        frames.append(v)
    ids = np.array([100, 101, 103, 104, 105, 106, 107, 108][:num_frames])
    return MeshSequence(
        vertices=np.stack(frames),
        faces=template.faces,
        fps=FPS,
        timestamps=(ids - ids[0]) / FPS + 1e-4 * np.arange(num_frames),
        frame_ids=ids,
        source="takes/2024-05-01_001",
    )


@pytest.fixture(scope="module")
def seq() -> MeshSequence:
    return animated_head()


def test_record_converts_dtypes_and_rejects_bad_shapes(seq: MeshSequence) -> None:
    assert seq.vertices.dtype == np.float32 and seq.faces.dtype == np.int32
    assert seq.timestamps.dtype == np.float64 and seq.frame_ids.dtype == np.int64
    with pytest.raises(ValueError, match="face indices"):
        MeshSequence(seq.vertices[:, :100], seq.faces, FPS, seq.timestamps, seq.frame_ids)
    with pytest.raises(ValueError, match="timestamps"):
        MeshSequence(seq.vertices, seq.faces, FPS, seq.timestamps[:2], seq.frame_ids)
    with pytest.raises(ValueError, match="strictly increasing"):
        MeshSequence(seq.vertices, seq.faces, FPS, seq.timestamps, seq.frame_ids[::-1])
    with pytest.raises(ValueError, match="fps"):
        MeshSequence(seq.vertices, seq.faces, 0.0, seq.timestamps, seq.frame_ids)
    bad = seq.vertices.copy()
    bad[1, 7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MeshSequence(bad, seq.faces, FPS, seq.timestamps, seq.frame_ids)


def test_npz_round_trip_is_exact(seq: MeshSequence, tmp_path: Path) -> None:
    path = save_npz(seq, tmp_path / "take.npz")
    back = load_npz(path)
    np.testing.assert_array_equal(back.vertices, seq.vertices)
    np.testing.assert_array_equal(back.faces, seq.faces)
    np.testing.assert_array_equal(back.timestamps, seq.timestamps)
    np.testing.assert_array_equal(back.frame_ids, seq.frame_ids)
    assert (back.fps, back.source) == (FPS, seq.source)
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["units"]) == "mm"
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_ply_and_obj_frames_round_trip_in_metres(seq: MeshSequence, tmp_path: Path) -> None:
    paths = export_sequence(seq, tmp_path, ["ply", "obj"], stem="head")
    for fmt in ("ply", "obj"):
        for k, frame_id in enumerate(seq.frame_ids):
            path = tmp_path / f"head.{frame_id:06d}.{fmt}"
            assert path in paths
            verts_m, faces = read_mesh(path, units="mm")  # Raw file numbers, metres.
            np.testing.assert_allclose(verts_m, seq.vertices[k] / 1000.0, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(faces, seq.faces)
    back = load_sequence(tmp_path)
    np.testing.assert_allclose(back.vertices, seq.vertices, rtol=0, atol=UM)
    np.testing.assert_array_equal(back.frame_ids, seq.frame_ids)
    np.testing.assert_array_equal(back.timestamps, seq.timestamps)
    assert (back.fps, back.source) == (FPS, seq.source)

    # OBJ frames alone, and no sidecar: the frame rate must then be given.
    for p in tmp_path.glob("*.ply"):
        p.unlink()
    journal_path(tmp_path, "head").unlink()
    with pytest.raises(MeshIOError, match="give the frame rate"):
        load_sequence(tmp_path)
    obj = load_sequence(tmp_path, fps=25.0)
    np.testing.assert_allclose(obj.vertices, seq.vertices, rtol=0, atol=UM)
    np.testing.assert_allclose(obj.timestamps, (seq.frame_ids - 100) / 25.0)


def test_usd_point_cache_is_what_usd_reads(seq: MeshSequence, tmp_path: Path) -> None:
    for name in ("head.usd", "head.usda"):
        path = write_usd(seq, tmp_path / name)
        stage = Usd.Stage.Open(Sdf.Layer.OpenAsAnonymous(str(path)))
        assert stage.GetTimeCodesPerSecond() == FPS
        assert stage.HasAuthoredMetadata("metersPerUnit")
        assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
        assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
        assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0.0, seq.num_frames - 1)
        assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Head")
        mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Head/Mesh"))
        for attr in (mesh.GetFaceVertexCountsAttr(), mesh.GetFaceVertexIndicesAttr()):
            assert attr.GetNumTimeSamples() == 0  # Constant topology.
        np.testing.assert_array_equal(
            np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3), seq.faces
        )
        assert mesh.GetPointsAttr().GetTimeSamples() == list(range(seq.num_frames))
        for k in range(seq.num_frames):
            points = np.asarray(mesh.GetPointsAttr().Get(k), dtype=np.float64)
            np.testing.assert_allclose(points, seq.vertices[k] / 1000.0, rtol=0, atol=1e-6)
            extent = np.asarray(mesh.GetExtentAttr().Get(k))
            np.testing.assert_allclose(extent, [points.min(0), points.max(0)], atol=1e-7)
    assert (tmp_path / "head.usd").read_bytes().startswith(b"PXR-USDC")
    assert (tmp_path / "head.usda").read_bytes().startswith(b"#usda")

    back = read_usd(tmp_path / "head.usd")
    np.testing.assert_allclose(back.vertices, seq.vertices, rtol=0, atol=UM)
    np.testing.assert_array_equal(back.faces, seq.faces)
    np.testing.assert_array_equal(back.timestamps, seq.timestamps)
    np.testing.assert_array_equal(back.frame_ids, seq.frame_ids)
    assert (back.fps, back.source) == (FPS, seq.source)


def test_usd_in_centimetres_reads_back_in_mm(seq: MeshSequence, tmp_path: Path) -> None:
    path = write_usd(seq, tmp_path / "head_cm.usdc", meters_per_unit=0.01)
    stage = Usd.Stage.Open(Sdf.Layer.OpenAsAnonymous(str(path)))
    assert UsdGeom.GetStageMetersPerUnit(stage) == 0.01
    points = np.asarray(UsdGeom.Mesh(stage.GetPrimAtPath("/Head/Mesh")).GetPointsAttr().Get(2))
    np.testing.assert_allclose(points, seq.vertices[2] / 10.0, rtol=0, atol=1e-4)
    np.testing.assert_allclose(load_sequence(path).vertices, seq.vertices, rtol=0, atol=UM)


def test_writer_crash_keeps_frames_then_resumes(seq: MeshSequence, tmp_path: Path) -> None:
    long = animated_head(8)
    writer = SequenceWriter(tmp_path, long.faces, FPS, ["ply", "npz", "usd"], flush_every=3)
    for k in range(7):
        writer.append(long.vertices[k], long.timestamps[k], long.frame_ids[k])
    del writer  # A crash: close() never runs.

    for k in range(7):
        assert frame_path(tmp_path, "frame", long.frame_ids[k], "ply").is_file()
    assert not (tmp_path / "frame.npz").exists()
    checkpoint = load_sequence(tmp_path / "frame.checkpoint")
    np.testing.assert_array_equal(checkpoint.frame_ids, long.frame_ids[:6])
    np.testing.assert_array_equal(checkpoint.vertices, long.vertices[:6])

    # The crash tore the sidecar's last line, and frame 101's file was lost afterwards.
    with journal_path(tmp_path, "frame").open("a") as fh:
        fh.write('{"frame_id": 99, "timest')
    frame_path(tmp_path, "frame", 101, "ply").unlink()
    resumed = SequenceWriter(tmp_path, long.faces, FPS, ["ply", "npz", "usd"], flush_every=3)
    assert [resumed.exists(i) for i in long.frame_ids] == [True, False] + [True] * 5 + [False]
    for k in (1, 7):
        resumed.append(long.vertices[k], long.timestamps[k], long.frame_ids[k])
    with pytest.raises(ValueError, match="already written"):
        resumed.append(long.vertices[0], long.timestamps[0], long.frame_ids[0])
    paths = resumed.close()
    assert tmp_path / "frame.npz" in paths and tmp_path / "frame.usd" in paths
    assert not (tmp_path / "frame.checkpoint").exists()
    for back in (load_npz(tmp_path / "frame.npz"), read_usd(tmp_path / "frame.usd")):
        np.testing.assert_array_equal(back.frame_ids, long.frame_ids)
        np.testing.assert_array_equal(back.timestamps, long.timestamps)
        # Frame 6 never reached a checkpoint: it comes back from its PLY (float32 metres).
        np.testing.assert_allclose(back.vertices, long.vertices, rtol=0, atol=UM)
    assert len(list(tmp_path.glob("frame.*.ply"))) == 8
    np.testing.assert_array_equal(load_sequence(tmp_path).frame_ids, long.frame_ids)


def test_writer_without_frame_files_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    long = animated_head(8)
    writer = SequenceWriter(tmp_path, long.faces, FPS, ["npz"], flush_every=4)
    for k in range(6):
        writer.append(long.vertices[k], long.timestamps[k], long.frame_ids[k])
    del writer
    resumed = SequenceWriter(tmp_path, long.faces, FPS, ["npz"], flush_every=4)
    assert [resumed.exists(i) for i in long.frame_ids] == [True] * 4 + [False] * 4
    for k in range(4, 8):
        resumed.append(long.vertices[k], long.timestamps[k], long.frame_ids[k])
    resumed.close()
    back = load_npz(tmp_path / "frame.npz")
    np.testing.assert_array_equal(back.vertices, long.vertices)
    np.testing.assert_array_equal(back.frame_ids, long.frame_ids)


def test_writer_append_is_thread_safe(tmp_path: Path) -> None:
    long = animated_head(8)
    with SequenceWriter(tmp_path, long.faces, FPS, ["obj", "npz"], flush_every=3) as writer:
        threads = [
            threading.Thread(
                target=lambda ks: [
                    writer.append(long.vertices[k], long.timestamps[k], long.frame_ids[k])
                    for k in ks
                ],
                args=(range(start, 8, 4),),
            )
            for start in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    back = load_npz(tmp_path / "frame.npz")
    np.testing.assert_array_equal(back.frame_ids, long.frame_ids)
    np.testing.assert_array_equal(back.vertices, long.vertices)
    lines = journal_path(tmp_path, "frame").read_text().splitlines()
    assert len(lines) == 9 and json.loads(lines[0])["fps"] == FPS


def test_writer_rejects_bad_frames(seq: MeshSequence, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known: ply, obj, npz, usd"):
        SequenceWriter(tmp_path, seq.faces, FPS, ["fbx"])
    with SequenceWriter(tmp_path, seq.faces, FPS, ["npz"]) as writer:
        with pytest.raises(ValueError, match="faces index vertex"):
            writer.append(seq.vertices[0, :1000], 0.0, 0)
        writer.append(seq.vertices[0], 0.0, 0)
        padded = np.concatenate([seq.vertices[1], np.zeros((1, 3), np.float32)])
        with pytest.raises(ValueError, match=f"expected {seq.vertices.shape[1]}"):
            writer.append(padded, 0.1, 1)


def test_unknown_format_lists_the_known_ones(seq: MeshSequence, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        export_sequence(seq, tmp_path, ["abc"])
    assert all(fmt in str(info.value) for fmt in FORMATS)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError):
        write_frame(tmp_path / "x.npz", seq.vertices[0], seq.faces, "npz")


def test_corrupted_files_raise_mesh_io_errors_naming_them(
    seq: MeshSequence, tmp_path: Path
) -> None:
    good = save_npz(seq, tmp_path / "good.npz")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MeshIOError, match=r"truncated\.npz"):
        load_npz(truncated)

    no_faces = tmp_path / "no_faces.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(no_faces, "w") as dst:
        for name in src.namelist():
            if name != "faces.npy":
                dst.writestr(name, src.read(name))
    with pytest.raises(MeshIOError, match=r"no_faces\.npz: field 'faces'"):
        load_npz(no_faces)

    pickled = tmp_path / "pickled.npz"
    arrays = {k: v for k, v in np.load(good, allow_pickle=False).items()}
    np.savez(pickled, **{**arrays, "source": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(MeshIOError, match=r"pickled\.npz: field .source."):
        load_npz(pickled)

    usd = write_usd(seq, tmp_path / "good.usd").read_bytes()
    (tmp_path / "bad.usd").write_bytes(usd[: len(usd) // 3])
    (tmp_path / "bad.usda").write_text("#usda 1.0\n( not usd")
    for name in ("bad.usd", "bad.usda", "missing.usd", "missing.npz"):
        with pytest.raises(MeshIOError, match=re.escape(name)):
            load_sequence(tmp_path / name)

    frames = tmp_path / "frames"
    export_sequence(seq, frames, ["ply"])
    bad_frame = frame_path(frames, "frame", seq.frame_ids[2], "ply")
    bad_frame.write_bytes(bad_frame.read_bytes()[:500])
    with pytest.raises(MeshIOError, match=re.escape(bad_frame.name)):
        load_sequence(frames)
