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


def checkpoint_step(path: str | Path) -> int:
    """The step in a checkpoint's file name (:class:`CheckpointError` if it is not one)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise CheckpointError("not a checkpoint file name (step_XXXXXXXX.pt)", path=path)
    return int(match.group(1))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, ``None`` when the run has none."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints (``keep`` 0: none); returns the deleted."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if keep <= 0 or not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    old = found[:-keep]
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
