"""Replay of a recorded take for the studio: scrub, play / pause, step, speed (no Qt).

Threads: one ``take-player`` thread decodes sets and hands them to ``on_set`` (which submits
them to inference); every control method may be called from any thread (the GUI's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from capture.frames import Frame, FrameSet
from capture.take import SetRecord, TakeReader

log = logging.getLogger(__name__)

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
GAP_FACTOR = 1.5
"""A pause between two sets longer than this many median periods is drawn as a gap."""


@dataclass(frozen=True)
class TimelineModel:
    """What the timeline draws: when each set was recorded, which are incomplete, the gaps.

    Attributes
    ----------
    times_s : np.ndarray
        (S,) float64 seconds of each set since the first.
    complete : np.ndarray
        (S,) bool, every camera delivered.
    gaps : tuple[tuple[float, float], ...]
        ``(start_s, end_s)`` of each pause longer than :data:`GAP_FACTOR` median periods or
        where set keys jump (sets lost between the two).
    lost : int
        Sets missing from the key sequence.
    duration_s : float
        Time from the first to the last set.
    """

    times_s: np.ndarray
    complete: np.ndarray
    gaps: tuple[tuple[float, float], ...]
    lost: int
    duration_s: float

    def position_at(self, t_s: float) -> int:
        """Index of the set nearest to ``t_s`` seconds (0 for an empty take)."""
        if not len(self.times_s):
            return 0
        return int(np.argmin(np.abs(self.times_s - t_s)))


def timeline_model(records: list[SetRecord]) -> TimelineModel:
    """Build the :class:`TimelineModel` of a take's set records."""
    if not records:
        empty = np.zeros(0)
        return TimelineModel(empty, np.zeros(0, bool), (), 0, 0.0)
    t0 = records[0].time_ns
    times = np.array([(r.time_ns - t0) / 1e9 for r in records], dtype=np.float64)
    complete = np.array([r.complete for r in records], dtype=bool)
    keys = np.array([r.key for r in records], dtype=np.int64)
    gaps: list[tuple[float, float]] = []
    lost = 0
    if len(records) >= 2:
        dt = np.diff(times)
        period = float(np.median(dt)) if len(dt) else 0.0
        jumps = np.diff(keys)
        for i in range(len(dt)):
            missing = max(0, int(jumps[i]) - 1)
            lost += missing
            if missing or (period > 0 and dt[i] > GAP_FACTOR * period):
                gaps.append((float(times[i]), float(times[i + 1])))
    return TimelineModel(times, complete, tuple(gaps), lost, float(times[-1]))


def frameset_from_take(
    reader: TakeReader, position: int, images: list[np.ndarray | None]
) -> FrameSet:
    """The :class:`FrameSet` of set ``position`` (sequence = position, fresh host timestamps)."""
    rec = reader.records[position]
    now = time.monotonic_ns()
    frames = []
    for i, img in enumerate(images):
        if img is None:
            frames.append(None)
            continue
        frames.append(
            Frame(
                img,
                i,
                reader.rig.cameras[i].name,
                int(rec.frame_id[i] or 0),
                now,
                rec.device_ns[i],
                trigger_id=rec.key,
            )
        )
    return FrameSet(position, tuple(frames), reader.rig, rec.spread_ns, rec.key)


@dataclass(frozen=True)
class PlayerStatus:
    """Snapshot: position (set index), count, playing, speed, sets shown, errors."""

    position: int
    count: int
    playing: bool
    speed: float
    shown: int
    errors: int


