"""Synthetic performer, scans, the TEMPEH-layout writer and the dataset reader."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from capture.camera import project
from capture.default_rigs import load_shipped_rig
from capture.errors import ConfigError, DatasetError, RenderError
from capture.rig_json import read_rig_json
from capture.rig_tka import read_rig_tka
from inference.dataset import DatasetConfig, MultiViewDataset, collate_frames
from inference.head_data import HeadModelData
from inference.mesh_io import read_mesh
from inference.performer import Performer
from inference.procedural_head import load_procedural_head
from inference.scans import ScanConfig, point_to_surface_distance, simulate_scan
from inference.synth import (
    SynthConfig,
    eyebrow_weights,
    material_weights,
    open_view_renderer,
    render_views,
    write_synthetic_dataset,
)


@pytest.fixture(scope="module")
def head() -> HeadModelData:
    return load_procedural_head()


def _need_gl() -> None:
    try:
        from render.context import create_headless_context

        create_headless_context().release()
    except RenderError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, head: HeadModelData) -> Path:
    """3 subjects × 1 sequence × 2 frames on the test4 rig at full size (64×48)."""
    _need_gl()
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(rig="test4", subjects=3, sequences=1, frames=2, seed=5, downscale=1)
    write_synthetic_dataset(load_shipped_rig("test4"), head, out, config, progress=False)
    return out


# --------------------------------------------------------------------------- performer


def test_performer_is_deterministic_and_in_range(head: HeadModelData) -> None:
    a, b = Performer(head, seed=3, subject_seed=9), Performer(head, seed=3, subject_seed=9)
    np.testing.assert_array_equal(a.vertices(1.7), b.vertices(1.7))
    other = Performer(head, seed=4, subject_seed=9)
    np.testing.assert_array_equal(a.frame(0.0).shape, other.frame(0.0).shape)  # same identity
    assert not np.allclose(a.vertices(1.7), other.vertices(1.7))
    poses = [a.frame(t) for t in np.arange(0.0, 120.0, 0.13)]
    yaw = np.array([p.yaw_deg for p in poses])
    pitch = np.array([p.pitch_deg for p in poses])
    trans = np.array([p.translation for p in poses])
    assert np.abs(yaw).max() <= 45.0 and np.abs(pitch).max() <= 25.0
    assert np.abs(yaw).max() > 15.0  # it does turn
    assert np.abs(trans).max() <= 50.0
    blink = head.expression_names.index("blink_left")
    assert max(p.expression[blink] for p in poses) > 0.9  # blinks happen
    jaw = np.array([p.jaw_pose[0] for p in poses])
    assert jaw.max() > np.deg2rad(5.0) and jaw.min() >= 0.0


def test_performer_works_with_flame(flame_standin: Path) -> None:
    from inference.flame import load_flame

    data = load_flame(flame_standin)
    v = Performer(data, seed=1, subject_seed=2).vertices(0.5)
    assert v.shape == (data.template.num_vertices, 3) and np.all(np.isfinite(v))


# --------------------------------------------------------------------------- scans


SCAN_CONFIG = ScanConfig(max_points=8000, depth_width=200)


@pytest.fixture(scope="module")
def posed(head: HeadModelData):
    """A posed procedural head, its vertices and the default rig, for the scan tests."""
    _need_gl()
    performer = Performer(head, seed=1, subject_seed=2)
    pose = performer.frame(1.0)
    verts = performer.pose_vertices(pose)
    return pose, verts, load_shipped_rig("default16")


def test_scan_points_lie_on_the_surface_except_extras(head: HeadModelData, posed) -> None:
    pose, verts, rig = posed
    config = SCAN_CONFIG
    scan = simulate_scan(
        rig, verts, head.template, pose.translation, np.random.default_rng(0), config
    )
    assert scan.points.dtype == np.float32 and scan.points.shape[1] == 3
    assert len(scan.points) > 4000
    assert 0.05 < scan.is_extra.mean() < 0.7  # hair and shoulders present, head dominant
    d = point_to_surface_distance(scan.points[~scan.is_extra], verts, head.template.faces)
    assert np.mean(d < 3 * config.noise_sigma_mm) > 0.99
    extra = point_to_surface_distance(scan.points[scan.is_extra], verts, head.template.faces)
    assert np.median(extra) > 3 * config.noise_sigma_mm


def test_scan_is_the_same_in_a_fresh_context_and_in_the_image_renderers(
    head: HeadModelData, posed
) -> None:
    """The synth renders images and scans in one context; the image renderer leaves back-face
    culling on. The scan's depth pass sets its own culling, so a scan made in a fresh context
    (as a test or a user makes one) is the one the datasets hold, point for point."""
    pose, verts, rig = posed

    def scan(ctx=None):
        rng = np.random.default_rng(0)
        return simulate_scan(rig, verts, head.template, pose.translation, rng, SCAN_CONFIG, ctx)

    fresh = scan()
    renderer = open_view_renderer(rig, 8, rgb=False)
    try:
        render_views(renderer, verts, head.template, material_weights(head.template), 1, 0)
        shared = scan(renderer.ctx)
    finally:
        renderer.release()
    assert len(fresh.points) > 4000
    np.testing.assert_array_equal(fresh.points, shared.points)
    np.testing.assert_array_equal(fresh.is_extra, shared.is_extra)


# --------------------------------------------------------------------------- writer


def test_layout_is_exactly_tempeh(dataset_dir: Path) -> None:
    rig = load_shipped_rig("test4")
    subject, sequence, frame = "SYNTH_000", "anger", "000005"
    for cam in rig.names:
        img = dataset_dir / "images" / subject / sequence / frame / f"{sequence}.{frame}.{cam}.png"
        assert img.is_file()
        assert (dataset_dir / "calibrations" / subject / sequence / f"{cam}.tka").is_file()
    assert (dataset_dir / "scans" / subject / sequence / f"{sequence}.{frame}.npy").is_file()
    tags = dataset_dir / "scans" / subject / sequence / f"{sequence}.{frame}.extra.npy"
    assert np.load(tags).dtype == np.bool_
    ply = dataset_dir / "registrations" / subject / sequence / f"{sequence}.{frame}.ply"
    assert ply.is_file()
    assert (dataset_dir / "rig.json").is_file() and (dataset_dir / "synth.json").is_file()
    v, _ = read_mesh(ply, units="mm")  # the file holds metres: read as mm it is 1000x small
    assert np.abs(v).max() < 1.0


def test_images_show_the_head_in_every_view(dataset_dir: Path) -> None:
    frame = "SYNTH_000", "anger", "000000"
    folder = dataset_dir / "images" / Path(*frame)
    rig = read_rig_json(dataset_dir / "rig.json")
    verts, _ = read_mesh(
        dataset_dir / "registrations" / frame[0] / frame[1] / f"{frame[1]}.{frame[2]}.ply"
    )
    for cam in rig:
        img = np.asarray(Image.open(folder / f"anger.000000.{cam.name}.png"), dtype=np.float64)
        assert img.shape == (48, 64)  # grayscale, full size
        uv = project(cam, verts)
        inside = np.zeros(img.shape, dtype=bool)
        u = np.clip(np.rint(uv[:, 0]).astype(int), 0, 63)
        v = np.clip(np.rint(uv[:, 1]).astype(int), 0, 47)
        inside[v, u] = True
        background = np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]))
        fg = np.abs(img - background) > 20
        assert 0.05 < fg.mean() < 0.9, cam.name
        assert fg[inside].mean() > 0.8, cam.name  # the head is where it projects
        assert fg[~inside].mean() < 0.2, cam.name


def test_tka_parse_back_to_the_same_cameras(dataset_dir: Path) -> None:
    written = read_rig_json(dataset_dir / "rig.json")
    for subject in ("SYNTH_000", "SYNTH_002"):
        back = read_rig_tka(dataset_dir / "calibrations" / subject / "anger")
        for a, b in zip(written, back, strict=True):
            assert a.name == b.name and a.image_size == b.image_size
            for attr in ("K", "dist", "R", "t"):
                np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=0, atol=1e-9)
    source = load_shipped_rig("test4")  # no distortion: the written rig is the source rig
    for a, b in zip(written, source, strict=True):
        for attr in ("K", "dist", "R", "t"):
            np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=0, atol=1e-9)


def test_lists_are_disjoint_by_subject(dataset_dir: Path) -> None:
    lists = {
        k: json.loads((dataset_dir / "lists" / f"{k}.json").read_text())
        for k in ("train", "val", "test")
    }
    subjects = {k: {s for s, _, _ in v} for k, v in lists.items()}
    assert subjects["train"] and subjects["test"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["train"] & subjects["val"] and not subjects["val"] & subjects["test"]
    assert all(len(f) == 6 and f.isdigit() for v in lists.values() for _, _, f in v)


def test_resume_skips_existing_frames(
    dataset_dir: Path, head: HeadModelData, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(dataset_dir, out)
    victim = out / "scans" / "SYNTH_001" / "anger" / "anger.000000.npy"
    victim.unlink()
    config = SynthConfig(rig="test4", subjects=3, sequences=1, frames=2, seed=5, downscale=1)
    s = write_synthetic_dataset(load_shipped_rig("test4"), head, out, config, progress=False)
    assert (s.frames_written, s.frames_skipped) == (1, 5)
    original = np.load(dataset_dir / "scans" / "SYNTH_001" / "anger" / "anger.000000.npy")
    np.testing.assert_array_equal(np.load(victim), original)  # deterministic re-render
    other = SynthConfig(rig="test4", subjects=3, sequences=1, frames=2, seed=6, downscale=1)
    with pytest.raises(ConfigError, match="seed"):
        write_synthetic_dataset(load_shipped_rig("test4"), head, out, other, progress=False)


def test_resume_into_a_linked_copy_leaves_the_source_untouched(
    dataset_dir: Path, head: HeadModelData, tmp_path: Path
) -> None:
    """Every file a resumed run rewrites (config, lists, calibrations, rig) is replaced, not
    written through: a hard-linked copy grown by a subject leaves the source as it was."""
    out = tmp_path / "linked"
    shutil.copytree(dataset_dir, out, copy_function=os.link)
    before = {p: p.read_bytes() for p in dataset_dir.rglob("*") if p.is_file()}
    config = SynthConfig(rig="test4", subjects=4, sequences=1, frames=2, seed=5, downscale=1)
    s = write_synthetic_dataset(load_shipped_rig("test4"), head, out, config, progress=False)
    assert (s.frames_written, s.frames_skipped) == (2, 6)
    assert {p: p.read_bytes() for p in dataset_dir.rglob("*") if p.is_file()} == before
    grown = json.loads((out / "synth.json").read_text())
    assert (
        grown["subjects"] == 4
        and json.loads((dataset_dir / "synth.json").read_text())["subjects"] == 3
    )
    rewritten = [
        "synth.json",
        "rig.json",
        *(f"lists/{k}.json" for k in ("train", "val", "test")),
        *(f"calibrations/SYNTH_000/anger/{c}.tka" for c in load_shipped_rig("test4").names),
    ]
    for name in rewritten:
        assert not (out / name).samefile(dataset_dir / name), name
    frame = "images/SYNTH_000/anger/000000"
    assert any((out / frame).iterdir())
    for image in (out / frame).iterdir():
        assert image.samefile(dataset_dir / frame / image.name)  # skipped frames stay linked


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_workers_write_the_same_files_and_stop_at_a_failed_frame(
    dataset_dir: Path, head: HeadModelData, tmp_path: Path
) -> None:
    """Two worker processes write byte for byte what one process wrote (``dataset_dir``); a
    frame that cannot be written stops the run with its own error, and a rerun fills in what
    is missing."""
    config = SynthConfig(rig="test4", subjects=3, sequences=1, frames=2, seed=5, downscale=1)
    rig = load_shipped_rig("test4")
    out = tmp_path / "parallel"
    blocker = out / "registrations" / "SYNTH_001" / "anger" / "anger.000005.ply"
    blocker.mkdir(parents=True)  # a folder where the frame's mesh must go
    with pytest.raises(IsADirectoryError, match=r"anger\.000005\.ply"):
        write_synthetic_dataset(rig, head, out, config, progress=False, workers=2)
    blocker.rmdir()
    s = write_synthetic_dataset(rig, head, out, config, progress=False, workers=2)
    assert s.frames_written + s.frames_skipped == 6 and 1 <= s.frames_written < 6
    assert _files(out) == _files(dataset_dir)
    with pytest.raises(ConfigError, match="'workers'"):
        write_synthetic_dataset(rig, head, out, config, progress=False, workers=0)


def test_a_dead_worker_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    """A script without a ``__main__`` guard makes every spawned worker re-run it and die; the
    caller gets a RenderError saying so (it used to block for ever), the worker a ConfigError."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from capture.default_rigs import load_shipped_rig\n"
        "from inference.procedural_head import load_procedural_head\n"
        "from inference.synth import SynthConfig, write_synthetic_dataset\n"
        "config = SynthConfig(rig='test4', subjects=2, downscale=1)\n"
        f"write_synthetic_dataset(load_shipped_rig('test4'), load_procedural_head(), "
        f"{str(tmp_path / 'out')!r}, config, progress=False, workers=2)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "RenderError: a synth worker process died" in done.stderr
    assert "ConfigError: field 'workers': a synth worker process is starting" in done.stderr
    assert not list((tmp_path / "out").rglob("*.png"))


