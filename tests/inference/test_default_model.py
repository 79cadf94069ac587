"""The shipped default model (issue 5): it loads with weights only and reconstructs heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from capture.default_rigs import load_shipped_rig
from inference.evaluation import evaluate
from inference.head_model import load_head_model_data
from inference.model_store import DEFAULT_MODEL, load_model, read_model_file
from inference.precision import compare_precision
from inference.synth import SynthConfig, write_synthetic_dataset

MAX_BYTES = 25 * 1024 * 1024
SHIPPED_V2V_MM = 5.0
"""Bound on the median vertex error of the shipped model on fresh frames: it reaches 4.3 mm on
these three (coarse 4.8; the previous model 4.7 and 5.1), 4.8 mm on its 48-frame held-out test
split (the README's model card). Issue 5 asks for 3 mm, which this CPU-trained model does not
reach."""


def test_default_model_is_shipped_small_and_weights_only() -> None:
    assert DEFAULT_MODEL.is_file(), "resources/models/default.pt is missing"
    assert DEFAULT_MODEL.stat().st_size <= MAX_BYTES
    data = read_model_file(DEFAULT_MODEL)  # torch.load(..., weights_only=True) inside
    assert data["config"]["template"] == "procedural"
    assert tuple(data["config"]["input_size"]) == (1200, 1600)
    card = DEFAULT_MODEL.with_suffix(".json")
    refine = json.loads(card.read_text())["model"]["config"]["refine"]
    # the lite refinement searches along the normals, both ways: 9 samples 2 mm apart (±8 mm)
    assert refine["search"] == "normal" and data["config"]["refine"]["search"] == "normal"
    assert (refine["normal_samples"] - 1) * refine["normal_inc"] / 2 == 8.0
    # the localized grid must hold the 330 mm procedural head (TEMPEH's 0.4 squashed it), and
    # the output is smoothed to the registrations' roughness
    assert data["config"]["coarse"]["localizer"]["scale_factor"] == 0.5
    assert data["config"]["refine"]["output_smoothing"] == 10
    # the coarse heatmaps start as Gaussians around the template (the lite preset's prior)
    assert data["config"]["coarse"]["heatmap_prior_sigma"] == 0.2


@pytest.fixture(scope="module")
def fresh_frames(tmp_path_factory) -> Path:
    """Three frames of two identities never seen in training (a fresh seed), 1/8 size."""
    out = tmp_path_factory.mktemp("fresh")
    config = SynthConfig(subjects=2, frames=2, seed=90210, downscale=8, test_fraction=1.0)
    write_synthetic_dataset(
        load_shipped_rig("default16"), load_head_model_data("procedural"), out, config, False
    )
    return out


def test_default_model_reconstructs_fresh_heads(fresh_frames: Path) -> None:
    torch.manual_seed(0)
    model, template = load_model("default")
    report = evaluate(model, template, fresh_frames, "test", max_frames=3, scan_points=500)
    assert report["frames"] == 3
    refined = report["refined"]["v2v"]["median_mm"]
    assert refined < SHIPPED_V2V_MM
    assert refined < report["coarse"]["v2v"]["median_mm"]  # the refinement helps
    assert np.isfinite(report["refined"]["s2m"]["median_mm"])


def test_bfloat16_autocast_costs_a_fraction_of_a_millimetre(fresh_frames: Path) -> None:
    """The reduced-precision measurement of issue 7, on the CPU's bfloat16 autocast."""
    model, template = load_model("default")
    both = compare_precision(
        model, template, fresh_frames, torch.bfloat16, split="test", max_frames=1, scan_points=200
    )
    for stage in ("coarse", "refined"):
        moved = both["vs_fp32"][stage]
        # autocast really ran (bfloat16 keeps 8 mantissa bits), and moved vertices little
        assert 0.0 < moved["median_mm"] < 0.5, (stage, moved)
        fp32, bf16 = both["fp32"][stage]["v2v"], both["reduced"][stage]["v2v"]
        assert abs(fp32["median_mm"] - bf16["median_mm"]) < 0.5
    # the model passed in stays float32: only its copy was wrapped
    assert "forward" not in vars(model.coarse.feature_net)
