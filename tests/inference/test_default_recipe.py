"""The default model's recipe (``tempeh train-default``), run at miniature size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.model_store import load_model
from inference.synth import SynthConfig
from inference.training import default_recipe
from inference.training.checkpoints import latest_checkpoint


@pytest.fixture
def tiny_recipe(monkeypatch):
    """The recipe with test-rig data and a handful of steps (same code path, smaller sizes)."""
    small = {"rig": "test4", "downscale": 1, "frames": 2}
    monkeypatch.setattr(default_recipe, "TRAIN_DATA", SynthConfig(subjects=4, seed=1, **small))
    monkeypatch.setattr(
        default_recipe, "TEST_DATA", SynthConfig(subjects=2, seed=2, test_fraction=1.0, **small)
    )
    monkeypatch.setattr(default_recipe, "ROBUSTNESS_DATA", {})
    monkeypatch.setattr(default_recipe, "COARSE_STEPS", 3)
    monkeypatch.setattr(default_recipe, "REFINE_STEPS", 3)
    return default_recipe


def test_recipe_runs_resumes_and_exports(tiny_recipe, tmp_path: Path) -> None:
    root = tmp_path / "recipe"
    stopped = tiny_recipe.run_recipe(root, stop_after_minutes=0.0, progress=False)
    assert stopped.model is None and stopped.coarse_step == 0  # data made, training not begun
    assert (root / "data" / "lists" / "train.json").is_file()
    assert (root / "test_data" / "lists" / "test.json").is_file()

    done = tiny_recipe.run_recipe(root, progress=False)
    assert (done.coarse_step, done.refine_step) == (3, 3)
    assert done.model == root / "default.pt"
    model, template = load_model(done.model)
    assert template.name == "procedural" and model.config.input_size == (48, 64)
    sidecar = json.loads((root / "default.json").read_text())
    assert sidecar["training"]["coarse"]["steps"] == 3
    assert set(sidecar["training_wall_hours"]) == {"coarse", "refine"}

    # a second run finds everything done: no new checkpoint, same model
    last = latest_checkpoint(root / "coarse")
    again = tiny_recipe.run_recipe(root, progress=False)
    assert again.model == done.model and latest_checkpoint(root / "coarse") == last