# --------------------------------------------------------------------------- reader


def test_dataset_reads_back_identically(dataset_dir: Path) -> None:
    config = DatasetConfig.from_root(dataset_dir, "train", resize_factor=1, normalize=False)
    ds = MultiViewDataset(config)
    sample = ds[0]
    subject, sequence, frame = ds.frames[0]
    folder = dataset_dir / "images" / subject / sequence / frame
    for i, name in enumerate(sample.view_names):
        img = np.asarray(Image.open(folder / f"{sequence}.{frame}.{name}.png").convert("RGB"))
        expect = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)
        torch.testing.assert_close(sample.images[i], expect, rtol=0, atol=0)
    v, _ = read_mesh(dataset_dir / "registrations" / subject / sequence / f"{sequence}.{frame}.ply")
    np.testing.assert_allclose(sample.registration.double().numpy() / 1000, v / 1000, atol=1e-6)
    scan = np.load(dataset_dir / "scans" / subject / sequence / f"{sequence}.{frame}.npy")
    full = MultiViewDataset(
        DatasetConfig.from_root(dataset_dir, "train", resize_factor=1, scan_points=len(scan))
    )[0]
    np.testing.assert_array_equal(full.scan.numpy(), scan)
    rig = read_rig_tka(dataset_dir / "calibrations" / subject / sequence)
    np.testing.assert_allclose(sample.K.numpy(), np.stack([c.K for c in rig]), atol=1e-5)
    np.testing.assert_allclose(sample.centers.numpy(), np.stack([c.center for c in rig]), atol=1e-3)
    assert sample.images.shape == (4, 3, 48, 64) and sample.Rt.shape == (4, 3, 4)
    assert sample.scan.shape == (20000, 3)


