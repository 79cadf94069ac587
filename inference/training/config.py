"""The training configuration: one frozen tree saved as ``RUN_DIR/config.json``.

Lengths are millimetres; steps count optimizer updates (global steps).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.errors import ConfigError
from inference.losses import V2V_WEIGHTS_EYEBALLS_ONLY, V2V_WEIGHTS_PRETRAINING
from inference.network.config import ModelConfig, from_dict, to_dict
from inference.network.presets import PRESETS

STAGES = ("coarse", "refine")
CONFIG_NAME = "config.json"
PRESET_TRAINING: dict[tuple[str, str], dict[str, Any]] = {
    ("lite", "coarse"): {"grid_rotation_deg": 45.0}
}
"""Training defaults that go with a preset's network, by (preset, stage)
(:meth:`TrainConfig.from_preset`): the lite coarse stage's heatmap prior trains far worse under
unbounded grid rotations."""


@dataclass(frozen=True)
class Phase:
    """Loss weights that hold for steps ``< until_step`` (reference section 4.2).

    Attributes
    ----------
    until_step : int
        First step after this phase.
    v2v_weight : float
        Weight of the vertex-to-vertex loss (mm²).
    v2v_region_weights : dict of str to float
        Region group → per-vertex weight (``inference.losses.V2V_ORDER``); unmasked vertices 1.
    p2s_weight : float
        Weight of the scan → mesh point-to-surface loss (mm).
    edge_weight : float
        Weight of the edge-vector loss towards the registration (mm²).
    lr_scale : float
        Multiplier of every parameter group's learning rate in this phase (a step decay).
    """

    until_step: int
    v2v_weight: float = 1.0
    v2v_region_weights: dict[str, float] = field(
        default_factory=lambda: dict(V2V_WEIGHTS_PRETRAINING)
    )
    p2s_weight: float = 0.0
    edge_weight: float = 0.0
    lr_scale: float = 1.0


def default_schedule(stage: str, steps: int) -> tuple[Phase, ...]:
    """The README recipe scaled to ``steps``.

    Coarse: supervised pre-training (all regions) for 3/8 of the steps (300k of 800k), then
    self-supervised (p2s 10, edge 1, eyeballs-only v2v). Refinement: p2s 10, edge 0.3,
    eyeballs-only v2v throughout.
    """
    eyes = dict(V2V_WEIGHTS_EYEBALLS_ONLY)
    if stage == "refine":
        return (Phase(steps, 1.0, eyes, 10.0, 0.3),)
    pre = max(1, round(steps * 3 / 8))
    return (
        Phase(pre, 1.0, dict(V2V_WEIGHTS_PRETRAINING), 0.0, 0.0),
        Phase(max(steps, pre + 1), 1.0, eyes, 10.0, 1.0),
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved beside its checkpoints.

    Attributes
    ----------
    stage : str
        ``"coarse"`` or ``"refine"``.
    preset : str
        Name of the model preset (``lite``, ``tempeh``); ``model`` holds the resolved tree.
    model : ModelConfig
        The network (the preset, possibly reduced).
    data : str
        Dataset root written by ``tempeh synth`` (``images/``, ``calibrations/``, ``lists/``...).
    steps : int
        Optimizer updates in total.
    batch_size : int
        Frames per step and process (2 as the reference; the V2V bottleneck is 1^3, so its
        batch norm needs more than one sample).
    lr, localizer_lr : float
        AdamW learning rates of all parameters and of ``sparse_point_net.grid_refiner.*``.
    weight_decay : float
        AdamW weight decay.
    min_views : int
        Fewest views of a random view subset (clamped to the views available, at least 2).
    grid_shift_mm : float
        Coarse only: while training, the search grid's origin moves by a uniform random
        offset in ±this per axis, so the localizer learns to find heads away from where the
        training data put them (0: off, as the reference).
    grid_rotation_deg : float
        Coarse only: the largest angle of the random search-grid rotation while training
        (180: uniform over all rotations, as the reference). Heads in a capture rig stand
        roughly upright; a bounded rotation leaves the localizer less to undo (lite preset, 2000
        steps, 48 test frames: coarse v2v 10.86 mm with any rotation, 9.97 mm up to 45°).
    schedule : tuple of Phase
        Loss phases, by ``until_step``; the last one also covers later steps.
    scan_points : int
        Scan points per sample for the point-to-surface loss.
    coarse_run : str or None
        Refinement only: a coarse run folder whose latest checkpoint predicts the coarse
        meshes (and initialises the feature net); ``None`` uses the registration + noise.
    coarse_noise_mm : float
        Standard deviation of that noise, mm.
    coarse_offset_mm : float
        Refinement with a ``coarse_run``: while training, the coarse meshes are moved by smooth
        random offset fields of this mean length (uniform per frame in [0, 2×]; 0: off, as the
        reference), so the refinement learns to find the surface rather than the coarse
        stage's average error.
    log_every, val_every, checkpoint_every : int
        Intervals in steps (0 disables validation / intermediate checkpoints).
    keep_checkpoints : int
        Checkpoints kept in the run folder, newest first (0: all); older ones are deleted
        after each save, so a long run does not fill the disk.
    val_frames : int
        Validation frames evaluated (the first ones of the ``val`` list).
    seed : int
        Seed of sampling, view subsets, grid rotations and initialisation.
    device : str
        ``"cpu"`` or ``"cuda"``.
    amp : bool
        bfloat16 autocast (CUDA only).
    """

    stage: str = "coarse"
    preset: str = "lite"
    model: ModelConfig = field(default_factory=lambda: PRESETS["lite"])
    data: str = ""
    steps: int = 1000
    batch_size: int = 2
    lr: float = 1e-3
    localizer_lr: float = 1e-4
    weight_decay: float = 0.01
    min_views: int = 8
    grid_shift_mm: float = 0.0
    grid_rotation_deg: float = 180.0
    schedule: tuple[Phase, ...] = ()
    scan_points: int = 2000
    coarse_run: str | None = None
    coarse_noise_mm: float = 2.0
    coarse_offset_mm: float = 0.0
    log_every: int = 10
    val_every: int = 100
    checkpoint_every: int = 500
    keep_checkpoints: int = 5
    val_frames: int = 4
    seed: int = 0
    device: str = "cpu"
    amp: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}", field="stage")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", field=name)
        if not 0.0 <= self.grid_rotation_deg <= 180.0:
            raise ConfigError(
                f"must be in [0, 180] degrees, got {self.grid_rotation_deg}",
                field="grid_rotation_deg",
            )
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"must be 'cpu' or 'cuda', got {self.device!r}", field="device")
        if not self.schedule:
            object.__setattr__(self, "schedule", default_schedule(self.stage, self.steps))

    def phase(self, step: int) -> Phase:
        """The loss phase of ``step`` (0-based)."""
        for phase in self.schedule:
            if step < phase.until_step:
                return phase
        return self.schedule[-1]

    @classmethod
    def from_preset(cls, preset: str, **options: Any) -> TrainConfig:
        """A config for a named preset, with the preset's training defaults
        (:data:`PRESET_TRAINING`) unless ``options`` sets them; :class:`ConfigError` if the name
        is unknown."""
        if preset not in PRESETS:
            raise ConfigError(
                f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}", field="preset"
            )
        stage = options.get("stage", cls.stage)
        options = {**PRESET_TRAINING.get((preset, stage), {}), **options}
        return cls(preset=preset, model=PRESETS[preset], **options)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = to_dict(self)
        out["schedule"] = [dataclasses.asdict(p) for p in self.schedule]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        """Inverse of :meth:`to_dict`; :class:`ConfigError` naming ``source`` if malformed."""
        try:
            data = dict(data)
            model = from_dict(ModelConfig, data.pop("model"))
            schedule = tuple(Phase(**p) for p in data.pop("schedule"))
            unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ValueError(f"unknown keys {unknown}")
            return cls(model=model, schedule=schedule, **data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a training config: {exc}", path=source) from exc

    def save(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/config.json``; returns its path."""
        path = Path(run_dir) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        """Read ``run_dir/config.json``; :class:`ConfigError` naming it if missing or bad."""
        path = Path(run_dir) / CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the training config: {exc}", path=path) from exc
        return cls.from_dict(data, source=path)
