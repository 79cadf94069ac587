"""Grouping of per-camera frames into synchronized :class:`~capture.frames.FrameSet` s.

Pure logic, no threads: the caller (the capture session) feeds frames with :meth:`add`, calls
:meth:`poll` with the current time to release sets whose missing views timed out, and
:meth:`flush` at the end. Every set that received at least one frame is emitted exactly once,
in key order, with missing views as ``None``; nothing is dropped silently.

Two modes (``domain.md``, synchronisation):

- ``COUNTER``: frames of one instant share a counter, the source's software-trigger id or the
  device frame counter after a common start (hardware trigger). A gap in the emitted keys is a
  set no camera delivered; it is counted as *dropped*.
- ``TIMESTAMP``: PTP-synchronised free run; a frame joins the pending set whose reference
  timestamp lies within ±½ frame period, else it opens a new set.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from capture.camera import Rig
from capture.errors import CaptureError
from capture.frames import Frame, FrameSet, timestamp_spread

log = logging.getLogger(__name__)


class GroupingMode(enum.Enum):
    """How frames of one instant are recognised."""

    COUNTER = "counter"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class GroupingStats:
    """Counters since the grouper was created.

    Attributes
    ----------
    complete, incomplete : int
        Emitted sets with every view / with at least one view missing.
    late : int
        Frames that arrived after their set had been emitted (discarded, counted).
    dropped : int
        Sets no camera delivered (gaps in the counter, or in timestamp mode gaps of more than
        one frame period between consecutive sets).
    duplicates : int
        Frames for a camera slot that was already filled (discarded, counted).
    missing_views : tuple[int, ...]
        Per camera, how many emitted sets lacked its view.
    cut_off : int
        Sets the end of a session emitted while they still waited for views
        (:attr:`FrameSet.cut_off`): counted here, not as incomplete and not against their
        cameras, since the stop rather than a camera cut them short.
    """

    complete: int = 0
    incomplete: int = 0
    late: int = 0
    dropped: int = 0
    duplicates: int = 0
    missing_views: tuple[int, ...] = ()
    cut_off: int = 0

    @property
    def emitted(self) -> int:
        """Sets emitted so far."""
        return self.complete + self.incomplete + self.cut_off


@dataclass
class _Pending:
    key: int
    reference_ns: int
    first_seen_ns: int
    slots: list[Frame | None] = field(default_factory=list)


class FrameGrouper:
    """Turns per-camera frames into frame sets (not thread-safe; one owner thread).

    Parameters
    ----------
    rig : Rig
        The cameras; ``Frame.camera_index`` indexes ``rig.cameras``.
    mode : GroupingMode
        Counter/trigger-id grouping or timestamp grouping.
    timeout_ns : int
        A pending set is emitted incomplete once this long (host time) has passed since its
        first frame arrived.
    frame_period_ns : int or None
        Nominal frame period; required in ``TIMESTAMP`` mode (the ±½ period window and the
        dropped-set count).
    max_pending : int
        At most this many sets wait for views; beyond it the oldest is emitted incomplete.
    """

    def __init__(
        self,
        rig: Rig,
        mode: GroupingMode = GroupingMode.COUNTER,
        *,
        timeout_ns: int = 200_000_000,
        frame_period_ns: int | None = None,
        max_pending: int = 8,
    ) -> None:
        if mode is GroupingMode.TIMESTAMP and not frame_period_ns:
            raise CaptureError("timestamp grouping needs a frame period (frame_period_ns)")
        if max_pending < 1 or timeout_ns <= 0:
            raise CaptureError(
                f"bad grouper limits: max_pending={max_pending}, timeout={timeout_ns}"
            )
        self.rig = rig
        self.mode = mode
        self.timeout_ns = int(timeout_ns)
        self.frame_period_ns = int(frame_period_ns or 0)
        self.max_pending = int(max_pending)
        self._pending: list[_Pending] = []  # sorted by key
        self._last_key: int | None = None
        self._last_reference_ns: int | None = None
        self._sequence = 0
        self._complete = self._incomplete = self._late = self._dropped = self._dup = 0
        self._cut_off = 0
        self._missing = [0] * len(rig)

    # ------------------------------------------------------------------ public API

    @property
    def stats(self) -> GroupingStats:
        """A snapshot of the counters."""
        return GroupingStats(
            self._complete,
            self._incomplete,
            self._late,
            self._dropped,
            self._dup,
            tuple(self._missing),
            self._cut_off,
        )

    @property
    def pending(self) -> int:
        """Sets waiting for views."""
        return len(self._pending)

    def add(self, frame: Frame, now_ns: int | None = None) -> list[FrameSet]:
        """Add one frame; returns the sets this completes or forces out, in key order.

        ``now_ns`` is the host time (defaults to the frame's host timestamp).
        """
        n = len(self.rig)
        if not 0 <= frame.camera_index < n:
            raise CaptureError(
                f"frame from camera index {frame.camera_index} ({frame.camera_name!r}) "
                f"for a rig of {n} cameras"
            )
        now = frame.host_timestamp_ns if now_ns is None else now_ns
        pend = self._find_or_open(frame, now)
        if pend is None:
            self._late += 1
            log.debug("late frame %s from %s", frame.sync_key, frame.camera_name)
            return []
        if pend.slots[frame.camera_index] is not None:
            self._dup += 1
            return []
        pend.slots[frame.camera_index] = frame
        out: list[FrameSet] = []
        if all(s is not None for s in pend.slots):
            while self._pending and self._pending[0] is not pend:
                out.append(self._emit(self._pending.pop(0)))
            out.append(self._emit(self._pending.pop(0)))
        while len(self._pending) > self.max_pending:
            out.append(self._emit(self._pending.pop(0)))
        return out

    def poll(self, now_ns: int) -> list[FrameSet]:
        """Emit, oldest first, the pending sets whose wait exceeded the timeout."""
        out = []
        while self._pending and now_ns - self._pending[0].first_seen_ns >= self.timeout_ns:
            out.append(self._emit(self._pending.pop(0)))
        return out

    def flush(self, cut_off: bool = False) -> list[FrameSet]:
        """Emit every pending set (at the end of a stream); ``cut_off`` marks them as ended by a
        stop (:attr:`FrameSet.cut_off`) rather than by a source that has no more frames."""
        out = [self._emit(p, cut_off) for p in self._pending]
        self._pending.clear()
        return out

    # ------------------------------------------------------------------ internals

    def _find_or_open(self, frame: Frame, now: int) -> _Pending | None:
        if self.mode is GroupingMode.COUNTER:
            key = frame.sync_key
            if self._last_key is not None and key <= self._last_key:
                return None
            for i, p in enumerate(self._pending):
                if p.key == key:
                    return p
                if p.key > key:
                    new = _Pending(key, frame.timestamp_ns, now, [None] * len(self.rig))
                    self._pending.insert(i, new)
                    return new
            new = _Pending(key, frame.timestamp_ns, now, [None] * len(self.rig))
            self._pending.append(new)
            return new
        ts = frame.timestamp_ns
        half = self.frame_period_ns // 2
        if self._last_reference_ns is not None and ts < self._last_reference_ns + half:
            return None
        best = None
        for p in self._pending:
            d = abs(ts - p.reference_ns)
            if d <= half and p.slots[frame.camera_index] is None and (best is None or d < best[0]):
                best = (d, p)
        if best is not None:
            return best[1]
        new = _Pending(ts, ts, now, [None] * len(self.rig))
        self._pending.append(new)
        self._pending.sort(key=lambda p: p.key)
        return new

    def _emit(self, p: _Pending, cut_off: bool = False) -> FrameSet:
        if self.mode is GroupingMode.COUNTER:
            if self._last_key is not None and p.key > self._last_key + 1:
                self._dropped += p.key - self._last_key - 1
            self._last_key = p.key
        else:
            if self._last_reference_ns is not None and self.frame_period_ns:
                gaps = round((p.reference_ns - self._last_reference_ns) / self.frame_period_ns)
                self._dropped += max(0, gaps - 1)
            self._last_reference_ns = p.reference_ns
        frames = [f for f in p.slots if f is not None]
        fs = FrameSet(
            self._sequence, tuple(p.slots), self.rig, timestamp_spread(frames), p.key, cut_off
        )
        self._sequence += 1
        if fs.complete:
            self._complete += 1
        elif cut_off:
            self._cut_off += 1
        else:
            self._incomplete += 1
            for i in fs.missing:
                self._missing[i] += 1
        return fs
