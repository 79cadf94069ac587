"""The TEMPEH network: official layout, checkpoint import/export, config, lite forward.

Layout tests read the official listing from ``shared/`` beside the checkout and skip, saying
why, where it is absent; forward tests run the lite preset on small inputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from capture.errors import CheckpointError
from inference.head_data import HeadTemplate
from inference.network.config import ModelConfig, from_dict, to_dict
from inference.network.feature_net import FeatureNet
from inference.network.localizer import IDENTITY_BIAS, RigidGridLocalizer
from inference.network.model import MultiViewBatch, TempehModel
from inference.network.official import (
    export_official_layout,
    import_official,
    official_to_ours,
    ours_to_official,
)
from inference.network.presets import LITE, PRESETS, TEMPEH, preset
from inference.network.v2v import V2VModel


def _template(n: int) -> HeadTemplate:
    """A closed UV sphere of about ``n`` vertices, radius 90 mm, centred at (0, -50, 0)."""
    rings = max(3, round(math.sqrt(n / 2)))
    segs = max(4, (n - 2) // rings)
    verts = [(0.0, 0.0, 90.0)]
    for i in range(1, rings + 1):
        th = math.pi * i / (rings + 1)
        for j in range(segs):
            ph = 2 * math.pi * j / segs
            verts.append(
                (
                    90 * math.sin(th) * math.cos(ph),
                    90 * math.sin(th) * math.sin(ph),
                    90 * math.cos(th),
                )
            )
    verts.append((0.0, 0.0, -90.0))
    faces = []
    last = len(verts) - 1
    for j in range(segs):
        faces.append((0, 1 + j, 1 + (j + 1) % segs))
        base = 1 + (rings - 1) * segs
        faces.append((last, base + (j + 1) % segs, base + j))
    for i in range(rings - 1):
        for j in range(segs):
            a, b = 1 + i * segs + j, 1 + i * segs + (j + 1) % segs
            faces += [(a, a + segs, b), (b, a + segs, b + segs)]
    v = np.array(verts) + np.array([0.0, -50.0, 0.0])
    return HeadTemplate(v, np.array(faces, dtype=np.int64), name="sphere")


def _flame_size_template() -> HeadTemplate:
    return HeadTemplate(np.zeros((5023, 3)), np.zeros((1, 3), dtype=np.int64), name="flame")


@pytest.fixture(scope="module")
def tempeh_model() -> TempehModel:
    """The full official-size model (about 63 M parameters; never run forward in tests)."""
    torch.manual_seed(0)
    return TempehModel(TEMPEH, _flame_size_template())


@pytest.fixture
def official_listing(shared_tempeh) -> dict:
    return json.loads((shared_tempeh / "official_state_dict_keys.json").read_text())


def _listing(stage: torch.nn.Module) -> list[list]:
    return [
        [ours_to_official(k), list(v.shape), str(v.dtype).removeprefix("torch.")]
        for k, v in stage.state_dict().items()
    ]


# ---------------------------------------------------------------- official layout


def test_tempeh_layout_equals_official_listing(tempeh_model, official_listing):
    assert _listing(tempeh_model.coarse) == official_listing["coarse"]
    assert _listing(tempeh_model.refine) == official_listing["refinement"]


def test_key_map_covers_every_official_key(tempeh_model, official_listing):
    for part, stage in (("coarse", tempeh_model.coarse), ("refinement", tempeh_model.refine)):
        ours = stage.state_dict()
        for name, shape, _ in official_listing[part]:
            key = official_to_ours(name)
            assert key in ours, name
            assert list(ours[key].shape) == shape, name
            assert ours_to_official(key) == name


def test_tempeh_parameter_counts(tempeh_model):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(tempeh_model.coarse) == 35_421_219
    assert count(tempeh_model.refine) == 27_457_993


# ---------------------------------------------------------------- checkpoints


def _write_run(run: Path, sd: dict, step: int = 100) -> Path:
    path = run / "checkpoints" / f"model_{step:08d}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": sd, "optimizer_model": {}}, path)
    return path


def test_official_checkpoint_round_trip(tempeh_model, tmp_path):
    coarse_sd, refine_sd = export_official_layout(tempeh_model)
    _write_run(tmp_path / "coarse", {k: torch.zeros(1) for k in list(coarse_sd)[:1]}, step=50)
    _write_run(tmp_path / "coarse", coarse_sd, step=100)  # the latest file wins
    refine_file = _write_run(tmp_path / "refine", refine_sd)
    got_c, got_r = import_official(tmp_path / "coarse", refine_file)
    for want, got in ((coarse_sd, got_c), (refine_sd, got_r)):
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


@pytest.fixture(scope="module")
def lite_model() -> TempehModel:
    torch.manual_seed(0)
    return TempehModel(LITE, _template(200))


def test_import_loads_into_model(lite_model, tmp_path):
    coarse_sd, refine_sd = export_official_layout(lite_model)
    coarse_sd = {k: v + 1 if v.is_floating_point() else v for k, v in coarse_sd.items()}
    other = TempehModel(LITE, _template(200))
    c = _write_run(tmp_path / "c", coarse_sd)
    r = _write_run(tmp_path / "r", refine_sd)
    import_official(c, r, model=other)
    for k, v in other.coarse.state_dict().items():
        assert torch.equal(v, coarse_sd[k]), k


@pytest.mark.parametrize("defect", ["corrupt", "missing", "unexpected", "shape", "no_model"])
def test_bad_checkpoints_raise_checkpoint_error(lite_model, tmp_path, defect):
    coarse_sd, refine_sd = export_official_layout(lite_model)
    key = next(iter(coarse_sd))
    if defect == "missing":
        del coarse_sd[key]
    elif defect == "unexpected":
        coarse_sd["feature_net.model.extra.weight"] = torch.zeros(1)
    elif defect == "shape":
        coarse_sd[key] = torch.zeros(2, 2)
    bad = _write_run(tmp_path / "c", coarse_sd)
    if defect == "corrupt":
        bad.write_bytes(b"not a torch file")
    elif defect == "no_model":
        torch.save({"weights": coarse_sd}, bad)
    good = _write_run(tmp_path / "r", refine_sd)
    with pytest.raises(CheckpointError) as err:
        import_official(bad, good, model=TempehModel(LITE, _template(200)))
    assert str(bad) in str(err.value)
    if defect in ("missing", "shape"):
        assert key in str(err.value)


def test_missing_run_dir_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty"):
        import_official(tmp_path / "empty", tmp_path / "nothing")


# ---------------------------------------------------------------- config and modules


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    config = preset(name)
    assert from_dict(ModelConfig, json.loads(json.dumps(to_dict(config)))) == config


def test_unknown_preset_and_key():
    with pytest.raises(KeyError, match="lite"):
        preset("huge")
    with pytest.raises(ValueError, match="bogus"):
        from_dict(ModelConfig, {"bogus": 1})


def test_feature_net_full_resolution_output():
    net = FeatureNet(LITE.coarse.feature_net).eval()
    out = net(torch.randn(2, 3, 75, 100))
    assert out.shape == (2, 8, 75, 100)


def test_v2v_shapes_and_localizer_init():
    v2v = V2VModel(19, 1, TEMPEH.refine.v2v)
    assert v2v(torch.randn(2, 19, 8, 8, 8)).shape == (2, 1, 8, 8, 8)
    loc = RigidGridLocalizer(16, 16, LITE.coarse.localizer).eval()
    raw = loc(torch.randn(2, 16, 16, 16, 16))
    assert torch.allclose(raw, torch.tensor(IDENTITY_BIAS).expand(2, 12))


# ---------------------------------------------------------------- forward


def _rig(B: int, V: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """V cameras on a ring 700 mm from (0, -50, 0), looking at it; K at (H, W)."""
    K = torch.tensor([[1.5 * W, 0, W / 2], [0, 1.5 * W, H / 2], [0, 0, 1.0]])
    Rts = []
    target = torch.tensor([0.0, -50.0, 0.0])
    for v in range(V):
        a = 2 * math.pi * v / V
        c = target + torch.tensor([700 * math.sin(a), 0.0, 700 * math.cos(a)])
        z = (target - c) / (target - c).norm()
        x = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), z)
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        R = torch.stack([x, y, z])
        Rts.append(torch.cat([R, -(R @ c)[:, None]], dim=1))
    Rt = torch.stack(Rts).expand(B, V, 3, 4)
    return K.expand(B, V, 3, 3), Rt, torch.zeros(B, V, 2)


def _batch(B=1, V=4, H=96, W=128, seed=0) -> MultiViewBatch:
    g = torch.Generator().manual_seed(seed)
    K, Rt, dist = _rig(B, V, H, W)
    images = torch.randint(0, 256, (B, V, 3, H, W), generator=g, dtype=torch.uint8)
    return MultiViewBatch(images, K, Rt, dist, torch.ones(B, V, dtype=torch.bool))


def test_lite_forward_finite_and_gradients_reach_all_parameters():
    torch.manual_seed(0)
    template = _template(200)
    model = TempehModel(LITE, template).train()
    out = model(_batch(B=2), random_grid=True, generator=torch.Generator().manual_seed(1))
    assert out.coarse.shape == out.refined.shape == (2, len(template.vertices), 3)
    assert torch.isfinite(out.coarse).all() and torch.isfinite(out.refined).all()
    assert set(out.timings) == {"prepare", "coarse", "refine"}
    (out.coarse.sum() + out.refined.sum()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, no_grad[:5]


def test_heatmap_prior_starts_the_coarse_stage_at_the_template():
    """With ``heatmap_prior_sigma`` the heatmap layer also sees the grid positions, and its
    initial weights put a Gaussian around each template vertex: with the V2V's own share of the
    logits zeroed, an untrained stage (identity localizer) returns the template, to within a
    millimetre for vertices inside the grid. Without a template the prior starts at zero."""
    from dataclasses import replace

    from inference.network.coarse import POSITION_CHANNELS, CoarseStage, grid_position_features

    torch.manual_seed(0)
    config = replace(LITE.coarse, heatmap_prior_sigma=0.1)
    template = _template(300)
    verts = torch.as_tensor(template.vertices, dtype=torch.float32)
    stage = CoarseStage(config, len(verts), False, verts).eval()
    layer = stage.sparse_point_net.global_net.output_layer
    assert layer.weight.shape[1] == config.v2v.back_channels[-1] + POSITION_CHANNELS
    with torch.no_grad():
        layer.weight[:, :-POSITION_CHANNELS] = 0.0
    batch = _batch(B=1, V=4, H=48, W=64)
    images = (batch.images.float() / 255 - 0.45) / 0.25
    K = batch.K.clone()
    K[..., :2, :] /= 2
    with torch.no_grad():
        out = stage(images, K, batch.Rt, batch.dist, batch.view_mask)
    # inside the grid: |o| < 0.8 per axis at the initial scale (the sphere spans about ±0.5)
    o = grid_position_features(config)[:3]
    assert o.amin() < -1.0 and o.amax() > 0.9 and o.shape[1:] == (16, 16, 16)
    error = (out.vertices[0] - verts).norm(dim=-1)
    assert error.max() < 1.0, error.max()

    bare = CoarseStage(config, len(verts))
    assert (
        bare.sparse_point_net.global_net.output_layer.weight[:, -POSITION_CHANNELS:].abs().max()
        == 0
    )
    with pytest.raises(RuntimeError, match="features"):
        bare.sparse_point_net.global_net(torch.zeros(1, 16, 16, 16, 16))
    with pytest.raises(ValueError, match="heatmap_prior_sigma"):
        replace(LITE.coarse, heatmap_prior_sigma=-1.0)
    assert from_dict(ModelConfig, {"coarse": {"voxel_dim": 16}}).coarse.heatmap_prior_sigma == 0.0


def test_masked_view_changes_nothing():
    torch.manual_seed(0)
    model = TempehModel(LITE, _template(200)).eval()
    batch = _batch(V=4)
    mask = torch.tensor([[True, True, False, True]])
    garbage = batch.images.clone()
    garbage[:, 2] = 255 - garbage[:, 2]
    with torch.no_grad():
        a = model(MultiViewBatch(batch.images, batch.K, batch.Rt, batch.dist, mask))
        b = model(MultiViewBatch(garbage, batch.K, batch.Rt, batch.dist, mask))
    torch.testing.assert_close(a.coarse, b.coarse)
    torch.testing.assert_close(a.refined, b.refined)


def test_origin_shift_equals_a_grid_moved_by_the_config():
    """Shifting the search grid per frame (training) is the same as a model whose grid origin
    is that far away: same vertices, grid centre and localized grid."""
    from dataclasses import replace

    from inference.network.coarse import CoarseStage

    torch.manual_seed(0)
    n = 50
    shift = torch.tensor([[30.0, -20.0, 45.0], [0.0, 0.0, 0.0]])
    base = CoarseStage(LITE.coarse, n).eval()
    moved = CoarseStage(
        replace(LITE.coarse, origin=tuple((torch.tensor(LITE.coarse.origin) + shift[0]).tolist())),
        n,
    ).eval()
    moved.load_state_dict(base.state_dict())
    batch = _batch(B=2, V=4, H=48, W=64)
    images = (batch.images.float() / 255 - 0.45) / 0.25
    K = batch.K.clone()
    K[..., :2, :] /= 2  # the rig's intrinsics are for 96 x 128
    with torch.no_grad():
        a = base(images, K, batch.Rt, batch.dist, batch.view_mask, origin_shift=shift)
        b = moved(images, K, batch.Rt, batch.dist, batch.view_mask)
        c = base(images, K, batch.Rt, batch.dist, batch.view_mask)
    torch.testing.assert_close(a.vertices[0], b.vertices[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(a.grid_center[0], b.grid_center[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(a.vertices[1], c.vertices[1], atol=1e-4, rtol=0)
    assert (a.vertices[0] - c.vertices[0]).norm(dim=-1).mean() > 1.0


def test_chunked_heatmap_gradients_equal_the_plain_soft_argmax():
    """Training reduces the coarse heatmaps a chunk at a time too, and its backward recomputes
    each chunk: the gradients of the features, weights, bias and positions are those of the
    plain soft-argmax over a convolution (float64, to 1e-9 of their size)."""
    import torch.nn.functional as F  # noqa: N812

    from inference.geometry import soft_argmax, soft_argmax_linear

    torch.manual_seed(1)
    kw = {"dtype": torch.float64, "requires_grad": True}
    features = torch.randn(2, 8, 5, 5, 5, **kw)
    weight, bias = torch.randn(300, 8, 1, 1, 1, **kw), torch.randn(300, **kw)
    positions = (torch.randn(2, 3, 5, 5, 5, dtype=torch.float64) * 100).requires_grad_()
    upstream = torch.randn(2, 300, 3, dtype=torch.float64)
    leaves = (features, weight, bias, positions)
    names = ("features", "weight", "bias", "positions")

    def gradients(vertices):
        return torch.autograd.grad((vertices * upstream).sum(), leaves)

    plain = gradients(soft_argmax(F.conv3d(features, weight, bias), positions))
    for chunk in (7, 256, 1000):
        chunked = gradients(soft_argmax_linear(features, weight, bias, positions, chunk))
        for name, a, b in zip(names, chunked, plain, strict=True):
            assert a.shape == b.shape, name
            scale = b.abs().max().clamp_min(1.0)
            assert (a - b).abs().max() <= 1e-9 * scale, name
    # a bias shifts a heatmap evenly: its gradient is zero, exactly in the chunked backward
    assert plain[2].abs().max() < 1e-9
    assert torch.autograd.gradcheck(
        lambda *t: soft_argmax_linear(*t, 7),
        (features[:1], weight[:20], bias[:20], positions[:1]),
    )


def test_heatmaps_in_chunks_equal_the_plain_soft_argmax():
    """Inference (no gradients) and training both reduce the coarse heatmaps a chunk at a time;
    the vertices equal the plain soft-argmax over every logit at once."""
    import torch.nn.functional as F  # noqa: N812

    from inference.geometry import soft_argmax, soft_argmax_linear
    from inference.network.coarse import CoarseStage

    torch.manual_seed(0)
    features = torch.randn(2, 8, 5, 5, 5)
    weight, bias = torch.randn(300, 8, 1, 1, 1), torch.randn(300)
    positions = torch.randn(2, 3, 5, 5, 5) * 100
    plain = soft_argmax(F.conv3d(features, weight, bias), positions)
    for chunk in (7, 256, 1000):
        chunked = soft_argmax_linear(features, weight, bias, positions, chunk)
        torch.testing.assert_close(chunked, plain, atol=1e-3, rtol=0)  # mm: 1 µm

    stage = CoarseStage(LITE.coarse, 600).eval()  # 600 heatmaps: three chunks, the last short
    batch = _batch(B=2, V=4, H=48, W=64)
    images = (batch.images.float() / 255 - 0.45) / 0.25
    K = batch.K.clone()
    K[..., :2, :] /= 2  # the rig's intrinsics are for 96 x 128
    args = (images, K, batch.Rt, batch.dist, batch.view_mask)
    trained = stage(*args)
    assert trained.vertices.requires_grad
    with torch.inference_mode():
        inferred = stage(*args)
    # mm; the V2V's innermost grids are matrix products at inference (GridConv3d)
    torch.testing.assert_close(inferred.vertices, trained.vertices.detach(), atol=1e-2, rtol=0)
    assert trained.vertices.std(dim=1).min() > 1.0  # not a degenerate all-equal answer


@pytest.mark.parametrize("name", ["lite", "tempeh"])
def test_small_grids_as_matrix_products_equal_the_convolutions(name):
    """Without gradients the refinement V2V convolves grids of <= 8 voxels (a lite cube's 2³ and 1³,
    TEMPEH's innermost levels) as matrix products; the answer is the convolutions'."""
    from inference.network import v2v

    config = preset(name).refine
    torch.manual_seed(0)
    net = V2VModel(2 * config.feature_net.descriptor_dim + 3, 1, config.v2v).eval()
    for m in net.modules():  # running statistics away from the identity
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    d = config.voxel_dim
    x = torch.randn(6, 2 * config.feature_net.descriptor_dim + 3, d, d, d)

    def small(layer):
        return [m for m in layer.modules() if getattr(m, "_dense", None) is not None]

    plain = net(x)
    assert not small(net)
    with torch.no_grad():
        fast = net(x)
    taken = small(net)  # the layers that took the matrix path, with their grid sizes
    assert taken and all(math.prod(m._dense[0][0]) <= v2v.DENSE_MAX_VOXELS for m in taken)
    # the matrices are kept, and made again when the weights change
    with torch.no_grad():
        torch.testing.assert_close(net(x), fast, atol=0, rtol=0)
        layer = taken[0]
        layer.weight.mul_(2.0)
        again = net(x)
        assert layer._dense[0][-1] == layer.weight._version
        assert (again - fast).abs().max() > 1e-4
        layer.weight.div_(2.0)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-5, rtol=1e-5)


def test_taubin_smoothing_removes_noise_without_shrinking():
    from inference.geometry import neighbour_mean_operator, taubin_smooth
    from inference.head_data import unique_edges
    from inference.procedural.fields import smooth_field

    sphere = _template(2000)
    centre = torch.tensor([0.0, -50.0, 0.0], dtype=torch.float64)
    v = torch.as_tensor(sphere.vertices)[None]
    g = torch.Generator().manual_seed(0)
    noisy = v + torch.randn(v.shape, generator=g, dtype=torch.float64)  # 1 mm per axis
    edges = unique_edges(sphere.faces)
    neighbours = neighbour_mean_operator(torch.as_tensor(edges), len(sphere.vertices), v.dtype)

    def radius_error(x):
        r = (x[0] - centre).norm(dim=-1)
        return float((r - 90).mean()), float((x[0] - v[0]).norm(dim=-1).median())

    _, before = radius_error(noisy)
    smoothed = taubin_smooth(noisy, neighbours, 10)
    shrink, after = radius_error(smoothed)
    assert before > 1.4 and after < 0.6 * before, (before, after)
    assert abs(shrink) < 0.3, shrink
    assert torch.equal(taubin_smooth(noisy, neighbours, 0), noisy)
    # the same two Jacobi steps per iteration, written over the edge list in numpy
    reference = noisy[0].numpy()
    for _ in range(10):
        reference = smooth_field(reference, edges, 1, 0.5)
        reference = reference - 0.53 * (smooth_field(reference, edges, 1, 1.0) - reference)
    np.testing.assert_allclose(smoothed[0].numpy(), reference, atol=1e-9)


def test_repeated_neighbour_mean_averages_each_trailing_value_over_the_neighbours():
    from inference.geometry import neighbour_mean_operator, repeat_neighbour_mean

    # a path 0-1-2-3: vertex 1's neighbours are 0 and 2
    table = neighbour_mean_operator(torch.tensor([[0, 1], [1, 2], [2, 3]]), 4)
    values = torch.arange(24, dtype=torch.float32).view(4, 2, 3)
    once = repeat_neighbour_mean(values, table, 1)
    assert once.shape == (4, 2, 3)
    torch.testing.assert_close(once[1], (values[0] + values[2]) / 2)
    torch.testing.assert_close(once[0], values[1])
    torch.testing.assert_close(
        repeat_neighbour_mean(values, table, 2), repeat_neighbour_mean(once, table, 1)
    )
    torch.testing.assert_close(repeat_neighbour_mean(values, table, 0), values)


def test_output_smoothing_applies_to_the_refined_mesh_at_inference_only():
    from dataclasses import replace

    from inference.geometry import neighbour_mean_operator, taubin_smooth
    from inference.head_data import unique_edges

    torch.manual_seed(0)
    template = _template(200)
    raw = TempehModel(replace(LITE, refine=replace(LITE.refine, output_smoothing=0)), template)
    smoothed = TempehModel(replace(LITE, refine=replace(LITE.refine, output_smoothing=3)), template)
    smoothed.load_state_dict(raw.state_dict())
    n = len(template.vertices)
    table = neighbour_mean_operator(torch.as_tensor(unique_edges(template.faces)), n)
    batch = _batch(V=4)
    with torch.no_grad():
        a, b = raw.eval()(batch), smoothed.eval()(batch)
        torch.testing.assert_close(b.coarse, a.coarse)
        torch.testing.assert_close(b.refined, taubin_smooth(a.refined, table, 3))
        assert (b.refined - a.refined).norm(dim=-1).max() > 1e-3
        pair = _batch(B=2, V=4)  # batch norm in training needs more than one frame
        a, b = raw.train()(pair), smoothed.train()(pair)
    torch.testing.assert_close(b.refined, a.refined)


def _normal_model(template: HeadTemplate, **changes) -> TempehModel:
    """The lite preset (a normal search) without its output smoothing."""
    from dataclasses import replace

    refine = replace(LITE.refine, output_smoothing=0, logit_smoothing=0)
    return TempehModel(replace(LITE, refine=replace(refine, **changes)), template).eval()


def test_fusion_takes_normal_lines_as_it_takes_cubes():
    """The same eight points per vertex, as a 2³ cube or as an 8-point line, fuse alike."""
    from inference import fusion
    from inference.geometry import flatten_grid_points, grid_offsets, local_grid_points

    g = torch.Generator().manual_seed(0)
    K, Rt, _ = _rig(1, 4, 96, 128)
    centers = -(Rt[..., :3].transpose(-1, -2) @ Rt[..., 3:]).squeeze(-1)
    vertices = torch.randn(1, 5, 3, generator=g) * 30 + torch.tensor([0.0, -50.0, 0.0])
    normals = torch.nn.functional.normalize(torch.randn(1, 5, 3, generator=g), dim=-1)
    vis = torch.rand(1, 4, 5, generator=g)
    feats = torch.randn(1, 4, 6, 96, 128, generator=g)
    cube = local_grid_points(vertices, grid_offsets(2, 4.0, centered=True))
    line = cube.flatten(3)  # (1, 5, 3, 8)
    fused = []
    for points in (cube, line):
        flat = flatten_grid_points(points)
        samples, inside = fusion.sample_views(feats, flat, K, Rt, torch.zeros(1, 4, 2))
        fused.append(fusion.surface_aware_fusion(samples, inside, points, centers, normals, vis))
    assert fused[0].shape == (1, 12, 5, 2, 2, 2) and fused[1].shape == (1, 12, 5, 8)
    torch.testing.assert_close(fused[0].flatten(3), fused[1])


def test_normal_search_moves_vertices_along_their_normals_within_the_line():
    from inference.geometry import vertex_normals

    torch.manual_seed(0)
    template = _template(200)
    model = _normal_model(template)
    assert not hasattr(model.refine.local_densify_net, "local_net")
    with torch.no_grad():
        out = model(_batch(V=4))
    moved = out.refined - out.coarse
    normals = vertex_normals(out.coarse, torch.as_tensor(template.faces))
    along = (moved * normals).sum(-1)
    tangential = moved - along[..., None] * normals
    assert tangential.norm(dim=-1).max() < 1e-4
    assert along.abs().max() <= 8.0 + 1e-4  # 9 samples 2 mm apart: at most 8 mm
    assert along.abs().max() > 1e-3  # an untrained net still moves the vertices


def test_normal_search_follows_the_scores_and_smooths_them_over_the_mesh():
    """Flat scores leave the mesh alone; scores that pick the outermost sample move the vertex
    8 mm out; with score smoothing one vertex's vote moves its neighbours, not far vertices."""
    from inference.geometry import vertex_normals
    from inference.head_data import unique_edges

    torch.manual_seed(0)
    template = _template(200)
    faces = torch.as_tensor(template.faces)
    batch = _batch(V=4)
    n = len(template.vertices)

    def scores(pick: torch.Tensor):
        def forward(x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], x.shape[-1])
            out[pick, -1] = 50.0
            return out

        return forward

    plain, smoothed = _normal_model(template), _normal_model(template, logit_smoothing=1)
    with torch.no_grad():
        plain.refine.local_densify_net.normal_net.forward = scores(torch.zeros(n, dtype=bool))
        out = plain(batch)
        torch.testing.assert_close(out.refined, out.coarse)
        plain.refine.local_densify_net.normal_net.forward = scores(torch.ones(n, dtype=bool))
        out = plain(batch)
        normals = vertex_normals(out.coarse, faces)
        torch.testing.assert_close(out.refined, out.coarse + 8.0 * normals, atol=1e-3, rtol=0)

        one = torch.zeros(n, dtype=bool)
        one[0] = True
        smoothed.refine.local_densify_net.normal_net.forward = scores(one)
        out = smoothed(batch)
    normals = vertex_normals(out.coarse, faces)
    along = ((out.refined - out.coarse) * normals).sum(-1)[0]
    edges = unique_edges(template.faces)
    ring = np.unique(np.concatenate([edges[edges[:, 0] == 0, 1], edges[edges[:, 1] == 0, 0]]))
    assert (along[ring] > 0.1).all()
    far = np.setdiff1d(np.arange(n), np.concatenate([ring, [0]]))
    assert along[far].abs().max() < 1e-4


