"""Loading the model the inference pipeline runs: a file, the shipped default, or a stand-in.

``load_pipeline_model`` never leaves a fresh machine without a model: while no default
model is shipped it builds the ``lite`` network with seeded random weights on the procedural
head and labels it :data:`UNTRAINED_LABEL`, which every view of its output must show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from capture.errors import ConfigError
from inference.head_data import HeadTemplate
from inference.network.model import TempehModel

log = logging.getLogger(__name__)

UNTRAINED_LABEL = "UNTRAINED (random weights)"
"""Label of the randomly initialised stand-in used while no default model is shipped."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with what the user should be told about it.

    Attributes
    ----------
    model : TempehModel
        In eval mode on ``device``.
    template : HeadTemplate
        The output topology (faces, regions).
    label : str
        What to show: the file name, ``"default"`` or :data:`UNTRAINED_LABEL`.
    trained : bool
        False for the random stand-in: its meshes are not heads.
    path : Path or None
        The model file; None for the random stand-in.
    device : torch.device
    """

    model: TempehModel
    template: HeadTemplate
    label: str
    trained: bool
    path: Path | None
    device: torch.device


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; ConfigError when it is CUDA and there is none."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown torch device {device!r}", field="--device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine (use cpu)", field="--device")
    return dev


def untrained_model(device: torch.device) -> tuple[TempehModel, HeadTemplate]:
    """The ``lite`` network with seeded random weights on the procedural head."""
    from inference.network.presets import LITE
    from inference.procedural_head import load_procedural_head

    template = load_procedural_head().template
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TempehModel(LITE, template)
    return model.to(device).eval(), template


def load_pipeline_model(
    spec: str | Path | None = None, device: str = "cpu", flame: str | Path | None = None
) -> LoadedModel:
    """Load the model a ``--model`` option names.

    Parameters
    ----------
    spec : str, Path or None
        None or ``"default"``: the shipped ``resources/models/default.pt`` when it exists,
        otherwise the ``lite`` network with random weights, labelled :data:`UNTRAINED_LABEL`
        (a warning is logged). Anything else is a model file.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    flame : str or Path, optional
        FLAME pickle for models built on FLAME.

    Raises
    ------
    CheckpointError
        Naming the file: missing, corrupted or not a model file.
    ConfigError
        CUDA requested on a machine without it.
    """
    from inference.model_store import DEFAULT_MODEL, load_model

    dev = resolve_device(device)
    if spec is None or str(spec) == "default":
        if not DEFAULT_MODEL.is_file():
            log.warning(
                "no default model at %s: using a lite network with random weights; its "
                "meshes are not heads (train one with 'tempeh train' or pass --model)",
                DEFAULT_MODEL,
            )
            model, template = untrained_model(dev)
            return LoadedModel(model, template, UNTRAINED_LABEL, False, None, dev)
        model, template = load_model(DEFAULT_MODEL, dev, flame)
        return LoadedModel(model, template, "default", True, DEFAULT_MODEL, dev)
    path = Path(spec)
    model, template = load_model(path, dev, flame)
    return LoadedModel(model, template, path.name, True, path, dev)
