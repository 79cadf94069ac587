"""Checkpoint files of a run, ``RUN_DIR/checkpoints/step_XXXXXXXX.pt`` (``weights_only``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from capture.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/checkpoints/step_{step:08d}.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def _checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoint files, oldest step first (the names sort by step)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, ``None`` when the run has none."""
    found = _checkpoints(run_dir)
    return found[-1] if found else None


def done_steps(run_dir: str | Path) -> int:
    """Optimizer steps of the run's latest checkpoint, from its name (0 when it has none)."""
    latest = latest_checkpoint(run_dir)
    return 0 if latest is None else int(_NAME.match(latest.name).group(1))


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints (``keep`` 0: none); returns the deleted."""
    if keep <= 0:
        return []
    old = _checkpoints(run_dir)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``); :class:`CheckpointError` naming it if bad."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read the checkpoint: {exc}", path=path) from exc
    missing = {"model", "optimizer", "step", "config", "rng"} - set(data)
    if missing:
        raise CheckpointError(f"missing keys {sorted(missing)}", path=path)
    return data
