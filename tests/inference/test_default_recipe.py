"""The default model's recipe (``tempeh train-default``), run at miniature size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from capture.errors import ConfigError
from inference.model_store import load_model
from inference.synth import SynthConfig
from inference.training import default_recipe
from inference.training.checkpoints import latest_checkpoint, load_checkpoint
from inference.training.config import TrainConfig


@pytest.fixture
def tiny_recipe(monkeypatch):
    """The recipe with test-rig data and a handful of steps (same code path, smaller sizes)."""
    small = {"rig": "test4", "downscale": 1, "frames": 2}
    train = SynthConfig(subjects=5, seed=1, test_fraction=0.0, val_fraction=0.2, **small)
    monkeypatch.setattr(default_recipe, "TRAIN_DATA", train)
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
    assert sidecar["data"]["data"]["subjects"] == 5
    assert set(sidecar["training_wall_hours"]) == {"coarse", "refine"}
    # every identity but the validation one is trained on; the model holds both runs' weights
    lists = {
        k: json.loads((root / "data" / "lists" / f"{k}.json").read_text()) for k in ("train", "val")
    }
    assert len({s for s, _, _ in lists["train"]}) == 4 and len({s for s, _, _ in lists["val"]}) == 1
    refine = TrainConfig.load(root / "refine")
    assert (refine.data, refine.coarse_run) == (str(root / "data"), str(root / "coarse"))
    for run, stage, prefix in (("coarse", model.coarse, ""), ("refine", model.refine, "refine.")):
        shipped = stage.state_dict()
        weights = load_checkpoint(latest_checkpoint(root / run))["model"]
        assert all(torch.equal(v, weights[prefix + k]) for k, v in shipped.items()), run

    # a second run finds everything done: no new checkpoint, same model
    last = latest_checkpoint(root / "coarse")
    again = tiny_recipe.run_recipe(root, progress=False)
    assert again.model == done.model and latest_checkpoint(root / "coarse") == last

    # training the coarse stage longer: refused while the refinement fed by the shorter run
    # exists (it would go on from another coarse stage), then continued once it is moved
    with pytest.raises(ConfigError, match="move refine/ away") as err:
        tiny_recipe.run_recipe(root, progress=False, coarse_steps=5)
    assert err.value.path == str(root / "refine")
    (root / "refine").rename(tmp_path / "refine_3")
    longer = tiny_recipe.run_recipe(root, progress=False, coarse_steps=5)
    assert (longer.coarse_step, longer.refine_step) == (5, 3)
    assert longer.model == root / "default.pt"
    saved = TrainConfig.load(root / "coarse")
    assert [(p.until_step, p.lr_scale) for p in saved.schedule[-3:]] == [
        (3, 0.03),
        (4, 0.03),
        (5, 0.01),
    ]
    assert json.loads((root / "default.json").read_text())["training"]["coarse"]["steps"] == 5


def test_longer_coarse_schedule_keeps_the_recipe_then_lowers_the_rate() -> None:
    steps = default_recipe.COARSE_STEPS
    base = default_recipe.coarse_config(Path("data"))
    longer = default_recipe.coarse_config(Path("data"), steps + 4000)
    assert longer.steps == steps + 4000 and longer.schedule[: len(base.schedule)] == base.schedule
    assert [(p.until_step, p.lr_scale) for p in longer.schedule[len(base.schedule) :]] == [
        (steps + 2000, 0.03),
        (steps + 4000, 0.01),
    ]
    with pytest.raises(ConfigError, match=f"at least {steps} steps"):
        default_recipe.coarse_config(Path("data"), steps - 2000)