def test_scan_tags_follow_the_subsampled_points(dataset_dir: Path, tmp_path: Path) -> None:
    """With ``scan_tags`` the reader delivers each drawn point's tag: the points tagged as head
    lie on the registration within the scan noise, the others (hair cap, shoulders) do not."""
    config = DatasetConfig.from_root(dataset_dir, "train", scan_points=3000, scan_tags=True, seed=0)
    sample = MultiViewDataset(config)[0]
    assert sample.scan_extra is not None and sample.scan_extra.shape == (3000,)
    assert 0.05 < sample.scan_extra.float().mean() < 0.7
    faces = sample.faces.numpy()
    head = point_to_surface_distance(
        sample.scan[~sample.scan_extra].numpy(), sample.registration.numpy(), faces
    )
    assert np.mean(head < 0.9) > 0.99  # 3 sigma of the 0.3 mm noise
    extra = point_to_surface_distance(
        sample.scan[sample.scan_extra].numpy(), sample.registration.numpy(), faces
    )
    assert np.median(extra) > 3.0  # the cap is 5 mm over the scalp
    untagged = DatasetConfig.from_root(dataset_dir, "train", scan_points=3000, seed=0)
    assert MultiViewDataset(untagged)[0].scan_extra is None  # not asked for
    np.testing.assert_array_equal(MultiViewDataset(untagged)[0].scan, sample.scan)
    # tags that do not fit the scan name their file
    out = shutil.copytree(dataset_dir, tmp_path / "copy")
    subject, sequence, frame = MultiViewDataset(config).frames[0]
    bad = out / "scans" / subject / sequence / f"{sequence}.{frame}.extra.npy"
    np.save(bad, np.zeros(5, dtype=bool))
    with pytest.raises(DatasetError, match=r"extra\.npy.*scan tags must be"):
        MultiViewDataset(dataclasses.replace(config, scan_dir=out / "scans"))[0]


