"""The one trainer of both stages (style rule 8): AdamW, view subsets, checkpoints, DDP.

Every random choice of step ``s`` comes from generators seeded by ``(cfg.seed, s)`` and the
dataset's per-index seed, so a run resumed from a checkpoint continues bit-exactly on CPU.
Under ``torchrun`` (``WORLD_SIZE > 1``) each process trains on its share of every step
(``DistributedSampler``) and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from capture.atomic import write_atomically
from capture.errors import ConfigError
from inference.dataset import DatasetConfig, MultiViewDataset, collate_frames
from inference.geometry import project_points
from inference.head_data import HeadTemplate
from inference.head_model import load_head_model_data
from inference.losses import point_to_surface_loss
from inference.network.config import CoarseConfig, ModelConfig, RefineConfig
from inference.training.checkpoints import (
    checkpoint_path,
    done_steps,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
)
from inference.training.config import CONFIG_NAME, TrainConfig
from inference.training.stages import Stage, make_stage

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Fields a resumed run must share with the saved config; the others may change on resume.
RESUME_KEYS = (
    "stage",
    "preset",
    "data",
    "batch_size",
    "seed",
    "coarse_run",
    "grid_shift_mm",
    "grid_rotation_deg",
    "coarse_offset_mm",
)
_STEP_SEED = 1_000_003


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports.

    Attributes
    ----------
    run_dir : Path
    step : int
        Steps completed.
    losses : list of float
        Total training loss of every step run in this call (rank 0's share).
    validation : list of dict
        ``{"step", "v2v_mm", "p2s_mm"}`` per validation.
    steps_per_second : float
        Over the steps run in this call.
    checkpoint : Path or None
        The last checkpoint written.
    module : nn.Module or None
        The trained module of this process (not DDP-wrapped).
    """

    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    steps_per_second: float = 0.0
    checkpoint: Path | None = None
    module: nn.Module | None = None


@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    device: torch.device


