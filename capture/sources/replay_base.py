"""The replay thread shared by every replay source (recorded takes, FaMoS layout, video folders).

Threads: one replay thread per source (named by the subclass) reads each set with
:meth:`ThreadedReplay.read_set` and hands its frames to the sink, paced by the subclass's
:meth:`ThreadedReplay._delay`.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from capture.errors import CaptureError, TakeError
from capture.frames import Frame
from capture.sources import ErrorSink, FrameSink

log = logging.getLogger(__name__)


class ThreadedReplay:
    """Plays sets ``0 .. len-1`` on a thread from ``start``; seek, pause and resume are thread-safe.

    Subclasses implement :meth:`__len__`, :meth:`read_set`, :meth:`_frame` and the pacing hooks
    :meth:`_restart_clock` and :meth:`_delay`. An unreadable view is reported through
    ``on_error`` (counted in ``errors``) and left out; the rest still plays.
    """

    thread_name = "replay"

    def __init__(self, start: int = 0) -> None:
        self._position = start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._running.set()
        self.errors = 0

    # ----------------------------------------------------------------- to implement

    def __len__(self) -> int:
        raise NotImplementedError

    def read_set(self, position: int) -> tuple[list[np.ndarray | None], list[TakeError]]:
        """Images of set ``position`` (None for a gap) and the errors of unreadable views."""
        raise NotImplementedError

    def _frame(self, img: np.ndarray, i: int, pos: int, now: int) -> Frame:
        """The frame of view ``i`` of set ``pos`` (host timestamp ``now``, ns)."""
        raise NotImplementedError

    def _restart_clock(self) -> None:
        """Pacing starts again from now (at start and after a pause)."""

    def _delay(self, position: int) -> float:
        """Seconds to wait before delivering set ``position`` (≤ 0: none)."""
        return 0.0

    # ----------------------------------------------------------------- control

    @property
    def finished(self) -> bool:
        """True once the last set was delivered."""
        return self._done.is_set()

    def seek(self, position: int) -> None:
        """Continue from set ``position`` (0-based); thread-safe."""
        if not 0 <= position < len(self):
            raise CaptureError(f"seek to set {position}: the replay has {len(self)} sets")
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
            target=self._run, args=(sink, on_error), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the replay thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self, sink: FrameSink, on_error: ErrorSink) -> None:
        self._restart_clock()
        try:
            while not self._stop.is_set():
                with self._lock:
                    pos = self._position
                    self._position += 1
                if pos >= len(self):
                    break
                if not self._running.is_set():
                    while not self._running.wait(0.05):
                        if self._stop.is_set():
                            return
                    self._restart_clock()
                delay = self._delay(pos)
                if delay > 0 and self._stop.wait(delay):
                    break
                images, errors = self.read_set(pos)
                for err in errors:
                    self.errors += 1
                    log.error("%s", err)
                    on_error(err)
                now = time.monotonic_ns()
                for i, img in enumerate(images):
                    if img is not None:
                        sink(self._frame(img, i, pos, now))
        except Exception as exc:  # reported to the session as an event
            log.exception("replay failed")
            on_error(exc)
        finally:
            self._done.set()
