"""The take recorder: writes every frame set of a session into a take folder.

Runs on its own thread (``take-recorder``), reading a :class:`~capture.session.SetQueue` that
receives every set: inference and the display read the session's latest-set slot instead, so
they can never starve or block recording. See :mod:`capture.take` for the folder layout and
the durability policy (flush per set, fsync every ``fsync_every`` sets).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any

from psygnal import Signal

from capture.atomic import write_text_atomically
from capture.errors import TakeError
from capture.frames import FrameSet
from capture.rig_json import write_rig_json
from capture.session import CaptureSession, SetQueue
from capture.take import (
    CODECS,
    RIG_FILE,
    SESSION_FILE,
    TAKE_FORMAT,
    TAKE_VERSION,
    TIMESTAMPS_FILE,
    VIDEO_DIR,
    StreamWriter,
    video_path,
)

log = logging.getLogger(__name__)


class RecorderState(enum.Enum):
    """Recorder life cycle."""

    IDLE = "idle"
    RECORDING = "recording"
    STOPPING = "stopping"
    CLOSED = "closed"


@dataclass(frozen=True)
class RecorderStatus:
    """Snapshot: state, sets and frames written, bytes of video, queue overflows, last error."""

    state: RecorderState
    sets_written: int
    frames_written: int
    video_bytes: int
    overflows: int
    last_error: str


class TakeRecorder:
    """Records the sets of a :class:`CaptureSession` into ``folder``.

    Parameters
    ----------
    folder : path
        The take folder; must not exist or be empty.
    codec : str
        ``"h264"`` (default), ``"ffv1"`` (lossless) or ``"png"``.
    fsync_every : int
        fsync the files every this many sets (they are flushed after every set).
    session_config : dict
        Extra JSON-serialisable configuration saved in ``session.json`` (source, rates...).
    queue_size : int
        Bound of the set queue; a recorder that falls this far behind loses sets (counted).
    """

    error = Signal(object)
    """(BaseException) raised on the recorder thread."""

    def __init__(
        self,
        folder: str | PathLike[str],
        *,
        codec: str = "h264",
        fsync_every: int = 20,
        session_config: dict[str, Any] | None = None,
        queue_size: int = 4096,
    ) -> None:
        if codec not in CODECS:
            raise TakeError(f"unknown codec {codec!r} (choose from {', '.join(CODECS)})")
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise TakeError(f"{self.folder}: take folder exists and is not empty")
        self.codec = codec
        self.fsync_every = max(1, int(fsync_every))
        self.session_config = dict(session_config or {})
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._state = RecorderState.IDLE
        self._thread: threading.Thread | None = None
        self._queue: SetQueue | None = None
        self._session: CaptureSession | None = None
        self._writers: list[StreamWriter | None] = []
        self._ts_file: Any = None
        self._sets = self._frames = 0
        self._last_error = ""

    def status(self) -> RecorderStatus:
        """A snapshot (any thread)."""
        with self._lock:
            return RecorderStatus(
                self._state,
                self._sets,
                self._frames,
                sum(w.offset for w in self._writers if w is not None),
                self._queue.overflows if self._queue else 0,
                self._last_error,
            )

    def start(self, session: CaptureSession) -> None:
        """Write ``rig.json`` and ``session.json``, subscribe to ``session`` and start writing."""
        if self._state is not RecorderState.IDLE:
            raise TakeError(f"recorder is {self._state.value}")
        rig = session.rig
        (self.folder / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
        write_rig_json(rig, self.folder / RIG_FILE)
        meta = {
            "format": TAKE_FORMAT,
            "version": TAKE_VERSION,
            "codec": self.codec,
            "fps": session.source.nominal_fps,
            "cameras": rig.names,
            "started_utc": datetime.now(UTC).isoformat(),
            "fsync_every": self.fsync_every,
            "grouping": session.mode.value,
            "config": self.session_config,
        }
        self._meta = meta
        self._ts_file = open(self.folder / TIMESTAMPS_FILE, "ab")  # noqa: SIM115
        self._writers = [None] * len(rig)
        self._session = session
        self._queue = session.subscribe(self.queue_size)
        session.begin_recording()
        with self._lock:
            self._state = RecorderState.RECORDING
        self._thread = threading.Thread(target=self._run, name="take-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> RecorderStatus:
        """Stop after writing every set already queued; close the files (idempotent).

        Waits as long as the backlog is being written; gives up (logging an error) only after
        ``timeout`` seconds without a single set written.
        """
        if self._state in (RecorderState.IDLE, RecorderState.CLOSED):
            return self.status()
        with self._lock:
            self._state = RecorderState.STOPPING
        if self._session is not None and self._queue is not None:
            self._session.unsubscribe(self._queue)
            self._session.end_recording()
        if self._thread is not None:
            written, still = self._sets, time.monotonic()
            while self._thread.is_alive() and time.monotonic() - still < timeout:
                self._thread.join(0.5)
                if self._sets != written:
                    written, still = self._sets, time.monotonic()
            if self._thread.is_alive():
                log.error("recorder thread wrote nothing for %.1f s; giving up", timeout)
            self._thread = None
        with self._lock:
            self._state = RecorderState.CLOSED
        return self.status()

    # ----------------------------------------------------------------- thread

    def _run(self) -> None:
        try:
            while True:
                try:
                    fs = self._queue.get(timeout=0.5)  # type: ignore[union-attr]
                except queue.Empty:
                    continue
                if fs is None:
                    break
                self._write_set(fs)
        except Exception as exc:  # reported as an event; the take stays valid up to here
            log.exception("recorder failed")
            with self._lock:
                self._last_error = f"{type(exc).__name__}: {exc}"
            self.error.emit(exc)
        finally:
            self._close_files()

    def _writer(self, index: int, fs: FrameSet) -> StreamWriter:
        w = self._writers[index]
        if w is None:
            cam = fs.rig.cameras[index]
            frame = fs.frames[index]
            color = frame is not None and frame.image.ndim == 3
            fps = self._session.source.nominal_fps if self._session else 20.0
            w = StreamWriter(
                video_path(self.folder, index, cam.name, self.codec),
                self.codec,
                cam.width,
                cam.height,
                color,
                fps=fps or 20.0,
            )
            self._writers[index] = w
            colors = self._meta.setdefault("color", [False] * len(fs.rig))
            colors[index] = color
            self._write_meta()
        return w

    def _write_meta(self) -> None:
        write_text_atomically(self.folder / SESSION_FILE, json.dumps(self._meta, indent=2))

    def _write_set(self, fs: FrameSet) -> None:
        if not (self.folder / SESSION_FILE).exists():
            self._write_meta()
        video: list[list[int] | None] = []
        for i, frame in enumerate(fs.frames):
            video.append(None if frame is None else self._writer(i, fs).write(frame.image))
        sync = (self._sets + 1) % self.fsync_every == 0
        for w in self._writers:
            if w is not None:
                w.flush(sync)
        line = {
            "seq": fs.sequence,
            "key": fs.key,
            "spread_ns": fs.spread_ns,
            "host_ns": [None if f is None else f.host_timestamp_ns for f in fs.frames],
            "device_ns": [None if f is None else f.device_timestamp_ns for f in fs.frames],
            "frame_id": [None if f is None else f.frame_id for f in fs.frames],
            "video": video,
            "written_ns": time.monotonic_ns(),
        }
        self._ts_file.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        self._ts_file.flush()
        if sync:
            os.fsync(self._ts_file.fileno())
        with self._lock:
            self._sets += 1
            self._frames += len(fs.frames) - len(fs.missing)

    def _close_files(self) -> None:
        for w in self._writers:
            if w is not None:
                w.close()
        if self._ts_file is not None:
            self._ts_file.flush()
            os.fsync(self._ts_file.fileno())
            self._ts_file.close()
            self._ts_file = None
        if (self.folder / VIDEO_DIR).exists() and not (self.folder / SESSION_FILE).exists():
            self._write_meta()
