"""Replay of a recorded take as a :class:`~capture.sources.FrameSource`.

Threads: one replay thread (``take-replay``) decodes each set and hands its frames to the
sink, paced at the recorded rate (``realtime=True``) or as fast as decoding allows.
"""

from __future__ import annotations

import logging
import threading
import time
from os import PathLike

from capture.camera import Rig
from capture.errors import CaptureError
from capture.frames import Frame
from capture.sources import ErrorSink, FrameSink
from capture.take import TakeReader

log = logging.getLogger(__name__)


class ReplaySource:
    """Plays the sets of a take in order from ``start`` (a set position, 0-based).

    Frames carry the recorded frame ids, device timestamps and the set key as trigger id, and a
    fresh host monotonic timestamp. An undecodable frame is reported through ``on_error`` as a
    :class:`~capture.errors.TakeError` naming camera and frame; that view is left out and the
    rest of the take still plays.
    """

    def __init__(
        self,
        take: str | PathLike[str] | TakeReader,
        *,
        realtime: bool = True,
        start: int = 0,
    ) -> None:
        self.take = take if isinstance(take, TakeReader) else TakeReader(take)
        self.realtime = realtime
        self._position = start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._running.set()
        self.errors = 0

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

    @property
    def finished(self) -> bool:
        """True once the last set was delivered."""
        return self._done.is_set()

    def __len__(self) -> int:
        return len(self.take.records)

    def seek(self, position: int) -> None:
        """Continue from set ``position`` (0-based index into the recorded sets); thread-safe."""
        if not 0 <= position < len(self.take.records):
            raise CaptureError(f"seek to set {position}: the take has {len(self)} sets")
        with self._lock:
            self._position = position

    def pause(self) -> None:
        """Hold playback before the next set (also before the first: call before start)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause` (pacing restarts from now)."""
        self._running.set()

    def start(self, sink: FrameSink, on_error: ErrorSink) -> None:
        """Start the replay thread."""
        if self._thread is not None:
            raise CaptureError("replay already started")
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(
            target=self._run, args=(sink, on_error), name="take-replay", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the replay thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self, sink: FrameSink, on_error: ErrorSink) -> None:
        records = self.take.records
        t_wall = time.monotonic_ns()
        t_rec: int | None = None
        try:
            while not self._stop.is_set():
                with self._lock:
                    pos = self._position
                    self._position += 1
                if pos >= len(records):
                    break
                rec = records[pos]
                if not self._running.is_set():
                    while not self._running.wait(0.05):
                        if self._stop.is_set():
                            return
                    t_rec = None
                if self.realtime:
                    if t_rec is None or rec.time_ns < t_rec:
                        t_rec, t_wall = rec.time_ns, time.monotonic_ns()
                    delay = (rec.time_ns - t_rec - (time.monotonic_ns() - t_wall)) / 1e9
                    if delay > 0 and self._stop.wait(delay):
                        break
                images, errors = self.take.read_set(pos)
                for err in errors:
                    self.errors += 1
                    log.error("%s", err)
                    on_error(err)
                now = time.monotonic_ns()
                for i, img in enumerate(images):
                    if img is None:
                        continue
                    sink(
                        Frame(
                            img,
                            i,
                            self.cameras[i],
                            int(rec.frame_id[i] or 0),
                            now,
                            rec.device_ns[i],
                            trigger_id=rec.key,
                        )
                    )
        except Exception as exc:  # reported to the session as an event
            log.exception("replay failed")
            on_error(exc)
        finally:
            self._done.set()
