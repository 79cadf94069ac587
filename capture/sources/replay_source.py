"""Replay of a recorded take as a :class:`~capture.sources.FrameSource`.

Threads: one replay thread (``take-replay``, :class:`~capture.sources.replay_base.ThreadedReplay`)
decodes each set and hands its frames to the sink, paced at the recorded rate
(``realtime=True``) or as fast as decoding allows.
"""

from __future__ import annotations

import logging
import time
from os import PathLike

import numpy as np

from capture.camera import Rig
from capture.errors import TakeError
from capture.frames import Frame
from capture.sources.replay_base import ThreadedReplay
from capture.take import TakeReader

log = logging.getLogger(__name__)


class ReplaySource(ThreadedReplay):
    """Plays the sets of a take in order from ``start`` (a set position, 0-based).

    Frames carry the recorded frame ids, device timestamps and the set key as trigger id, and a
    fresh host monotonic timestamp. An undecodable frame is reported through ``on_error`` as a
    :class:`~capture.errors.TakeError` naming camera and frame; that view is left out and the
    rest of the take still plays.
    """

    thread_name = "take-replay"

    def __init__(
        self,
        take: str | PathLike[str] | TakeReader,
        *,
        realtime: bool = True,
        start: int = 0,
    ) -> None:
        super().__init__(start)
        self.take = take if isinstance(take, TakeReader) else TakeReader(take)
        self.realtime = realtime
        self._t_rec: int | None = None
        self._t_wall = 0

    @property
    def rig(self) -> Rig:
        """The take's rig."""
        return self.take.rig

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names in view order."""
        return tuple(self.take.rig.names)

    @property
    def nominal_fps(self) -> float:
        """The take's measured set rate."""
        return self.take.fps

    def __len__(self) -> int:
        return len(self.take.records)

    def read_set(self, position: int) -> tuple[list[np.ndarray | None], list[TakeError]]:
        """Decoded images of set ``position`` and the errors of undecodable views."""
        return self.take.read_set(position)

    def _frame(self, img: np.ndarray, i: int, pos: int, now: int) -> Frame:
        rec = self.take.records[pos]
        frame_id = int(rec.frame_id[i] or 0)
        return Frame(img, i, self.cameras[i], frame_id, now, rec.device_ns[i], trigger_id=rec.key)

    def _restart_clock(self) -> None:
        self._t_rec = None

    def _delay(self, position: int) -> float:
        """At the recorded rate: the recorded time since the clock restarted, minus wall time."""
        if not self.realtime:
            return 0.0
        t = self.take.records[position].time_ns
        if self._t_rec is None or t < self._t_rec:
            self._t_rec, self._t_wall = t, time.monotonic_ns()
        return (t - self._t_rec - (time.monotonic_ns() - self._t_wall)) / 1e9