class TakePlayer:
    """Plays a take's sets on a thread at ``speed`` × the recorded rate.

    Parameters
    ----------
    reader : TakeReader
    on_set : callable
        Called with every decoded :class:`FrameSet`, on the player thread.
    on_error : callable, optional
        Called with decoding errors (the set still plays without that view), on the thread.
    loop : bool
        Start again at the first set after the last (default: stop at the end).
    """

    def __init__(
        self,
        reader: TakeReader,
        on_set: Callable[[FrameSet], None],
        on_error: Callable[[BaseException], None] | None = None,
        loop: bool = False,
    ) -> None:
        self.reader = reader
        self.timeline = timeline_model(reader.records)
        self.on_set, self.on_error, self.loop = on_set, on_error, loop
        self._cond = threading.Condition()
        self._position = 0
        self._playing = False
        self._speed = 1.0
        self._show_request: int | None = 0  # show the first set right away
        self._halt = False
        self._shown = self._errors = 0
        self._shown_position = -1
        self._latest: FrameSet | None = None
        self._thread = threading.Thread(target=self._run, name="take-player", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self.reader.records)

    # ----------------------------------------------------------------- control (any thread)

    def status(self) -> PlayerStatus:
        """A snapshot."""
        with self._cond:
            return PlayerStatus(
                self._position, len(self), self._playing, self._speed, self._shown, self._errors
            )

    def latest(self) -> FrameSet | None:
        """The last set handed out."""
        with self._cond:
            return self._latest

    def play(self) -> None:
        """Play on from the set shown (from the start when at the end)."""
        with self._cond:
            if self._position >= len(self) - 1:
                self._position = 0
                self._show_request = 0
            self._playing = len(self) > 0
            self._cond.notify_all()

    def pause(self) -> None:
        """Hold at the current set."""
        with self._cond:
            self._playing = False
            self._cond.notify_all()

    def seek(self, position: int) -> None:
        """Show set ``position`` (clamped to the take); playback continues from there."""
        with self._cond:
            if not len(self):
                return
            self._position = int(np.clip(position, 0, len(self) - 1))
            self._show_request = self._position
            self._cond.notify_all()

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` sets (negative: back)."""
        with self._cond:
            self._playing = False
        self.seek(self._position + delta)

    def set_speed(self, speed: float) -> None:
        """Playback speed relative to the recorded rate (> 0)."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        with self._cond:
            self._speed = float(speed)
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (idempotent)."""
        with self._cond:
            self._halt = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("take player did not stop within %.1f s", timeout)

    # ----------------------------------------------------------------- thread

    def _period(self, position: int) -> float:
        times = self.timeline.times_s
        if position + 1 < len(times):
            return float(times[position + 1] - times[position])
        return 0.0

    def _run(self) -> None:
        next_due = time.monotonic()
        while True:
            with self._cond:
                while not self._halt and self._show_request is None and not self._playing:
                    self._cond.wait(0.2)
                if self._halt:
                    return
                if self._show_request is not None:
                    pos, self._show_request = self._show_request, None
                    next_due = time.monotonic()
                else:
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        self._cond.wait(delay)
                        continue
                    pos = self._position
                    if self._shown_position == pos:  # on screen already: the next one
                        pos += 1
                    if pos >= len(self):
                        if not self.loop:
                            self._playing = False
                            continue
                        pos = 0
                self._position = pos
                playing = self._playing
            self._show(pos)
            with self._cond:
                if playing and self._playing and self._show_request is None:
                    period = self._period(pos) / self._speed
                    next_due = max(next_due + period, time.monotonic() - 0.5)

    def _show(self, pos: int) -> None:
        try:
            images, errors = self.reader.read_set(pos)
            for err in errors:
                with self._cond:
                    self._errors += 1
                if self.on_error is not None:
                    self.on_error(err)
            fs = frameset_from_take(self.reader, pos, images)
            with self._cond:
                self._latest = fs
                self._shown += 1
                self._shown_position = pos
            self.on_set(fs)
        except Exception as exc:  # reported; the player stays usable
            log.exception("replay of set %d failed", pos)
            with self._cond:
                self._errors += 1
                self._shown_position = pos  # playback moves on past an unreadable set
            if self.on_error is not None:
                self.on_error(exc)
