"""Reduced-precision inference and what it costs in millimetres (issue 7).

:func:`enable_mixed_precision` runs the 2D feature nets and the 3D V2V networks under autocast
on the model's device; :func:`compare_precision` evaluates a model in float32 and under
autocast on the same frames and reports how far the vertices move. The same measurement runs
on CUDA (what the live worker uses) and on the CPU (bfloat16 and float16 autocast exist there
too, with float32 accumulation like cuDNN's), so its numbers can be taken without a GPU and
checked on one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from capture.errors import ConfigError
from inference.evaluation import STAGES, error_statistics, evaluate
from inference.head_data import HeadTemplate
from inference.network.feature_net import FeatureNet
from inference.network.model import TempehModel
from inference.network.v2v import V2VModel

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""Reduced precisions by their command-line names."""


def autocast_dtype(name: str) -> torch.dtype:
    """The dtype called ``name`` (``bf16``, ``fp16``); :class:`ConfigError` otherwise."""
    if name not in DTYPES:
        raise ConfigError(f"unknown precision {name!r}; known: {sorted(DTYPES)}", field="precision")
    return DTYPES[name]


def enable_mixed_precision(model: TempehModel, dtype: torch.dtype) -> None:
    """Run the 2D feature nets and the 3D V2V networks under autocast (``dtype``) on the
    device the model is on.

    Projection, sampling, fusion and soft-argmax stay in float32: their outputs are positions
    in mm, where bfloat16's 8-bit mantissa would cost millimetres. Each wrapped module
    returns float32. Idempotent.
    """
    device_type = next(model.parameters()).device.type
    for module in model.modules():
        if isinstance(module, FeatureNet | V2VModel) and "forward" not in vars(module):
            module.forward = _autocast_forward(module, device_type, dtype)  # type: ignore[method-assign]


def _autocast_forward(module: nn.Module, device_type: str, dtype: torch.dtype) -> Callable:
    inner = type(module).forward

    def forward(*args: object, **kwargs: object) -> torch.Tensor:
        with torch.autocast(device_type, dtype=dtype):
            out = inner(module, *args, **kwargs)
        return out.float()

    return forward


def compare_precision(
    model: TempehModel,
    template: HeadTemplate,
    data: str | Path,
    dtype: torch.dtype,
    **evaluate_options: object,
) -> dict[str, object]:
    """Evaluate ``model`` in float32 and under ``dtype`` autocast on the same frames.

    Parameters
    ----------
    model : TempehModel
        In eval mode; left in float32 (the reduced run uses a copy).
    template : HeadTemplate
    data : str or Path
        Dataset root (:func:`inference.evaluation.evaluate`).
    dtype : torch.dtype
        ``torch.bfloat16`` or ``torch.float16``.
    **evaluate_options
        Passed to :func:`inference.evaluation.evaluate` (split, views, max_frames, device, ...);
        both runs use the same frames and views.

    Returns
    -------
    dict
        ``{"fp32": report, "reduced": report, "vs_fp32": {"coarse"|"refined": statistics of
        the per-vertex distance between the two outputs, mm, with "max_mm" and "over_1mm" (the
        share of vertices that moved more than 1 mm)}}``.
    """
    meshes: dict[str, dict[str, list[np.ndarray]]] = {"fp32": {}, "reduced": {}}

    def keeper(run: str) -> Callable:
        def keep(i: int, sample: object, out: dict[str, np.ndarray]) -> None:
            for stage in STAGES:
                meshes[run].setdefault(stage, []).append(out[stage])

        return keep

    fp32 = evaluate(model, template, data, on_frame=keeper("fp32"), **evaluate_options)
    reduced_model = copy.deepcopy(model)
    enable_mixed_precision(reduced_model, dtype)
    reduced = evaluate(
        reduced_model, template, data, on_frame=keeper("reduced"), **evaluate_options
    )
    moved = {}
    for stage in STAGES:
        a, b = np.stack(meshes["fp32"][stage]), np.stack(meshes["reduced"][stage])
        distance = np.linalg.norm(a.astype(np.float64) - b, axis=-1).ravel()
        moved[stage] = {
            **error_statistics(distance),
            "max_mm": float(distance.max()),
            "over_1mm": float(np.mean(distance > 1.0)),
        }
    return {"fp32": fp32, "reduced": reduced, "vs_fp32": moved}


__all__ = ["DTYPES", "autocast_dtype", "compare_precision", "enable_mixed_precision"]
