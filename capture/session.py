"""The capture session: an explicit state machine owning the live capture threads.

States: ``IDLE → STREAMING → RECORDING → STREAMING … → STOPPING → IDLE``.

Threads (one owner each):

- the source's grab thread(s) push :class:`~capture.frames.Frame` s into a bounded frame
  queue (never blocking: a full queue counts ``frames_overflowed``);
- the session's dispatcher thread (``capture-dispatch``) owns the
  :class:`~capture.grouping.FrameGrouper`, emits every :class:`~capture.frames.FrameSet` to
  each subscriber queue (bounded, never blocking the dispatcher: a full subscriber queue counts
  an overflow for that subscriber) and into the latest-set slot;
- consumers (the recorder, inference, the display) run on their own threads. The recorder reads
  a subscriber queue (every set, in order); display and inference read :meth:`latest`, so a
  slow consumer never blocks recording.

Events are psygnal signals emitted on the dispatcher thread (or the source's thread for
``error``); ``app`` bridges them to Qt with queued connections.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass

from psygnal import Signal

from capture.errors import CaptureError
from capture.frames import Frame, FrameSet
from capture.grouping import FrameGrouper, GroupingMode, GroupingStats
from capture.sources import FrameSource

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0


class SessionState(enum.Enum):
    """Where the session is."""

    IDLE = "idle"
    STREAMING = "streaming"
    RECORDING = "recording"
    STOPPING = "stopping"


@dataclass(frozen=True)
class SessionStatus:
    """A snapshot of the session (safe to read from any thread).

    Attributes
    ----------
    state : SessionState
    grouping : GroupingStats
        Complete / incomplete / late / dropped counters of the grouper.
    frames_received : int
        Frames the source delivered.
    frames_overflowed : int
        Frames discarded because the frame queue was full (dispatcher too slow).
    subscriber_overflows : tuple[int, ...]
        Per subscriber queue, sets it missed because it was full.
    sets_per_second : float
        Emitted sets per second over the last second or so.
    missing_cameras : tuple[str, ...]
        Cameras currently considered lost (missed ``lost_after`` sets in a row).
    last_error : str
        The last error reported by a thread, "" when none.
    """

    state: SessionState
    grouping: GroupingStats
    frames_received: int
    frames_overflowed: int
    subscriber_overflows: tuple[int, ...]
    sets_per_second: float
    missing_cameras: tuple[str, ...]
    last_error: str


class SetQueue:
    """A bounded queue of every :class:`FrameSet`, fed by the session (one consumer thread).

    ``None`` is put after the last set when the session stops.
    """

    def __init__(self, maxsize: int) -> None:
        self.queue: queue.Queue[FrameSet | None] = queue.Queue(maxsize)
        self.overflows = 0

    def get(self, timeout: float | None = None) -> FrameSet | None:
        """The next set, or None at the end of the stream; raises ``queue.Empty`` on timeout."""
        return self.queue.get(timeout=timeout)

    def _put(self, item: FrameSet | None) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            if item is None:
                # The end marker must arrive: make room by discarding the oldest set.
                self.queue.get_nowait()
                self.overflows += 1
                self.queue.put_nowait(None)
            else:
                self.overflows += 1


class CaptureSession:
    """Runs a :class:`FrameSource`, groups its frames and distributes the sets.

    Parameters
    ----------
    source : FrameSource
        Opened and started by :meth:`start`, stopped by :meth:`stop`.
    mode : GroupingMode
        Counter/trigger-id grouping (triggered cameras, replays) or timestamp (PTP free run).
    frame_queue_size : int
        Bound of the frame queue between the grab thread and the dispatcher.
    set_timeout_s : float or None
        How long a set waits for missing views; default 3 frame periods, at least 0.1 s.
    lost_after : int
        A camera missing from this many consecutive sets raises ``camera_lost``.
    """

    state_changed = Signal(object)
    """(SessionState) after every transition."""
    set_ready = Signal(object)
    """(FrameSet) every set, on the dispatcher thread: connect only cheap slots."""
    error = Signal(object)
    """(BaseException) from the source's or the dispatcher's thread."""
    camera_lost = Signal(int, str)
    """(camera index, name) when a camera stops delivering."""
    camera_back = Signal(int, str)
    """(camera index, name) when a lost camera delivers again."""

    def __init__(
        self,
        source: FrameSource,
        *,
        mode: GroupingMode = GroupingMode.COUNTER,
        frame_queue_size: int = 1024,
        set_timeout_s: float | None = None,
        lost_after: int = 3,
    ) -> None:
        self.source = source
        self.rig = source.rig
        self.mode = mode
        fps = source.nominal_fps
        period_ns = int(1e9 / fps) if fps > 0 else 50_000_000
        timeout = (
            set_timeout_s if set_timeout_s is not None else max(0.1, 3.0 / fps if fps else 0.2)
        )
        self._grouper_args = {
            "mode": mode,
            "timeout_ns": int(timeout * 1e9),
            "frame_period_ns": period_ns,
        }
        self._frame_queue_size = frame_queue_size
        self._lost_after = lost_after
        self._lock = threading.Lock()
        self._state = SessionState.IDLE
        self._frames: queue.Queue[Frame] = queue.Queue(frame_queue_size)
        self._subscribers: list[SetQueue] = []
        self._latest: FrameSet | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._grouper = FrameGrouper(self.rig, **self._grouper_args)
        self._received = self._overflowed = 0
        self._miss_run = [0] * len(self.rig)
        self._lost = [False] * len(self.rig)
        self._rate_window: list[int] = []
        self._last_error = ""
        self._source_done = threading.Event()

    # ----------------------------------------------------------------- state

    @property
    def state(self) -> SessionState:
        """The current state."""
        with self._lock:
            return self._state

    def _set_state(self, state: SessionState) -> None:
        with self._lock:
            self._state = state
        log.info("capture session: %s", state.value)
        self.state_changed.emit(state)

    def status(self) -> SessionStatus:
        """A consistent snapshot of the counters (any thread)."""
        with self._lock:
            now = time.monotonic_ns()
            recent = [t for t in self._rate_window if now - t < 2_000_000_000]
            rate = 0.0
            if len(recent) >= 2:
                rate = (len(recent) - 1) / ((recent[-1] - recent[0]) / 1e9 or 1.0)
            return SessionStatus(
                self._state,
                self._grouper.stats,
                self._received,
                self._overflowed,
                tuple(s.overflows for s in self._subscribers),
                rate,
                tuple(self.rig.names[i] for i, lost in enumerate(self._lost) if lost),
                self._last_error,
            )

    def latest(self) -> FrameSet | None:
        """The newest set (the display's and live inference's slot), None before the first."""
        with self._lock:
            return self._latest

    def subscribe(self, maxsize: int = 4096) -> SetQueue:
        """A new queue receiving every set from now on (the recorder's input)."""
        q = SetQueue(maxsize)
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: SetQueue) -> None:
        """Stop feeding ``q`` and put its end marker."""
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)
        q._put(None)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """IDLE → STREAMING: start the dispatcher and the source (raises CaptureError)."""
        if self.state is not SessionState.IDLE:
            raise CaptureError(f"cannot start a session that is {self.state.value}")
        self._halt.clear()
        self._source_done.clear()
        self._thread = threading.Thread(target=self._dispatch, name="capture-dispatch", daemon=True)
        self._thread.start()
        try:
            self.source.start(self._on_frame, self._on_error)
        except BaseException:
            self._halt.set()
            self._thread.join()
            self._thread = None
            raise
        self._set_state(SessionState.STREAMING)

    def begin_recording(self) -> None:
        """STREAMING → RECORDING (the recorder subscribes itself; this marks the state)."""
        if self.state is not SessionState.STREAMING:
            raise CaptureError(f"cannot record while {self.state.value}")
        self._set_state(SessionState.RECORDING)

    def end_recording(self) -> None:
        """RECORDING → STREAMING."""
        if self.state is SessionState.RECORDING:
            self._set_state(SessionState.STREAMING)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until a finite source (replay) is done and its sets dispatched."""
        return self._source_done.wait(timeout)

    def stop(self) -> None:
        """→ STOPPING → IDLE: stop the source, dispatch what is left, end subscribers (≤ 2 s)."""
        if self.state in (SessionState.IDLE, SessionState.STOPPING):
            return
        self._set_state(SessionState.STOPPING)
        t0 = time.monotonic()
        self.source.stop()
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, STOP_TIMEOUT_S - (time.monotonic() - t0)))
            if self._thread.is_alive():
                log.error("capture dispatcher did not stop in time")
            self._thread = None
        with self._lock:
            subs = list(self._subscribers)
            self._subscribers.clear()
        for q in subs:
            q._put(None)
        log.info("capture session stopped in %.3f s", time.monotonic() - t0)
        self._set_state(SessionState.IDLE)

    # ----------------------------------------------------------------- threads

    def _on_frame(self, frame: Frame) -> None:
        """Source thread: never blocks."""
        try:
            self._frames.put_nowait(frame)
            self._received += 1
        except queue.Full:
            self._overflowed += 1

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {exc}"
        self.error.emit(exc)

    def _dispatch(self) -> None:
        try:
            while True:
                try:
                    frame = self._frames.get(timeout=0.01)
                except queue.Empty:
                    frame = None
                now = time.monotonic_ns()
                with self._lock:
                    sets = self._grouper.add(frame, now) if frame is not None else []
                    sets += self._grouper.poll(now)
                for fs in sets:
                    self._deliver(fs)
                if frame is None and self.source.finished and self._frames.empty():
                    with self._lock:
                        rest = self._grouper.flush()
                    for fs in rest:
                        self._deliver(fs)
                    self._source_done.set()
                if self._halt.is_set() and self._frames.empty():
                    break
            with self._lock:  # sets still waiting for views when stop() came
                rest = self._grouper.flush(cut_off=True)
            for fs in rest:
                self._deliver(fs)
        except Exception as exc:  # reported as an event, never a silent thread death
            log.exception("capture dispatcher failed")
            self._on_error(exc)
        finally:
            self._source_done.set()

    def _deliver(self, fs: FrameSet) -> None:
        with self._lock:
            self._latest = fs
            subs = list(self._subscribers)
            self._rate_window.append(time.monotonic_ns())
            del self._rate_window[:-64]
        for q in subs:
            q._put(fs)
        for i, f in enumerate(fs.frames):
            name = self.rig.names[i]
            if f is None:
                self._miss_run[i] += 1
                if self._miss_run[i] == self._lost_after and not self._lost[i]:
                    self._lost[i] = True
                    log.warning("camera %s stopped delivering", name)
                    self.camera_lost.emit(i, name)
            else:
                self._miss_run[i] = 0
                if self._lost[i]:
                    self._lost[i] = False
                    log.warning("camera %s delivers again", name)
                    self.camera_back.emit(i, name)
        self.set_ready.emit(fs)