def _init_distributed(cfg: TrainConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("CUDA was asked for but is not available", field="device")
        # more processes than GPUs share them round-robin (gloo only: NCCL refuses that)
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        gpus = torch.cuda.device_count() if device.type == "cuda" else 1
        dist.init_process_group(_backend(device, per_machine, gpus))
    rank = dist.get_rank() if world > 1 else 0
    return _Dist(rank, world, device)


DIST_BACKEND_VARIABLE = "TEMPEH_DIST_BACKEND"
"""Environment variable that overrides the process-group backend (``nccl`` or ``gloo``)."""


def _backend(device: torch.device, local_processes: int = 1, gpus: int = 1) -> str:
    """nccl on CUDA and gloo on the CPU, unless :data:`DIST_BACKEND_VARIABLE` names one (gloo
    also carries CUDA tensors: for machines whose NCCL does not work, or for more processes
    than GPUs, which NCCL refuses)."""
    chosen = os.environ.get(DIST_BACKEND_VARIABLE, "").strip().lower()
    if chosen not in ("", "nccl", "gloo") or (chosen == "nccl" and device.type != "cuda"):
        raise ConfigError(
            f"{DIST_BACKEND_VARIABLE}={chosen!r}: must be 'gloo', or 'nccl' with --device cuda",
            field=DIST_BACKEND_VARIABLE,
        )
    backend = chosen or ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and local_processes > gpus:
        raise ConfigError(
            f"{local_processes} processes on {gpus} GPU(s) of this machine: NCCL needs a GPU "
            f"per process; start at most {gpus} per machine, or set {DIST_BACKEND_VARIABLE}=gloo",
            field="--nproc_per_node",
        )
    return backend


def _trained_model(cfg: TrainConfig) -> ModelConfig:
    """The part of ``cfg.model`` the stage's weights depend on (the other stage's section is
    reset: a coarse run never builds the refinement, and a refinement run fed by a coarse run
    takes the coarse config from that run; settings that act only at inference are reset)."""
    if cfg.stage == "coarse":
        return replace(cfg.model, refine=RefineConfig())
    # the output smoothing acts in eval mode only: the weights do not depend on it
    model = replace(cfg.model, refine=replace(cfg.model.refine, output_smoothing=0))
    return model if cfg.coarse_run is None else replace(model, coarse=CoarseConfig())


def _schedule_conflict(saved: TrainConfig, cfg: TrainConfig, done: int) -> int | None:
    """The first step below ``done`` whose loss phase differs between the two configs
    (phases compared by their settings, not by where they end); None when they agree."""
    bounds = {0} | {p.until_step for p in (*saved.schedule, *cfg.schedule)}
    for step in sorted(b for b in bounds if b < done):
        a, b = saved.phase(step), cfg.phase(step)
        if replace(a, until_step=0) != replace(b, until_step=0):
            return step
    return None


def _resolve_config(cfg: TrainConfig, run_dir: Path, resume: bool) -> TrainConfig:
    """The config to run: ``cfg``, or on resume the saved one with ``cfg``'s run settings.

    A resumed run may change how long it runs and its schedule from the current step on (to
    train longer), and the parts of the model config its weights do not depend on (the other
    stage's section, inference-only settings); anything that would change the steps already
    done is refused.
    """
    if not resume:
        if latest_checkpoint(run_dir) is not None:
            raise ConfigError("the run folder already has checkpoints; resume it", path=run_dir)
        return cfg
    saved = TrainConfig.load(run_dir)
    config_path = run_dir / CONFIG_NAME
    for key in RESUME_KEYS:
        if getattr(saved, key) != getattr(cfg, key):
            raise ConfigError(
                f"differs from the saved run ({getattr(saved, key)!r} there, "
                f"{getattr(cfg, key)!r} asked)",
                path=config_path,
                field=key,
            )
    if _trained_model(saved) != _trained_model(cfg):
        raise ConfigError(
            f"the {cfg.stage} network differs from the saved run's: train it in a new folder "
            "(or move this run away)",
            path=config_path,
            field="model",
        )
    done = done_steps(run_dir)
    step = _schedule_conflict(saved, cfg, done)
    if step is not None:
        raise ConfigError(
            f"the loss schedule at step {step} differs from the one the run was trained with "
            f"({saved.phase(step)} there, {cfg.phase(step)} asked); only steps from {done} on "
            "may change",
            path=config_path,
            field="schedule",
        )
    return replace(
        saved,
        model=cfg.model,  # equal to the saved one in everything the weights depend on (above)
        steps=cfg.steps,
        schedule=cfg.schedule,
        device=cfg.device,
        amp=cfg.amp,
        log_every=cfg.log_every,
        val_every=cfg.val_every,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
    )


def _template(cfg: TrainConfig) -> HeadTemplate:
    """The head template the config names; FLAME by name only (the ``tempeh`` preset's
    default) is refused with the way out, since FLAME is not shipped."""
    spec = cfg.model.template
    if spec == "flame":
        raise ConfigError(
            f"the {cfg.preset} preset is built on FLAME, which is not shipped: pass the path of "
            "your FLAME pickle (tempeh train --template generic_model.pkl), or 'procedural' to "
            "train these network sizes on the procedural head",
            field="template",
        )
    return load_head_model_data(spec).template


def _check_topology(dataset: MultiViewDataset, template: HeadTemplate) -> None:
    """Refuse data whose registrations are not in the template's topology."""
    if len(dataset) == 0:
        return
    key = dataset.frames[0]
    vertices, _ = dataset.read_registration(key)
    if vertices is None or len(vertices) == template.num_vertices:
        return
    raise ConfigError(
        f"the registrations have {len(vertices)} vertices, the {template.name!r} template "
        f"{template.num_vertices}: train with the template the data was made with (--template)",
        path=dataset.registration_path(key),
        field="template",
    )


def _datasets(cfg: TrainConfig, stage: Stage) -> tuple[MultiViewDataset, MultiViewDataset]:
    root = Path(cfg.data)
    if not root.is_dir():
        raise ConfigError("the dataset folder does not exist", path=root, field="data")
    factor = stage.resize_factor(cfg.model)
    uses_scans = any(p.p2s_weight for p in cfg.schedule)
    common = {"resize_factor": factor, "seed": cfg.seed}
    train = MultiViewDataset(
        DatasetConfig.from_root(
            root, "train", augment=True, scan_points=cfg.scan_points if uses_scans else 0, **common
        )
    )
    val = MultiViewDataset(
        DatasetConfig.from_root(root, "val", scan_points=cfg.scan_points, **common)
    )
    return train, val


def _generator(*seed: int) -> torch.Generator:
    value = 0
    for s in seed:
        value = value * _STEP_SEED + int(s)
    return torch.Generator().manual_seed(value % (2**63))


def _rng_state(generator_seed: int) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "generator_seed": generator_seed,
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _prepare(
    raw: dict, device: torch.device, train: bool, cfg: TrainConfig, generator: torch.Generator
) -> dict:
    """Move a collated batch to ``device``; training picks augmented images and a view subset."""
    batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in raw.items()}
    if train and isinstance(batch.get("images_augmented"), Tensor):
        batch["images"], batch["K"] = batch["images_augmented"], batch["K_augmented"]
    V = batch["images"].shape[1]
    if train:
        lo = cfg.min_views if cfg.min_views <= V else min(2, V)
        n = round(lo + (V - lo) * torch.rand((), generator=generator).item())
        views = torch.randperm(V, generator=generator)[:n].sort().values.to(device)
        for key in ("images", "K", "Rt", "dist", "centers"):
            batch[key] = batch[key].index_select(1, views)
    B, V = batch["images"].shape[:2]
    batch["view_mask"] = torch.ones(B, V, dtype=torch.bool, device=device)
    return batch


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def validate(
    stage: Stage,
    module: nn.Module,
    dataset: MultiViewDataset,
    cfg: TrainConfig,
    device: torch.device,
    faces: Tensor,
) -> tuple[dict[str, float], np.ndarray | None]:
    """Mean per-vertex error to the registration and scan → mesh distance (mm) on the first
    ``cfg.val_frames`` validation frames, plus an (H, W·k, 3) uint8 overlay of the first."""
    was_training = module.training
    module.eval()
    v2v, p2s, overlay = [], [], None
    try:
        for index in range(min(cfg.val_frames, len(dataset))):
            batch = _prepare(collate_frames([dataset[index]]), device, False, cfg, _generator(0))
            with _autocast(cfg, device):
                pred = stage.forward(module, batch, False, _generator(cfg.seed, index))["vertices"]
            pred = pred.float()
            v2v.append((pred - batch["registration"]).norm(dim=-1).mean().item())
            if isinstance(batch.get("scan"), Tensor):
                _, d2 = point_to_surface_loss(batch["scan"], pred, faces, sigma=0.0)
                p2s.append(d2.sqrt().mean().item())
            if overlay is None:
                overlay = draw_vertices(batch, pred)
    finally:
        module.train(was_training)
    metrics = {"v2v_mm": float(np.mean(v2v)) if v2v else float("nan")}
    if p2s:
        metrics["p2s_mm"] = float(np.mean(p2s))
    return metrics, overlay


