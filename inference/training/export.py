"""Turn a coarse run and a refinement run into one model file for reconstruction and evaluation."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from capture.errors import CheckpointError, ConfigError
from inference.head_model import load_head_model_data
from inference.model_store import save_model
from inference.network.model import TempehModel
from inference.training.checkpoints import latest_checkpoint, load_checkpoint
from inference.training.config import TrainConfig

log = logging.getLogger(__name__)

REFINE_PREFIX = "refine."
"""Prefix of the refinement stage's weights inside a refinement run's checkpoints."""


def _latest_weights(run_dir: Path) -> dict:
    path = latest_checkpoint(run_dir)
    if path is None:
        raise CheckpointError("the run has no checkpoint", path=run_dir)
    return load_checkpoint(path)["model"]


def _training_size(cfg: TrainConfig) -> tuple[int, int] | None:
    """(H, W) of the training data's calibrated cameras, None if unknown or mixed."""
    from capture.errors import CalibrationError
    from capture.rig_json import read_rig_json

    path = Path(cfg.data) / "rig.json"
    try:
        sizes = {(c.height, c.width) for c in read_rig_json(path)}
    except (OSError, CalibrationError) as exc:
        log.warning("training image size unknown (%s): the model will use each rig's own", exc)
        return None
    return sizes.pop() if len(sizes) == 1 else None


def export_runs(coarse_run: str | Path, refine_run: str | Path, out: str | Path) -> Path:
    """Write ``out`` (our model file) from the latest checkpoints of two training runs.

    The model config is the coarse run's, with the refinement config of the refinement run;
    both runs must use the same template and compat setting.

    Raises
    ------
    ConfigError
        If a run is of the wrong stage or the runs disagree on template or compat.
    CheckpointError
        If a run has no checkpoint or its weights do not fit the model.
    """
    coarse_run, refine_run = Path(coarse_run), Path(refine_run)
    coarse_cfg, refine_cfg = TrainConfig.load(coarse_run), TrainConfig.load(refine_run)
    for run, cfg, stage in ((coarse_run, coarse_cfg, "coarse"), (refine_run, refine_cfg, "refine")):
        if cfg.stage != stage:
            raise ConfigError(f"expected a {stage} run, found stage {cfg.stage!r}", path=run)
    for attr in ("template", "compat"):
        a, b = getattr(coarse_cfg.model, attr), getattr(refine_cfg.model, attr)
        if a != b:
            raise ConfigError(
                f"the runs disagree: coarse {attr}={a!r}, refinement {attr}={b!r}",
                path=refine_run,
                field=f"model.{attr}",
            )
    config = dataclasses.replace(
        coarse_cfg.model,
        refine=refine_cfg.model.refine,
        input_size=coarse_cfg.model.input_size or _training_size(coarse_cfg),
    )
    template_name = config.template
    template = load_head_model_data(template_name).template
    model = TempehModel(config, template)
    refine_weights = {
        k.removeprefix(REFINE_PREFIX): v
        for k, v in _latest_weights(refine_run).items()
        if k.startswith(REFINE_PREFIX)
    }
    for stage, weights, run in (
        (model.coarse, _latest_weights(coarse_run), coarse_run),
        (model.refine, refine_weights, refine_run),
    ):
        try:
            stage.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit the model: {exc}", path=run) from exc
    spec = (
        {"kind": "procedural"}
        if template_name == "procedural"
        else {"kind": "flame", "path": template_name, "masks": None}
    )
    path = save_model(out, model, spec)
    log.info("exported %s + %s to %s", coarse_run, refine_run, path)
    return path
