"""The torch head model: a thin module holding a :class:`HeadModelData` as buffers.

The math lives in :mod:`inference.lbs`; this module checks inputs, pads coefficients and
adds the translation. Lengths are millimetres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from capture.errors import HeadModelError
from inference.head_data import JOINT_NAMES, HeadModelData, HeadTemplate
from inference.lbs import lbs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadOutput:
    """A posed head.

    Attributes
    ----------
    vertices : Tensor
        (B, N, 3) vertices, mm, model frame (translation applied).
    joints : Tensor
        (B, J, 3) posed joints, mm, model frame (translation applied).
    """

    vertices: Tensor
    joints: Tensor


def load_head_model_data(spec: str | Path) -> HeadModelData:
    """Load head model data by name or path.

    Parameters
    ----------
    spec : str or Path
        ``"procedural"`` for the built-in procedural head, otherwise the path of a FLAME
        pickle (``generic_model.pkl`` or ``flame2023.pkl``).

    Raises
    ------
    HeadModelError
        If the FLAME file is missing or invalid.
    """
    if str(spec) == "procedural":
        from inference.procedural_head import load_procedural_head

        return load_procedural_head()
    from inference.flame import load_flame

    return load_flame(spec)


class HeadModel(torch.nn.Module):
    """Linear-blend-skinned head (FLAME or procedural) as a differentiable module.

    Parameters
    ----------
    data : HeadModelData
        Bases and template in mm; stored as float32 non-persistent buffers.
    """

    def __init__(self, data: HeadModelData) -> None:
        super().__init__()
        self._data = data
        f32 = torch.float32
        for name, array in (
            ("v_template", data.template.vertices),
            ("shapedirs", data.shapedirs),
            ("exprdirs", data.exprdirs),
            ("posedirs", data.posedirs),
            ("J_regressor", data.J_regressor),
            ("weights", data.weights),
        ):
            self.register_buffer(name, torch.as_tensor(array, dtype=f32), persistent=False)
        self.register_buffer(
            "parents", torch.as_tensor(data.parents, dtype=torch.int64), persistent=False
        )
        self.register_buffer(
            "faces", torch.as_tensor(data.template.faces, dtype=torch.int64), persistent=False
        )

    @property
    def data(self) -> HeadModelData:
        """The numpy model data this module was built from."""
        return self._data

    @property
    def template(self) -> HeadTemplate:
        """The canonical template mesh (mm) with faces and region masks."""
        return self._data.template

    @property
    def num_shape(self) -> int:
        """S, identity components."""
        return self._data.num_shape

    @property
    def num_expression(self) -> int:
        """E, expression components."""
        return self._data.num_expression

    def forward(
        self,
        shape: Tensor | None = None,
        expression: Tensor | None = None,
        global_pose: Tensor | None = None,
        neck_pose: Tensor | None = None,
        jaw_pose: Tensor | None = None,
        left_eye_pose: Tensor | None = None,
        right_eye_pose: Tensor | None = None,
        translation: Tensor | None = None,
        batch_size: int | None = None,
    ) -> HeadOutput:
        """Pose the head.

        Parameters
        ----------
        shape : Tensor, optional
            (B, s) identity coefficients, ``s <= S``; missing trailing ones are zero.
        expression : Tensor, optional
            (B, e) expression coefficients, ``e <= E``; zero-padded likewise.
        global_pose, neck_pose, jaw_pose, left_eye_pose, right_eye_pose : Tensor, optional
            (B, 3) axis-angle rotations, radians; zero if omitted.
        translation : Tensor, optional
            (B, 3) mm added to every vertex and joint.
        batch_size : int, optional
            B when no tensor is given (default 1); must agree with the tensors otherwise.

        Returns
        -------
        HeadOutput
            ``vertices`` (B, N, 3) mm and ``joints`` (B, J, 3) mm.

        Raises
        ------
        HeadModelError
            On wrong shapes, too many coefficients or inconsistent batch sizes.
        """
        given = {
            "shape": shape,
            "expression": expression,
            "global_pose": global_pose,
            "neck_pose": neck_pose,
            "jaw_pose": jaw_pose,
            "left_eye_pose": left_eye_pose,
            "right_eye_pose": right_eye_pose,
            "translation": translation,
        }
        B = self._batch_size(given, batch_size)
        dtype, device = self.v_template.dtype, self.v_template.device
        coeffs = {
            "shape": self._coefficients("shape", shape, self.num_shape, B),
            "expression": self._coefficients("expression", expression, self.num_expression, B),
        }
        if len(self.parents) != len(JOINT_NAMES):
            raise HeadModelError(
                f"expected a {len(JOINT_NAMES)}-joint model, got {len(self.parents)} joints",
                field="parents",
            )
        poses = [
            self._vector(name, given[name], B, dtype, device)
            for name in ("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")
        ]
        vertices, joints = lbs(
            coeffs["shape"],
            coeffs["expression"],
            torch.cat(poses, dim=1),
            self.v_template,
            self.shapedirs,
            self.exprdirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.weights,
        )
        if translation is not None:
            t = self._vector("translation", translation, B, dtype, device).unsqueeze(1)
            vertices = vertices + t
            joints = joints + t
        return HeadOutput(vertices=vertices, joints=joints)

    @staticmethod
    def _batch_size(given: dict[str, Tensor | None], batch_size: int | None) -> int:
        sizes = {}
        for name, value in given.items():
            if value is None:
                continue
            if not isinstance(value, Tensor) or value.ndim != 2:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise HeadModelError(f"expected a (B, k) tensor, got {got}", field=name)
            sizes[name] = value.shape[0]
        if batch_size is not None:
            sizes["batch_size"] = int(batch_size)
        if len(set(sizes.values())) > 1:
            raise HeadModelError(f"inconsistent batch sizes: {sizes}", field="batch_size")
        return next(iter(sizes.values()), 1)

    def _coefficients(self, name: str, value: Tensor | None, count: int, B: int) -> Tensor:
        dtype, device = self.v_template.dtype, self.v_template.device
        if value is None:
            return torch.zeros(B, count, dtype=dtype, device=device)
        if value.shape[1] > count:
            raise HeadModelError(
                f"expected at most {count} coefficients, got {value.shape[1]}", field=name
            )
        value = value.to(dtype=dtype, device=device)
        return torch.nn.functional.pad(value, (0, count - value.shape[1]))

    @staticmethod
    def _vector(
        name: str, value: Tensor | None, B: int, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        if value is None:
            return torch.zeros(B, 3, dtype=dtype, device=device)
        if value.shape != (B, 3):
            raise HeadModelError(f"expected shape ({B}, 3), got {tuple(value.shape)}", field=name)
        return value.to(dtype=dtype, device=device)
