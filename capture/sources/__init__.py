"""Frame sources: hardware and files behind one protocol.

A source does I/O only: it opens its devices or files, and while started delivers
:class:`~capture.frames.Frame` s to the ``sink`` callable given to :meth:`FrameSource.start`,
from its own thread. Threads, queues and grouping belong to the capture session.

Implementations: :class:`capture.sources.pylon_source.PylonSource` (real Basler cameras and
pylon's camera emulator), :class:`capture.sources.replay_source.ReplaySource` (recorded
takes), :class:`capture.sources.famos_source.FamosReplaySource` (the TEMPEH/FaMoS image
layout) and :class:`capture.sources.video_folder_source.VideoFolderSource` (per-camera videos
or image folders plus a rig).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from capture.camera import Rig
from capture.frames import Frame

FrameSink = Callable[[Frame], None]
"""Receives every frame, called on the source's thread; must return quickly."""
ErrorSink = Callable[[BaseException], None]
"""Receives an error that ended the source's thread, called on that thread."""


@runtime_checkable
class FrameSource(Protocol):
    """What the capture session needs from a source of frames."""

    @property
    def rig(self) -> Rig:
        """The rig whose cameras the frames belong to (``Frame.camera_index`` indexes it)."""
        ...

    @property
    def cameras(self) -> tuple[str, ...]:
        """Rig camera names in view order."""
        ...

    @property
    def nominal_fps(self) -> float:
        """Target frame-set rate (sets per second); 0 when the source sets no rate."""
        ...

    @property
    def finished(self) -> bool:
        """True once a finite source (a replay) delivered everything."""
        ...

    def start(self, sink: FrameSink, on_error: ErrorSink) -> None:
        """Open the devices if needed and start delivering frames to ``sink``."""
        ...

    def stop(self) -> None:
        """Stop delivering, join the source's threads and release the devices (idempotent)."""
        ...
