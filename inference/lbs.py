"""Linear blend skinning as pure, batched, differentiable torch functions (smplx-style).

Units follow the inputs (the head model passes millimetres). Rotations are axis-angle
vectors in radians; joint order is the kinematic-tree order of ``parents``.
"""

from __future__ import annotations

import torch
from torch import Tensor

_SMALL_ANGLE = 1e-4
"""Below this angle (rad) Rodrigues uses its Taylor expansion: finite value and gradient at 0."""


def rodrigues(axis_angle: Tensor) -> Tensor:
    """Rotation matrices from axis-angle vectors.

    Parameters
    ----------
    axis_angle : Tensor
        (..., 3) axis times angle, radians.

    Returns
    -------
    Tensor
        (..., 3, 3) rotation matrices. Safe at zero angle: both the value and the gradient
        are finite there (a Taylor expansion replaces ``sin(t)/t`` and ``(1-cos t)/t²``).
    """
    sq = (axis_angle * axis_angle).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    small = sq < _SMALL_ANGLE**2
    # Evaluate the exact branch on a safe value so its gradient is never NaN where masked.
    sq_safe = torch.where(small, torch.ones_like(sq), sq)
    theta = torch.sqrt(sq_safe)
    a_exact = torch.sin(theta) / theta
    b_exact = (1.0 - torch.cos(theta)) / sq_safe
    a = torch.where(small, 1.0 - sq / 6.0, a_exact)
    b = torch.where(small, 0.5 - sq / 24.0, b_exact)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(
        *axis_angle.shape[:-1], 3, 3
    )
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * K + b * (K @ K)


def rigid_transforms(rot_mats: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Compose per-joint rotations along the kinematic chain.

    Parameters
    ----------
    rot_mats : Tensor
        (B, J, 3, 3) local joint rotations.
    joints : Tensor
        (B, J, 3) rest-pose joint locations.
    parents : Tensor
        (J,) int64 parent index per joint, ``parents[0] == -1``, parents before children.

    Returns
    -------
    posed_joints : Tensor
        (B, J, 3) joint locations after posing.
    rel_transforms : Tensor
        (B, J, 4, 4) transforms mapping rest-pose points to posed points per joint
        (the rest joint location removed, as skinning needs).
    """
    B, J = joints.shape[:2]
    rel_joints = joints.clone()
    rel_joints[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    bottom = torch.zeros(B, J, 1, 4, dtype=joints.dtype, device=joints.device)
    bottom[..., 3] = 1.0
    local = torch.cat([torch.cat([rot_mats, rel_joints.unsqueeze(-1)], dim=-1), bottom], dim=-2)
    chain = [local[:, 0]]
    for i in range(1, J):
        chain.append(chain[int(parents[i])] @ local[:, i])
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
    posed_joints = world[:, :, :3, 3]
    rest = torch.cat([joints, torch.zeros_like(joints[..., :1])], dim=-1).unsqueeze(-1)
    offset = world @ rest  # (B, J, 4, 1): rotated rest joint
    rel = world.clone()
    rel[:, :, :3, 3] = world[:, :, :3, 3] - offset[:, :, :3, 0]
    return posed_joints, rel


def lbs(
    shape: Tensor,
    expression: Tensor,
    pose: Tensor,
    v_template: Tensor,
    shapedirs: Tensor,
    exprdirs: Tensor,
    posedirs: Tensor,
    J_regressor: Tensor,
    parents: Tensor,
    weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """Shape, pose-correct and skin a template (FLAME's LBS).

    Parameters
    ----------
    shape : Tensor
        (B, S) identity coefficients.
    expression : Tensor
        (B, E) expression coefficients.
    pose : Tensor
        (B, J * 3) axis-angle per joint, radians (FLAME: global, neck, jaw, left eye, right eye).
    v_template : Tensor
        (N, 3) template vertices.
    shapedirs, exprdirs : Tensor
        (N, 3, S) and (N, 3, E) blend-shape bases.
    posedirs : Tensor
        (N, 3, 9 * (J - 1)) pose-corrective basis on ``(R[1:] - I)`` entries.
    J_regressor : Tensor
        (J, N) joint regressor.
    parents : Tensor
        (J,) int64 kinematic tree.
    weights : Tensor
        (N, J) skinning weights.

    Returns
    -------
    vertices : Tensor
        (B, N, 3) posed vertices, same units as ``v_template``.
    joints : Tensor
        (B, J, 3) posed joints.
    """
    B = shape.shape[0]
    J = J_regressor.shape[0]
    v_shaped = (
        v_template.unsqueeze(0)
        + torch.einsum("bs,nks->bnk", shape, shapedirs)
        + torch.einsum("be,nke->bnk", expression, exprdirs)
    )
    rest_joints = torch.einsum("jn,bnk->bjk", J_regressor, v_shaped)
    rot_mats = rodrigues(pose.reshape(B, J, 3))
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rot_mats[:, 1:] - eye).reshape(B, -1)
    v_posed = v_shaped + torch.einsum("bp,nkp->bnk", pose_feature, posedirs)
    posed_joints, A = rigid_transforms(rot_mats, rest_joints, parents)
    T = torch.einsum("nj,bjrc->bnrc", weights, A)  # (B, N, 4, 4)
    verts = (T[..., :3, :3] @ v_posed.unsqueeze(-1)).squeeze(-1) + T[..., :3, 3]
    return verts, posed_joints