def test_refine_search_is_validated_and_old_configs_read_as_grid():
    from inference.network.config import RefineConfig

    with pytest.raises(ValueError, match="search"):
        RefineConfig(search="sphere")
    with pytest.raises(ValueError, match="normal_samples"):
        RefineConfig(normal_samples=1)
    data = to_dict(LITE)
    for key in ("search", "normal_samples", "normal_inc", "normal_hidden", "logit_smoothing"):
        del data["refine"][key]
    assert from_dict(ModelConfig, data).refine.search == "grid"


def test_truncated_checkpoint_raises(lite_model, tmp_path):
    coarse_sd, refine_sd = export_official_layout(lite_model)
    bad = _write_run(tmp_path / "c", coarse_sd)
    bad.write_bytes(bad.read_bytes()[:1000])
    good = _write_run(tmp_path / "r", refine_sd)
    with pytest.raises(CheckpointError, match=r"model_00000100\.pth"):
        import_official(bad, good)


def test_stage_input_shapes_are_checked(lite_model):
    K, Rt, dist = _rig(1, 4, 32, 48)
    with pytest.raises(ValueError, match="view_mask"):
        lite_model.coarse(
            torch.zeros(1, 4, 3, 32, 48), K, Rt, dist, torch.ones(1, 3, dtype=torch.bool)
        )


def test_input_size_feeds_the_trained_image_sizes_to_any_rig():
    """A model trained at 96x128 sees the same stage images from a rig recorded at 48x64."""
    import dataclasses

    torch.manual_seed(0)
    config = dataclasses.replace(LITE, input_size=(96, 128))
    model = TempehModel(config, _template(200)).eval()
    seen = []
    for stage in (model.coarse, model.refine):
        stage.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    full, small = _batch(H=96, W=128), _batch(H=48, W=64)
    with torch.no_grad():
        model(full)
        model(small)
    expected = [(96 // 16, 128 // 16), (96 // 8, 128 // 8)]
    assert seen == expected * 2
    assert from_dict(ModelConfig, json.loads(json.dumps(to_dict(config)))) == config