def draw_vertices(batch: dict, vertices: Tensor, max_views: int = 4) -> np.ndarray:
    """The first sample's first views side by side with ``vertices`` drawn as red dots.

    Returns
    -------
    np.ndarray
        (H, W·k, 3) uint8.
    """
    k = min(max_views, batch["images"].shape[1])
    uv = project_points(
        vertices[:1].float(), batch["K"][:1, :k], batch["Rt"][:1, :k], batch["dist"][:1, :k]
    )[0]
    mean = torch.tensor(IMAGENET_MEAN, device=uv.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=uv.device).view(3, 1, 1)
    panels = []
    for v in range(k):
        img = (batch["images"][0, v].float() * std + mean).clamp(0, 1)
        img = (img.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
        h, w = img.shape[:2]
        px = uv[v].round().long().cpu().numpy()
        ok = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        img[px[ok, 1], px[ok, 0]] = (255, 0, 0)
        panels.append(img)
    return np.concatenate(panels, axis=1)


def _save(path: Path, module: nn.Module, optimizer, step: int, cfg: TrainConfig) -> Path:
    state = {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "config": json.dumps(cfg.to_dict()),
        "rng": _rng_state(cfg.seed),
    }
    return write_atomically(path, lambda tmp: torch.save(state, tmp))


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``cfg.stage`` into ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
    run_dir : path
        Receives ``config.json``, ``checkpoints/step_XXXXXXXX.pt`` and TensorBoard ``logs/``.
    resume : bool
        Continue from the latest checkpoint (:class:`ConfigError` if the saved config
        differs in a :data:`RESUME_KEYS` field).
    stop_after : int, optional
        Stop (and checkpoint) once this many steps are done, as if interrupted.
    progress : bool
        Show a tqdm bar (rank 0).
    on_step : callable, optional
        Called on rank 0 with ``(step, losses)`` after every step.

    Returns
    -------
    TrainResult
    """
    run_dir = Path(run_dir)
    ddp = _init_distributed(cfg)
    cfg = _resolve_config(cfg, run_dir, resume)
    template = _template(cfg)
    stage = make_stage(cfg, template)
    faces = torch.as_tensor(template.faces, dtype=torch.long, device=ddp.device)
    train_set, val_set = _datasets(cfg, stage)
    _check_topology(train_set, template)

    torch.manual_seed(cfg.seed)
    module = stage.build(cfg.model, template).to(ddp.device)
    optimizer = torch.optim.AdamW(
        stage.param_groups(module, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    start = 0
    if resume:
        path = latest_checkpoint(run_dir)
        if path is not None:
            state = load_checkpoint(path)
            module.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            for group in optimizer.param_groups:  # checkpoints from before the lr schedule
                group.setdefault("base_lr", group["lr"])
            start = int(state["step"])
            _set_rng_state(state["rng"])
            log.info("resumed %s at step %d", path, start)
    if ddp.rank == 0:
        cfg.save(run_dir)
    model: nn.Module = module
    if ddp.world > 1:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[ddp.device.index] if ddp.device.type == "cuda" else None
        )

    sampler = DistributedSampler(
        train_set,
        num_replicas=ddp.world,
        rank=ddp.rank,
        shuffle=True,
        seed=cfg.seed,
        drop_last=True,
    )
    per_epoch = len(sampler) // cfg.batch_size
    if per_epoch < 1:
        raise ConfigError(
            f"{len(train_set)} training frames are too few for {ddp.world} process(es) x "
            f"batch size {cfg.batch_size}",
            path=Path(cfg.data) / "lists" / "train.json",
        )

    writer = None
    if ddp.rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "logs"))
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    result = TrainResult(run_dir=run_dir, step=start, module=module)
    bar = None
    if progress and ddp.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.stage}", unit="step")
    epoch_indices: tuple[int, list[int]] = (-1, [])
    model.train()
    began = time.perf_counter()
    try:
        for step in range(start, end):
            epoch, k = divmod(step, per_epoch)
            if epoch_indices[0] != epoch:
                sampler.set_epoch(epoch)
                train_set.set_epoch(epoch)
                epoch_indices = (epoch, list(sampler))
            picked = epoch_indices[1][k * cfg.batch_size : (k + 1) * cfg.batch_size]
            raw = collate_frames([train_set[i] for i in picked])
            batch = _prepare(raw, ddp.device, True, cfg, _generator(cfg.seed, step))
            generator = _generator(cfg.seed, step, ddp.rank + 1)
            with _autocast(cfg, ddp.device):
                predictions = stage.forward(model, batch, True, generator)
            phase = cfg.phase(step)
            terms = stage.losses(predictions, batch, phase)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * phase.lr_scale
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            done = step + 1
            result.step = done
            if ddp.rank != 0:
                continue
            values = {name: t.item() for name, t in terms.items()}
            result.losses.append(values["total"])
            if on_step is not None:
                on_step(done, values)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['total']:.4g}")
            if done % cfg.log_every == 0 or done == end:
                for name, value in values.items():
                    writer.add_scalar(f"train/{name}", value, done)
            if cfg.val_every and (done % cfg.val_every == 0 or done == end):
                metrics, overlay = validate(stage, module, val_set, cfg, ddp.device, faces)
                result.validation.append({"step": done, **metrics})
                for name, value in metrics.items():
                    writer.add_scalar(f"val/{name}", value, done)
                if overlay is not None:
                    writer.add_image("val/vertices", overlay, done, dataformats="HWC")
                log.info("step %d: validation %s", done, metrics)
            if done == end or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0):
                result.checkpoint = _save(
                    checkpoint_path(run_dir, done), module, optimizer, done, cfg
                )
                prune_checkpoints(run_dir, cfg.keep_checkpoints)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    ran = result.step - start
    result.steps_per_second = ran / max(time.perf_counter() - began, 1e-9)
    if ddp.world > 1:
        # DDP broadcasts rank 0's buffers before each forward; do it once more after the last
        # one so that every process ends with the same batch-norm statistics
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)
        dist.barrier()
    return result
