"""What the studio is doing, as a snapshot for the GUI (no Qt)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Activity(enum.Enum):
    """What the studio is doing."""

    IDLE = "idle"
    STARTING = "starting"
    LIVE = "live"
    RECORDING = "recording"
    REPLAY = "replay"
    STOPPING = "stopping"


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot for the status bar and the performance panel (any thread).

    Attributes
    ----------
    activity : Activity
    rig_name : str
    model_label : str
        "" until the model is loaded.
    model_trained : bool
    device : str
    capture_fps : float
        Sets per second from the session (live) or the player (replay).
    sets_complete, sets_incomplete : int
        Cumulative counts of the current session (replay: of the sets shown).
    missing_views : tuple[int, ...]
        Per camera, sets without its view.
    lost_cameras : tuple[str, ...]
    spread_ms : float
        Timestamp spread of the latest set (sync quality); nan when unknown.
    inference_fps : float
    processed, skipped, inference_errors : int
    recording_sets : int
        Sets written to the current take (0 when not recording).
    take : str
        The take being recorded or replayed ("" for none).
    """

    activity: Activity
    rig_name: str
    model_label: str
    model_trained: bool
    device: str
    capture_fps: float
    sets_complete: int
    sets_incomplete: int
    missing_views: tuple[int, ...]
    lost_cameras: tuple[str, ...]
    spread_ms: float
    inference_fps: float
    processed: int
    skipped: int
    inference_errors: int
    recording_sets: int
    take: str
