"""Our model file: one ``.pt`` holding the config, the template spec and both stages' weights.

Layout (every value a tensor, str, int, float, bool, list, tuple or dict so that the file
loads with ``torch.load(weights_only=True)``)::

    {"format": "tempeh-studio-model", "version": 1,
     "config": to_dict(ModelConfig), "template": {"kind": "procedural" | "flame", ...},
     "coarse": state_dict, "refine": state_dict}

A FLAME template spec stores ``"path"`` (and ``"masks"``) only as hints: FLAME may not be
redistributed, so :func:`load_model` takes the FLAME file from the caller when the hint does
not exist on this machine.
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from capture.errors import CheckpointError, HeadModelError
from inference.head_data import HeadTemplate
from inference.network.config import ModelConfig, from_dict, to_dict
from inference.network.model import TempehModel
from inference.network.official import check_state_dict

log = logging.getLogger(__name__)

FORMAT = "tempeh-studio-model"
VERSION = 1
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "resources" / "models" / "default.pt"
"""The shipped model that ``default`` names (issue 5)."""


def save_model(path: str | Path, model: TempehModel, template_spec: dict[str, Any]) -> Path:
    """Write ``model`` and its template spec to ``path``.

    Parameters
    ----------
    path : str or Path
        Output ``.pt`` file; parent folders are created.
    model : TempehModel
    template_spec : dict
        ``{"kind": "procedural"}`` or ``{"kind": "flame", "path": str, "masks": str | None}``.

    Raises
    ------
    CheckpointError
        If the spec has an unknown kind or the file cannot be written.
    """
    path = Path(path)
    _check_spec(template_spec, path)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "config": to_dict(model.config),
        "template": {k: (None if v is None else str(v)) for k, v in template_spec.items()},
        "num_vertices": int(model.coarse.num_vertices),
        "coarse": OrderedDict((k, v.detach().cpu()) for k, v in model.coarse.state_dict().items()),
        "refine": OrderedDict((k, v.detach().cpu()) for k, v in model.refine.state_dict().items()),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, path)
    except OSError as exc:
        raise CheckpointError(f"cannot write model: {exc}", path=path) from exc
    log.info("saved model %s", path)
    return path


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The validated raw dict of a model file (``default`` names the shipped model).

    Raises
    ------
    CheckpointError
        Missing, unreadable or corrupted file, wrong ``format`` key or unsupported version.
    """
    path = resolve_model_path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    # corrupt zip -> RuntimeError, empty -> EOFError, non-tensor objects -> UnpicklingError
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read model file: {exc}", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"not a {FORMAT} file (format {found!r}); official checkpoints are converted "
            "with 'tempeh import-official'",
            path=path,
        )
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"unsupported model file version {data.get('version')!r} (expected {VERSION})",
            path=path,
        )
    for key, kind in (("config", dict), ("template", dict), ("coarse", dict), ("refine", dict)):
        if not isinstance(data.get(key), kind):
            raise CheckpointError(f"key {key!r} is missing or not a dict", path=path)
    _check_spec(data["template"], path)
    return data


def resolve_model_path(path: str | Path) -> Path:
    """``path`` as a file, ``default`` mapped to the shipped model.

    Raises
    ------
    CheckpointError
        If the file does not exist (for ``default``: the shipped model is missing from this
        installation).
    """
    if str(path) == "default":
        if not DEFAULT_MODEL.is_file():
            raise CheckpointError(
                "the shipped default model is missing from this installation; reinstall, "
                "retrain it with 'tempeh train-default', or pass --model MODEL.pt",
                path=DEFAULT_MODEL,
            )
        return DEFAULT_MODEL
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such model file", path=path)
    return path


def load_template(spec: dict[str, Any], flame: str | Path | None = None) -> HeadTemplate:
    """The head template a spec names.

    Parameters
    ----------
    spec : dict
        A model file's ``"template"`` entry.
    flame : str or Path, optional
        FLAME pickle to use instead of the spec's path hint.

    Raises
    ------
    HeadModelError
        If the FLAME file is missing or invalid.
    """
    if spec["kind"] == "procedural":
        from inference.procedural_head import load_procedural_head

        return load_procedural_head().template
    from inference.flame import load_flame

    path = flame if flame is not None else spec.get("path")
    if path is None:
        raise HeadModelError("the model needs a FLAME file; pass its path")
    return load_flame(path, spec.get("masks")).template


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    flame: str | Path | None = None,
) -> tuple[TempehModel, HeadTemplate]:
    """Rebuild the model stored in ``path`` (or ``"default"``), in eval mode on ``device``.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_model`, or ``"default"``.
    device : str or torch.device
    flame : str or Path, optional
        FLAME pickle for FLAME models (default: the path hint stored in the file).

    Returns
    -------
    (TempehModel, HeadTemplate)

    Raises
    ------
    CheckpointError
        Naming the file: missing, corrupted, wrong format, bad config, or weights made for
        another template (vertex count) or another network layout.
    """
    file = resolve_model_path(path)
    data = read_model_file(file)
    try:
        config = from_dict(ModelConfig, data["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"invalid config: {exc}", path=file) from exc
    template = load_template(data["template"], flame)
    stored = data.get("num_vertices")
    if stored is not None and int(stored) != template.num_vertices:
        raise CheckpointError(
            f"model was made for a {stored}-vertex template, "
            f"{template.name!r} has {template.num_vertices}",
            path=file,
        )
    model = TempehModel(config, template)
    for name, stage in (("coarse", model.coarse), ("refine", model.refine)):
        try:
            check_state_dict(data[name], stage.state_dict(), file)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{name} weights do not match the {template.num_vertices}-vertex "
                f"template {template.name!r}: {exc.reason}",
                path=file,
            ) from exc
        stage.load_state_dict(data[name], strict=True)
    log.info("loaded model %s (%s template)", file, template.name)
    return model.to(device).eval(), template


def _check_spec(spec: dict[str, Any], path: Path) -> None:
    if not isinstance(spec, dict) or spec.get("kind") not in ("procedural", "flame"):
        raise CheckpointError(
            f"template spec must have kind 'procedural' or 'flame', got {spec!r}", path=path
        )
