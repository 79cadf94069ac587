"""Frame sources for the studio's live mode, and the reference meshes they know (no Qt).

The emulated rig plays the synthetic performer through pylon's camera emulator (as
``tempeh record --source emulated``); since the performer's meshes are known, they serve as
the reference the viewport colours the reconstruction error against. A take recorded from
it stores the performer's parameters, so its replay has the reference too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.studio.config import StudioConfig
from capture.errors import ConfigError

log = logging.getLogger(__name__)

PERFORMER_SEED = 0


def performer_references(seed: int, fps: float, count: int) -> list[np.ndarray]:
    """(N, 3) float32 vertices (mm) of the performer's first ``count`` sets at ``fps``."""
    from inference.performer import Performer
    from inference.procedural_head import load_procedural_head

    performer = Performer(load_procedural_head(), seed=seed, subject_seed=seed)
    return [np.asarray(performer.vertices(s / fps), dtype=np.float32) for s in range(count)]


def build_live_source(config: StudioConfig, work: Path) -> tuple[Any, list[np.ndarray] | None]:
    """The configured live source and its reference meshes (None when it has none).

    Call on a thread that does not own Qt's GL context: the emulated rig renders the
    performer's frames with its own EGL context (written into ``work`` for the emulator).
    """
    from app.cmd_capture import PERFORMER_SETS, emulator_rig, load_rig, make_source

    if config.source == "emulated":
        from capture.sources.pylon_source import emulated_source
        from inference.procedural_head import load_procedural_head
        from inference.synth import PerformerFrames

        rig = emulator_rig(load_rig(config.rig or "default16", config.size or None))
        provider = PerformerFrames(rig, load_procedural_head(), seed=PERFORMER_SEED, fps=config.fps)
        try:
            source = emulated_source(
                rig, provider, work, count=PERFORMER_SETS, frame_rate=config.fps
            )
        finally:
            provider.close()
        return source, performer_references(PERFORMER_SEED, config.fps, PERFORMER_SETS)
    if config.source == "basler":
        return make_source("pylon", config.rig, config.size or None, config.fps, work), None
    if config.source == "replay":
        raise ConfigError("a replay source is opened with open_take, not live", field="source")
    raise ConfigError(f"unknown source {config.source!r}", field="source")


def performer_config(config: StudioConfig, references: list[np.ndarray] | None) -> dict | None:
    """What a take records about its performer (for :func:`take_references`)."""
    if references is None:
        return None
    return {"seed": PERFORMER_SEED, "fps": config.fps, "sets": len(references)}


def take_references(reader: Any) -> list[np.ndarray] | None:
    """The performer's meshes when the take was recorded from the emulated rig, else None."""
    perf = reader.session.get("config", {}).get("performer")
    if not isinstance(perf, dict):
        return None
    try:
        return performer_references(int(perf["seed"]), float(perf["fps"]), int(perf["sets"]))
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("take %s: unusable performer reference (%s)", reader.path, exc)
        return None
