"""Official TEMPEH checkpoints: key map, import and export of ``{'model': state_dict}`` files.

Our modules are built with the official attribute names and ``Sequential`` indices, so the key
map is the identity; it is kept explicit (and tested against the official listing) so that a
future rename shows up as a map entry rather than a silent mismatch.
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from capture.errors import CheckpointError

log = logging.getLogger(__name__)


def official_to_ours(name: str) -> str:
    """Our state-dict key for an official key (the identity by construction)."""
    return name


def ours_to_official(name: str) -> str:
    """The official state-dict key for one of ours (the identity by construction)."""
    return name


def latest_checkpoint(path: str | Path) -> Path:
    """``path`` itself if it is a file, else the last ``checkpoints/model_*.pth`` of a run dir.

    Raises
    ------
    CheckpointError
        If the path does not exist or a run directory holds no checkpoint.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError("no such checkpoint file or run directory", path=path)
    found = sorted((path / "checkpoints").glob("model_*.pth"))
    if not found:
        raise CheckpointError("run directory holds no checkpoints/model_*.pth", path=path)
    return found[-1]


def read_official(path: str | Path) -> OrderedDict[str, Tensor]:
    """The ``'model'`` state dict of an official checkpoint, keys mapped to ours.

    Parameters
    ----------
    path : str or Path
        A ``model_XXXXXXXX.pth`` file or a run directory (latest checkpoint).

    Raises
    ------
    CheckpointError
        If the file cannot be unpickled with ``weights_only=True`` or has no ``'model'`` dict.
    """
    file = latest_checkpoint(path)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    # corrupt zip -> RuntimeError, empty -> EOFError, non-tensor objects -> UnpicklingError
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}", path=file) from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise CheckpointError("expected a dict with a 'model' state dict", path=file)
    log.info("read official checkpoint %s", file)
    return OrderedDict((official_to_ours(k), v) for k, v in data["model"].items())


def check_state_dict(
    loaded: dict[str, Tensor], expected: dict[str, Tensor], path: str | Path
) -> None:
    """Raise if ``loaded`` lacks, adds or reshapes any entry of ``expected``.

    Raises
    ------
    CheckpointError
        Naming ``path`` and the missing, unexpected and mismatched keys.
    """
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    mismatched = [
        f"{k}: {tuple(loaded[k].shape)} {loaded[k].dtype} != "
        f"{tuple(expected[k].shape)} {expected[k].dtype}"
        for k in expected
        if k in loaded
        and (loaded[k].shape != expected[k].shape or loaded[k].dtype != expected[k].dtype)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if mismatched:
        problems.append(f"mismatched {_few(mismatched)}")
    if problems:
        raise CheckpointError("; ".join(problems), path=path)


def import_official(
    coarse: str | Path,
    refinement: str | Path,
    model: nn.Module | None = None,
) -> tuple[OrderedDict[str, Tensor], OrderedDict[str, Tensor]]:
    """Read official coarse and refinement checkpoints as our state dicts.

    Parameters
    ----------
    coarse, refinement : str or Path
        Checkpoint files or run directories.
    model : TempehModel, optional
        When given, the dicts are checked against ``model.coarse`` / ``model.refine`` and
        loaded into it (strict).

    Returns
    -------
    tuple of OrderedDict
        (coarse state dict, refinement state dict), keys in our naming.

    Raises
    ------
    CheckpointError
        Naming the file and the missing / unexpected / mismatched keys.
    """
    coarse_sd = read_official(coarse)
    refine_sd = read_official(refinement)
    if model is not None:
        for sd, stage, path in (
            (coarse_sd, model.coarse, coarse),
            (refine_sd, model.refine, refinement),
        ):
            check_state_dict(sd, stage.state_dict(), latest_checkpoint(path))
            stage.load_state_dict(sd, strict=True)
    return coarse_sd, refine_sd


def export_official_layout(
    model: nn.Module,
) -> tuple[OrderedDict[str, Tensor], OrderedDict[str, Tensor]]:
    """(coarse, refinement) state dicts of a :class:`TempehModel` in the official naming."""
    return tuple(  # type: ignore[return-value]
        OrderedDict((ours_to_official(k), v.detach().clone()) for k, v in sd.items())
        for sd in (model.coarse.state_dict(), model.refine.state_dict())
    )


def _few(items: list[str], limit: int = 5) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
