"""Evaluation metrics, ``tempeh evaluate``, our model file and ``tempeh import-official``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from app.cli import main
from capture.errors import CheckpointError
from inference.evaluation import (
    ErrorAccumulator,
    error_statistics,
    face_region_labels,
    scan_to_mesh,
    vertex_errors,
    vertex_region_labels,
)
from inference.head_model import load_head_model_data
from inference.model_store import load_model, save_model
from inference.network.model import TempehModel
from inference.network.presets import preset

STAT_KEYS = {"median_mm", "mean_mm", "p90_mm"}


@pytest.fixture(scope="module")
def procedural_template():
    return load_head_model_data("procedural").template


@pytest.fixture(scope="module")
def lite_model_file(tmp_path_factory, procedural_template):
    torch.manual_seed(0)
    model = TempehModel(preset("lite"), procedural_template)
    path = tmp_path_factory.mktemp("model") / "lite.pt"
    save_model(path, model, {"kind": "procedural"})
    return path, model


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    argv = ["synth", "--rig", "test4", "--subjects", "2", "--sequences", "1", "--frames", "2"]
    assert main([*argv, "--seed", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_error_statistics_exact():
    errors = np.arange(11, dtype=np.float64)  # 0..10
    stats = error_statistics(errors)
    assert stats == {"median_mm": 5.0, "mean_mm": 5.0, "p90_mm": 9.0}
    stats = error_statistics(torch.tensor([1.0, 2.0, 3.0, 10.0]))
    assert stats["median_mm"] == 2.5
    assert stats["mean_mm"] == 4.0
    assert stats["p90_mm"] == pytest.approx(3.0 + 0.7 * 7.0)
    assert error_statistics(np.zeros(0)) == dict.fromkeys(STAT_KEYS)


def test_registration_against_itself_is_zero(procedural_template):
    v = torch.as_tensor(procedural_template.vertices, dtype=torch.float32)[None]
    faces = torch.as_tensor(procedural_template.faces)
    assert vertex_errors(v, v).abs().max() == 0
    dist, face_idx = scan_to_mesh(v[:, ::7], v, faces)
    assert dist.max().item() == pytest.approx(0.0, abs=1e-3)
    assert face_idx.shape == dist.shape


def test_region_labels_keep_small_regions(procedural_template):
    names, labels = vertex_region_labels(procedural_template)
    for name in ("lips", "left_eye_region", "left_eyeball"):
        if name in names:
            assert (labels == names.index(name)).any()
    flabels = face_region_labels(procedural_template.faces, labels)
    assert flabels.shape == (len(procedural_template.faces),)


def _check_stats(stats):
    assert set(stats) == STAT_KEYS
    for value in stats.values():
        assert value is None or math.isfinite(value)


@pytest.mark.gl
def test_scan_distance_on_the_head_leaves_out_the_tagged_points():
    acc = ErrorAccumulator.empty()
    s2m = np.array([0.2, 0.4, 5.0, 0.6, 5.2, 9.0])
    labels = np.array([0, 0, 0, 1, 1, 1])  # scalp 0 (hair over it), neck 1 (shoulders)
    extra = np.array([False, False, True, False, True, True])
    acc.add(np.zeros(3), np.array([0, 1, 1]), s2m, labels, extra)
    untagged = ErrorAccumulator.empty()
    untagged.add(np.zeros(3), np.array([0, 1, 1]), s2m, labels, None)
    report = acc.summary(["scalp", "neck"])
    assert report["s2m"]["median_mm"] == pytest.approx(2.8)
    assert report["s2m_head"]["median_mm"] == pytest.approx(0.4)
    assert report["regions"]["scalp"]["s2m"]["median_mm"] == pytest.approx(0.4)
    assert report["regions"]["scalp"]["s2m_head"]["median_mm"] == pytest.approx(0.3)
    assert report["regions"]["neck"]["s2m_head"]["median_mm"] == pytest.approx(0.6)
    assert untagged.summary(["scalp", "neck"])["s2m_head"] == dict.fromkeys(STAT_KEYS)


def test_evaluate_cli_json(tmp_path, capsys, lite_model_file, tiny_dataset, procedural_template):
    path, _ = lite_model_file
    out = tmp_path / "report"
    argv = ["evaluate", "--model", str(path), "--data", str(tiny_dataset), "--out", str(out)]
    code = main([*argv, "--max-frames", "1", "--scan-points", "200", "--views", "3", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"frames", "coarse", "refined"}
    assert report["frames"] == 1
    for stage in ("coarse", "refined"):
        assert set(report[stage]) == {"v2v", "s2m", "s2m_head", "regions"}
        for key in ("v2v", "s2m", "s2m_head"):  # the synthetic scans are tagged
            _check_stats(report[stage][key])
            assert report[stage][key]["median_mm"] is not None
        assert set(report[stage]["regions"]) == set(procedural_template.regions)
        for region in report[stage]["regions"].values():
            assert set(region) == {"v2v", "s2m", "s2m_head"}
            for key in ("v2v", "s2m", "s2m_head"):
                _check_stats(region[key])
    assert json.loads((out / "report.json").read_text()) == report
    pngs = sorted(out.glob("heatmap_*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 0 for p in pngs)


def test_evaluate_default_model(tmp_path, capsys, tiny_dataset, monkeypatch):
    argv = ["evaluate", "--model", "default", "--data", str(tiny_dataset), "--json"]
    argv += ["--max-frames", "1", "--scan-points", "200", "--no-heatmaps"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 1
    # --precision adds the fp32 comparison, measured on the same frame
    assert main([*argv, "--out", str(tmp_path / "p"), "--precision", "fp16"]) == 0
    report = json.loads(capsys.readouterr().out)
    info = report["precision"]
    assert (info["dtype"], info["device"], report["frames"]) == ("fp16", "cpu", 1)
    for stage in ("coarse", "refined"):
        assert set(info["vs_fp32"][stage]) == STAT_KEYS | {"max_mm", "over_1mm"}
        assert 0.0 <= info["vs_fp32"][stage]["over_1mm"] <= 1.0
        assert 0.0 < info["vs_fp32"][stage]["median_mm"] <= info["vs_fp32"][stage]["max_mm"]
        _check_stats(info["fp32"][stage]["v2v"])
    # an installation that lost the shipped file says what to do
    from inference import model_store

    monkeypatch.setattr(model_store, "DEFAULT_MODEL", tmp_path / "gone" / "default.pt")
    assert main([*argv, "--out", str(tmp_path / "r2")]) == 2
    assert "shipped default model is missing" in capsys.readouterr().err


def test_model_file_round_trip(lite_model_file):
    path, model = lite_model_file
    loaded, template = load_model(path)
    assert template.num_vertices == model.coarse.num_vertices
    for a, b in ((model.coarse, loaded.coarse), (model.refine, loaded.refine)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_corrupted_model_file_names_file(tmp_path, lite_model_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(lite_model_file[0].read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt.*not a tempeh-studio-model"):
        load_model(other)
    with pytest.raises(CheckpointError, match=r"missing\.pt"):
        load_model(tmp_path / "missing.pt")


def test_template_mismatch_names_file(tmp_path, lite_model_file):
    data = torch.load(lite_model_file[0], weights_only=True)
    data["num_vertices"] = 5023
    wrong = tmp_path / "wrong_template.pt"
    torch.save(data, wrong)
    with pytest.raises(CheckpointError, match=r"wrong_template\.pt.*5023-vertex"):
        load_model(wrong)


def test_import_official_round_trip(tmp_path, capsys):
    from inference.flame import load_flame
    from inference.flame_standin import write_flame_standin
    from inference.network.official import export_official_layout

    flame = write_flame_standin(tmp_path / "flame.pkl", seed=3)
    torch.manual_seed(1)
    model = TempehModel(preset("tempeh"), load_flame(flame).template)
    coarse, refine = export_official_layout(model)
    (tmp_path / "coarse" / "checkpoints").mkdir(parents=True)
    torch.save({"model": coarse}, tmp_path / "coarse" / "checkpoints" / "model_00000001.pth")
    torch.save({"model": refine}, tmp_path / "refine.pth")
    out = tmp_path / "official.pt"
    argv = ["import-official", "--coarse", str(tmp_path / "coarse")]
    argv += ["--refinement", str(tmp_path / "refine.pth"), "--flame", str(flame)]
    assert main([*argv, "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    loaded, template = load_model(out)
    assert template.num_vertices == 5023
    assert loaded.config.compat is True
    for ours, theirs in (
        (coarse, loaded.coarse.state_dict()),
        (refine, loaded.refine.state_dict()),
    ):
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_stage_intrinsics_point_where_the_resized_image_shows_the_point():
    """A bright dot drawn at a projected point, shrunk 1/16 as the model shrinks its frames, is
    where the stage's intrinsics project the point (pixel-area convention); the plain ratio the
    model used to apply is half a pixel off."""
    from inference.geometry import project_points, scale_intrinsics

    H, W, f = 480, 640, 16
    K = torch.tensor([[[[800.0, 0.0, 317.3], [0.0, 800.0, 243.8], [0.0, 0.0, 1.0]]]])
    Rt = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [1000.0]])], dim=1)[None, None]
    point = torch.tensor([[[31.0, -17.0, 0.0]]])
    no_dist = torch.zeros(1, 1, 2)
    u, v = project_points(point, K, Rt, no_dist)[0, 0, 0].tolist()
    ys, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    dot = torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 6.0**2))
    small = torch.nn.functional.interpolate(
        dot[None, None], size=(H // f, W // f), mode="bilinear", antialias=True
    )[0, 0]
    sy, sx = torch.meshgrid(torch.arange(float(H // f)), torch.arange(float(W // f)), indexing="ij")
    seen = torch.stack([(small * sx).sum(), (small * sy).sum()]) / small.sum()
    off = {}
    for pixel_area in (True, False):
        Ks = scale_intrinsics(K, (H, W), (H // f, W // f), pixel_area)
        at = project_points(point, Ks, Rt, no_dist)[0, 0, 0]
        off[pixel_area] = float((at - seen).norm())
    assert off[True] < 0.03, off
    # the plain ratio misses by (1 - 1/16) / 2 px on each axis: 0.66 px, 10 mm at 1 m here
    assert 0.6 < off[False] < 0.72, off
    # scaling back up with the same convention inverts it
    Ks = scale_intrinsics(K, (H, W), (H // f, W // f))
    torch.testing.assert_close(scale_intrinsics(Ks, (H // f, W // f), (H, W)), K)


def test_every_path_gives_each_stage_the_intrinsics_it_was_trained_with(tiny_dataset):
    """The coarse stage trains on the dataset read at 1/16, the refinement at 1/8. Evaluation
    (a sample read at 1/8, scaled up to full size) and the live pipeline (the rig's cameras)
    must hand the model intrinsics that it scales to exactly those."""
    from capture.rig_json import read_rig_json
    from inference.dataset import DatasetConfig, MultiViewDataset
    from inference.evaluation import frame_batch
    from inference.geometry import scale_intrinsics
    from inference.preprocess import RigTensors

    def sample(factor: int):
        config = DatasetConfig.from_root(tiny_dataset, "train", resize_factor=factor)
        return MultiViewDataset(config)[0]

    trained = {16: sample(16), 8: sample(8)}
    views = torch.ones(trained[8].images.shape[0], dtype=torch.bool)
    batch = frame_batch(trained[8], 8, views)
    cameras = read_rig_json(tiny_dataset / "rig.json")
    rig = RigTensors.build(cameras, preset("lite"), torch.device("cpu"))
    for K, full in ((batch.K[0], batch.full_size), (rig.K[0], rig.full_size)):
        for seen in trained.values():
            size = tuple(seen.images.shape[-2:])
            given = scale_intrinsics(K, full, size)
            torch.testing.assert_close(given, seen.K, atol=1e-4, rtol=0)