def test_dataset_resize_and_augmentation(dataset_dir: Path) -> None:
    config = DatasetConfig.from_root(dataset_dir, "train", resize_factor=2, augment=True, seed=1)
    ds = MultiViewDataset(config)
    batch = collate_frames([ds[0], ds[1]])
    assert batch["images"].shape == (2, 4, 3, 24, 32)
    assert batch["images_augmented"].shape == (2, 4, 3, 24, 32)
    K, Ka = batch["K"], batch["K_augmented"]
    s = Ka[..., 0, 0] / K[..., 0, 0]
    assert torch.all((s > 0.89) & (s < 1.11))
    torch.testing.assert_close(Ka[..., 1, 1] / K[..., 1, 1], s)
    # same seed, same sample; another epoch draws another augmentation, and epoch 1 repeats
    torch.testing.assert_close(ds[0].images_augmented, batch["images_augmented"][0])
    ds.set_epoch(1)
    epoch1 = ds[0].K_augmented
    assert not torch.allclose(epoch1, batch["K_augmented"][0])
    torch.testing.assert_close(ds[0].K_augmented, epoch1)


def test_dataset_errors_name_what_is_missing(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "broken"
    shutil.copytree(dataset_dir, out)
    ds = MultiViewDataset(DatasetConfig.from_root(out, "train", resize_factor=1))
    subject, sequence, frame = ds.frames[1]
    (out / "images" / subject / sequence / frame / f"{sequence}.{frame}.12_A.png").unlink()
    with pytest.raises(DatasetError, match=r"camera '12_A'.*missing") as info:
        ds[1]
    assert info.value.frame == frame and info.value.subject == subject
    img = out / "images" / subject / sequence / frame / f"{sequence}.{frame}.11_B.png"
    Image.new("L", (50, 40)).save(img)
    ds[0]  # other frames still fine
    shutil.copy(
        out / "images" / subject / sequence / frame / f"{sequence}.{frame}.11_A.png",
        out / "images" / subject / sequence / frame / f"{sequence}.{frame}.12_A.png",
    )
    with pytest.raises(DatasetError, match=r"camera '11_B'.*50x40"):
        ds[1]
    shutil.rmtree(out / "calibrations" / subject)
    fresh = MultiViewDataset(DatasetConfig.from_root(out, "train", resize_factor=1))
    with pytest.raises(DatasetError, match=rf"subject '{subject}'.*calibration"):
        fresh[1]


def test_material_places_brows_above_the_eyes_and_irises_on_the_eyeballs() -> None:
    template = load_procedural_head().template
    brows = eyebrow_weights(template)
    v = template.vertices
    for side in ("left", "right"):
        eye = v[template.regions[f"{side}_eye_region"]]
        near = (np.abs(v[:, 0] - eye[:, 0].mean()) < 15.0) & (brows > 0.5)
        assert near.sum() >= 10, f"no {side} brow"
        # brow vertices sit above the eye region's top, within ~15 mm
        assert np.all(v[near, 1] > eye[:, 1].max())
        assert np.all(v[near, 1] < eye[:, 1].max() + 15.0)
    eyeballs = np.concatenate([template.regions["left_eyeball"], template.regions["right_eyeball"]])
    assert np.all(brows[eyeballs] == 0.0)
    mat = material_weights(template)
    assert np.array_equal(mat[:, 0], brows)
    np.testing.assert_allclose(np.unique(mat[eyeballs, 2]), [0.3, 0.7, 0.95], rtol=1e-6)
    assert np.all(mat[template.regions["lips"], 1] == 1.0)
