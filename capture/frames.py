"""Frame records passed from camera sources to the grouper, the session and the recorder.

Both records are frozen and hold numpy images that are not copied again downstream: a
consumer must treat ``Frame.image`` as read-only (it is flagged non-writeable on creation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.camera import Rig
from capture.errors import CaptureError


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera's image at one instant.

    Attributes
    ----------
    image : np.ndarray
        (H, W) or (H, W, 3) uint8, read-only. Colour images are BGR (OpenCV order).
    camera_index : int
        Index of the camera in its rig (view order).
    camera_name : str
        Name of that rig camera.
    frame_id : int
        The device's frame counter (pylon ``BlockID``); counts from 0 after ``start``.
    host_timestamp_ns : int
        ``time.monotonic_ns()`` when the host received the frame.
    device_timestamp_ns : int or None
        The camera's own timestamp (ns, PTP time on GigE cameras that run PTP); None when the
        camera reports none (the pylon emulator always reports 0, stored as None).
    trigger_id : int or None
        Sequence number of the software trigger that produced the frame, when the source
        issued it; the grouper prefers it to ``frame_id`` because a camera that missed
        triggers has a frame counter that lags the others.
    """

    image: np.ndarray
    camera_index: int
    camera_name: str
    frame_id: int
    host_timestamp_ns: int
    device_timestamp_ns: int | None = None
    trigger_id: int | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise CaptureError(
                f"camera {self.camera_name!r}: frame image must be a uint8 ndarray, "
                f"got {getattr(img, 'dtype', type(img))}"
            )
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise CaptureError(
                f"camera {self.camera_name!r}: frame image must be (H, W) or (H, W, 3), "
                f"got {img.shape}"
            )
        if img.flags.writeable:
            img.setflags(write=False)

    @property
    def sync_key(self) -> int:
        """The counter frames of one set share: the trigger id when known, else ``frame_id``."""
        return self.trigger_id if self.trigger_id is not None else self.frame_id

    @property
    def timestamp_ns(self) -> int:
        """The best timestamp: the device's when it has one, else the host's (ns)."""
        return (
            self.device_timestamp_ns
            if self.device_timestamp_ns is not None
            else (self.host_timestamp_ns)
        )


@dataclass(frozen=True, eq=False)
class FrameSet:
    """The synchronized frames of one instant, one slot per rig camera.

    Attributes
    ----------
    sequence : int
        Set number, increasing by one per emitted set from 0 after the session starts.
    frames : tuple[Frame | None, ...]
        One entry per rig camera in view order; None marks a gap (the view did not arrive).
    rig : Rig
        The rig the frames belong to.
    spread_ns : int
        Max minus min of the frames' timestamps (device when every frame has one, host
        otherwise), ns. 0 for a set with fewer than two frames.
    key : int
        The grouping key the set was formed on (trigger id, frame counter or timestamp bin).
    cut_off : bool
        Emitted by the end of a session while it still waited for views: the missing views
        may have been cut off by the stop rather than lost by their cameras.
    """

    sequence: int
    frames: tuple[Frame | None, ...]
    rig: Rig
    spread_ns: int = 0
    key: int = 0
    cut_off: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", tuple(self.frames))
        if len(self.frames) != len(self.rig):
            raise CaptureError(
                f"frame set {self.sequence}: {len(self.frames)} slots for a rig of "
                f"{len(self.rig)} cameras"
            )

    @property
    def missing(self) -> tuple[int, ...]:
        """Indices of the cameras without a frame in this set."""
        return tuple(i for i, f in enumerate(self.frames) if f is None)

    @property
    def complete(self) -> bool:
        """True when every camera delivered a frame."""
        return all(f is not None for f in self.frames)

    @property
    def host_timestamp_ns(self) -> int:
        """Earliest host timestamp of the set's frames (ns, monotonic); 0 for an empty set."""
        stamps = [f.host_timestamp_ns for f in self.frames if f is not None]
        return min(stamps) if stamps else 0


def timestamp_spread(frames: list[Frame]) -> int:
    """Max minus min timestamp of ``frames`` (ns): device stamps if all have one, else host."""
    if len(frames) < 2:
        return 0
    if all(f.device_timestamp_ns is not None for f in frames):
        stamps = [int(f.device_timestamp_ns) for f in frames]  # type: ignore[arg-type]
    else:
        stamps = [f.host_timestamp_ns for f in frames]
    return max(stamps) - min(stamps)
