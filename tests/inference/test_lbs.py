"""LBS math and the HeadModel module on a small synthetic model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from capture.errors import HeadModelError
from inference.head_model import HeadModel, HeadOutput
from inference.lbs import lbs, rigid_transforms, rodrigues

JAW = 2  # jaw joint index; the synthetic head leaves vertices 0::2 off it


def _lbs_inputs(data, dtype=torch.float64):
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return dict(
        v_template=t(data.template.vertices),
        shapedirs=t(data.shapedirs),
        exprdirs=t(data.exprdirs),
        posedirs=t(data.posedirs),
        J_regressor=t(data.J_regressor),
        parents=torch.as_tensor(data.parents),
        weights=t(data.weights),
    )


def test_rodrigues_matches_scipy_and_is_smooth_at_zero() -> None:
    rng = np.random.default_rng(1)
    aa = rng.normal(0.0, 1.0, (4, 7, 3))
    aa[0, 0] = 0.0
    aa[0, 1] = 1e-6
    ours = rodrigues(torch.as_tensor(aa)).numpy()
    ref = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(4, 7, 3, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    rodrigues(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    torch.autograd.gradcheck(rodrigues, (zero.detach().clone().requires_grad_(),))


def test_rigid_transforms_compose_along_the_chain() -> None:
    joints = torch.tensor([[[0.0, 0, 0], [0, 1, 0], [0, 2, 0]]], dtype=torch.float64)
    parents = torch.tensor([-1, 0, 1])
    aa = torch.tensor([[[0, 0, math.pi / 2], [0, 0, 0], [0, 0, 0]]], dtype=torch.float64)
    posed, rel = rigid_transforms(rodrigues(aa), joints, parents)
    np.testing.assert_allclose(posed[0].numpy(), [[0, 0, 0], [-1, 0, 0], [-2, 0, 0]], atol=1e-12)
    assert rel.shape == (1, 3, 4, 4)
    # rel maps rest-pose points to posed points: the rest joint lands on the posed joint.
    rest = torch.cat([joints, torch.ones(1, 3, 1, dtype=torch.float64)], dim=-1)
    mapped = (rel @ rest.unsqueeze(-1))[..., :3, 0]
    np.testing.assert_allclose(mapped.numpy(), posed.numpy(), atol=1e-12)


def test_zero_pose_gives_the_shaped_template(synthetic_head) -> None:
    d = synthetic_head
    rng = np.random.default_rng(2)
    beta, psi = rng.normal(size=(3, 8)), rng.normal(size=(3, 6))
    verts, joints = lbs(
        torch.as_tensor(beta),
        torch.as_tensor(psi),
        torch.zeros(3, 15, dtype=torch.float64),
        **_lbs_inputs(d),
    )
    expected = (
        d.template.vertices[None]
        + np.einsum("bs,nks->bnk", beta, d.shapedirs)
        + np.einsum("be,nke->bnk", psi, d.exprdirs)
    )
    np.testing.assert_allclose(verts.numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(
        joints.numpy(), np.einsum("jn,bnk->bjk", d.J_regressor, expected), atol=1e-9
    )


def test_jaw_rotation_moves_only_jaw_weighted_vertices(synthetic_head) -> None:
    model = HeadModel(synthetic_head)
    rest = model().vertices[0]
    jaw = torch.tensor([[math.pi / 2, 0.0, 0.0]])
    posed = model(jaw_pose=jaw).vertices[0]
    moved = (posed - rest).norm(dim=1)
    on_jaw = torch.as_tensor(synthetic_head.weights[:, JAW] > 0)
    assert moved[~on_jaw].max() <= 1e-6
    assert (moved[on_jaw] > 1e-3).all()


def test_gradients_reach_every_parameter(synthetic_head) -> None:
    model = HeadModel(synthetic_head)
    names = ["global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose"]
    params = {n: torch.full((2, 3), 0.1, requires_grad=True) for n in [*names, "translation"]}
    params["shape"] = torch.full((2, 5), 0.3, requires_grad=True)
    params["expression"] = torch.full((2, 6), -0.2, requires_grad=True)
    out = model(**params)
    weight = torch.randn_like(out.vertices)
    ((out.vertices * weight).sum() + out.joints.sum()).backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("at_zero", [False, True])
def test_pose_gradient_matches_finite_differences(at_zero: bool, make_head) -> None:
    d = make_head(num_vertices=40)
    inputs = _lbs_inputs(d)
    shape = torch.zeros(1, 8, dtype=torch.float64)
    expr = torch.zeros(1, 6, dtype=torch.float64)
    pose = torch.zeros(1, 15, dtype=torch.float64)
    if not at_zero:
        pose = torch.as_tensor(np.random.default_rng(3).normal(0, 0.4, (1, 15)))
    pose.requires_grad_(True)
    torch.autograd.gradcheck(
        lambda p, s: lbs(s, expr, p, **inputs)[0],
        (pose, shape.requires_grad_(True)),
    )


def test_head_model_pads_and_checks_inputs(synthetic_head) -> None:
    model = HeadModel(synthetic_head)
    out = model(shape=torch.ones(1, 3))
    full = torch.zeros(1, 8)
    full[0, :3] = 1.0
    assert isinstance(out, HeadOutput)
    torch.testing.assert_close(out.vertices, model(shape=full).vertices)
    assert model(batch_size=4).vertices.shape == (4, 300, 3)
    assert model().joints.shape == (1, 5, 3)
    t = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(model(translation=t).vertices, model().vertices + t)
    with pytest.raises(HeadModelError, match="at most 8 coefficients, got 9"):
        model(shape=torch.zeros(1, 9))
    with pytest.raises(HeadModelError, match=r"expected shape \(1, 3\), got \(1, 4\)"):
        model(jaw_pose=torch.zeros(1, 4))
    with pytest.raises(HeadModelError, match="inconsistent batch sizes"):
        model(shape=torch.zeros(2, 3), jaw_pose=torch.zeros(3, 3))
    with pytest.raises(HeadModelError, match="expected a"):
        model(expression=torch.zeros(6))
    assert model.template is synthetic_head.template
    assert "v_template" not in model.state_dict()
