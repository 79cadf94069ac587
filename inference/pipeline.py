"""The inference pipeline: a loaded model, the per-set result, and the worker thread.

Threads: :class:`InferenceWorker` owns the torch device and the model on its own thread
(``inference-worker``); callers on any thread :meth:`~InferenceWorker.submit` sets and read
:meth:`~InferenceWorker.latest` (the viewport does so on a timer). ``on_result`` and
``on_error`` are called on the worker thread: keep them short (``app`` bridges them to Qt with
queued connections). :meth:`~InferenceWorker.attach` adds a feeder thread
(``inference-feeder``) that moves a session's sets into the worker.

Modes: ``"live"`` keeps one pending set, the newest: a submit replaces a set that is still
waiting and counts it as skipped, and never blocks. ``"offline"`` processes every set in
order through a bounded queue; a submit blocks while it is full.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from capture.camera import Rig
from capture.errors import CaptureError, ConfigError
from capture.frames import FrameSet
from capture.session import CaptureSession, SetQueue
from inference.loaded_model import UNTRAINED_LABEL, LoadedModel, load_pipeline_model
from inference.precision import autocast_dtype, enable_mixed_precision
from inference.preprocess import MIN_VIEWS, FrameStacker, RigTensors
from inference.temporal_filter import OneEuroFilter

log = logging.getLogger(__name__)

__all__ = [
    "UNTRAINED_LABEL",
    "HeadResult",
    "InferenceWorker",
    "LoadedModel",
    "WorkerState",
    "WorkerStatus",
    "enable_mixed_precision",
    "load_pipeline_model",
]

MODES = ("live", "offline")
OFFLINE_QUEUE = 8
"""Sets an offline worker holds before :meth:`InferenceWorker.submit` blocks."""
RATE_WINDOW_S = 2.0


@dataclass(frozen=True)
class HeadResult:
    """The reconstruction of one frame set.

    Attributes
    ----------
    sequence : int
        The set's sequence number.
    vertices : np.ndarray
        (N, 3) float32 refined vertices, mm, rig frame (temporally filtered in live mode
        when the worker has a filter).
    coarse : np.ndarray
        (N, 3) float32 coarse-stage vertices, mm.
    timings_ms : dict of str to float
        ``"preprocess"`` (stacking, upload, resizing), ``"coarse"``, ``"refine"``, ``"total"``.
    latency_ms : float
        From the set's earliest host timestamp to the result being ready; nan if unknown.
    views_used : tuple of int
        Camera indices that took part.
    skipped_before : int
        Sets dropped (live mode) since the previous result.
    host_timestamp_ns : int
        The set's earliest host timestamp (monotonic ns; 0 if unknown).
    """

    sequence: int
    vertices: np.ndarray
    coarse: np.ndarray
    timings_ms: dict[str, float]
    latency_ms: float
    views_used: tuple[int, ...]
    skipped_before: int
    host_timestamp_ns: int


class WorkerState(enum.Enum):
    """Worker life cycle: IDLE → RUNNING → STOPPING → STOPPED (or FAILED)."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class WorkerStatus:
    """A snapshot of the worker (safe to read from any thread).

    Attributes
    ----------
    state : WorkerState
    processed, skipped, errors : int
        Sets reconstructed, sets dropped for a newer one (live), sets that failed.
    fps : float
        Results per second over the last couple of seconds.
    last_error : str or None
    """

    state: WorkerState
    processed: int
    skipped: int
    errors: int
    fps: float
    last_error: str | None


class InferenceWorker:
    """Thread that owns the torch device and the model.

    Mode ``"live"``: :meth:`submit` replaces the pending set with the newest (counting the
    replaced one as skipped) and never blocks the caller. Mode ``"offline"``: every set in
    order (bounded queue, :meth:`submit` blocks when full).

    Parameters
    ----------
    loaded : LoadedModel
    rig : Rig
        The cameras the sets come from, at their own resolution; refused with a
        :class:`~capture.errors.ConfigError` when the model cannot use it (fewer than two
        cameras, images smaller than a stage's resize factor).
    mode : {"live", "offline"}
    on_result : callable, optional
        Called with every :class:`HeadResult`, on the worker thread.
    on_error : callable, optional
        Called with every exception raised while processing a set, on the worker thread;
        the worker goes on with the next set.
    temporal_filter : float, optional
        Live mode only: smooth the displayed vertices with a One-Euro filter of this minimum
        cut-off frequency (Hz). Off by default.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast dtype of the networks on CUDA (``auto``: bfloat16 where supported); the CPU
        always runs float32.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        rig: Rig,
        mode: str = "live",
        on_result: Callable[[HeadResult], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        temporal_filter: float | None = None,
        precision: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"worker mode must be one of {MODES}, got {mode!r}", field="mode")
        if temporal_filter is not None and mode != "live":
            raise ConfigError("the temporal filter is for live display only", field="mode")
        self.loaded, self.rig, self.mode = loaded, rig, mode
        self.on_result, self.on_error = on_result, on_error
        self.device = loaded.device
        self._rig_tensors = RigTensors.build(rig, loaded.model.config, self.device)
        self._stack = FrameStacker(self._rig_tensors, self.device)
        self._filter = OneEuroFilter(temporal_filter) if temporal_filter else None
        self.precision = self._setup_device(precision)
        """What the networks run in: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        self._cond = threading.Condition()
        self._model_lock = threading.Lock()
        self._state = WorkerState.IDLE
        self._pending: collections.deque[FrameSet] = collections.deque()
        self._busy = False
        self._halt = False
        self._latest: HeadResult | None = None
        self._processed = self._skipped = self._errors = self._skipped_since = 0
        self._last_error: str | None = None
        self._done_times: collections.deque[float] = collections.deque(maxlen=256)
        self._thread: threading.Thread | None = None
        self._feeders: list[tuple[threading.Thread, CaptureSession, SetQueue]] = []

    def _setup_device(self, precision: str) -> str:
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"unknown precision {precision!r}", field="precision")
        if self.device.type != "cuda":
            return "fp32"
        torch.backends.cudnn.benchmark = True
        if precision == "fp32":
            return precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        enable_mixed_precision(self.loaded.model, autocast_dtype(precision))
        return precision

    # ----------------------------------------------------------------- status

    def status(self) -> WorkerStatus:
        """A consistent snapshot of the counters (any thread)."""
        with self._cond:
            now = time.monotonic()
            recent = [t for t in self._done_times if now - t < RATE_WINDOW_S]
            fps = 0.0
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
            return WorkerStatus(
                self._state,
                self._processed,
                self._skipped,
                self._errors,
                fps,
                self._last_error,
            )

    def latest(self) -> HeadResult | None:
        """The newest result, None before the first (any thread)."""
        with self._cond:
            return self._latest

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the worker thread (IDLE → RUNNING)."""
        with self._cond:
            if self._state is not WorkerState.IDLE:
                raise ConfigError(f"cannot start a worker that is {self._state.value}")
            self._state = WorkerState.RUNNING
        self._thread = threading.Thread(target=self._run, name="inference-worker", daemon=True)
        self._thread.start()

    def submit(self, fs: FrameSet) -> None:
        """Hand a set to the worker (any thread); see the class docstring for the modes.

        A set the session's stop cut off (:attr:`FrameSet.cut_off`) with fewer than
        :data:`MIN_VIEWS` views is let go with an info line: its views were not lost, the stop
        came before they arrived.
        """
        arrived = len(fs.frames) - len(fs.missing)
        if fs.cut_off and arrived < MIN_VIEWS:
            log.info(
                "set %d not reconstructed: the stop cut it off after %d of %d views",
                fs.sequence,
                arrived,
                len(fs.frames),
            )
            return
        with self._cond:
            if self._state is not WorkerState.RUNNING:
                raise ConfigError(f"the inference worker is {self._state.value}")
            if self.mode == "live":
                if self._pending:
                    self._pending.clear()
                    self._skipped += 1
                    self._skipped_since += 1
            else:
                while len(self._pending) >= OFFLINE_QUEUE and not self._halt:
                    self._cond.wait(0.1)
                if self._halt:
                    raise ConfigError("the inference worker is stopping")
            self._pending.append(fs)
            self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted set is processed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                if self._state is not WorkerState.RUNNING:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.1 if left is None else min(left, 0.1))
        return True

    def stop(self, timeout: float = 2.0) -> WorkerStatus:
        """Stop feeding, drop sets not yet started and join the thread (≤ ``timeout`` s).

        A set being reconstructed is finished first; if that takes longer than ``timeout``
        the call returns in STOPPING and the thread reaches STOPPED when it is done.
        """
        t_end = time.monotonic() + timeout
        with self._cond:
            if self._state is WorkerState.IDLE:
                self._state = WorkerState.STOPPED
            elif self._state is WorkerState.RUNNING:
                self._state = WorkerState.STOPPING
            self._halt = True
            dropped = len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        if dropped and self.mode == "offline":
            log.warning("inference worker stopped with %d sets not processed", dropped)
        for thread, session, q in self._feeders:
            session.unsubscribe(q)
            thread.join(max(0.0, t_end - time.monotonic()))
        self._feeders.clear()
        if self._thread is not None:
            self._thread.join(max(0.0, t_end - time.monotonic()))
            if self._thread.is_alive():
                log.warning("inference worker is still finishing a set after %.1f s", timeout)
        return self.status()

    def attach(self, session: CaptureSession) -> None:
        """Feed the worker with the sets of a :class:`~capture.session.CaptureSession`.

        A feeder thread reads a subscriber queue of the session and submits every set
        (live: the worker keeps the newest); it ends when the session stops or on
        :meth:`stop`.
        """
        q = session.subscribe(64 if self.mode == "live" else 4096)
        thread = threading.Thread(
            target=self._feed, args=(q,), name="inference-feeder", daemon=True
        )
        self._feeders.append((thread, session, q))
        thread.start()

    def _feed(self, q: SetQueue) -> None:
        while True:
            try:
                fs = q.get(timeout=0.2)
            except queue.Empty:
                if self._halt:
                    return
                continue
            if fs is None or self._halt:
                return
            try:
                self.submit(fs)
            except ConfigError:
                return

    # ----------------------------------------------------------------- work

    def reconstruct(self, fs: FrameSet) -> HeadResult:
        """Reconstruct ``fs`` on the calling thread, synchronously (tests, offline tools).

        Same code path as the thread (updates :meth:`latest` and the counters, no callbacks).
        Raises what the reconstruction raises (CaptureError for an unusable set).
        """
        try:
            result = self._process(fs, 0)
        except Exception as exc:
            self._record_error(exc)
            raise
        self._record_result(result)
        return result

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._halt:
                        self._cond.wait()
                    if self._halt:
                        break
                    fs = self._pending.popleft()
                    skipped, self._skipped_since = self._skipped_since, 0
                    self._busy = True
                    self._cond.notify_all()
                try:
                    result = self._process(fs, skipped)
                    self._record_result(result)
                    if self.on_result is not None:
                        self.on_result(result)
                except Exception as exc:  # reported, and the worker goes on
                    if isinstance(exc, CaptureError):  # bad input: the message says it all
                        log.error("set %d not reconstructed: %s", fs.sequence, exc)
                    else:
                        log.exception("inference failed on set %d", fs.sequence)
                    self._record_error(exc)
                    if self.on_error is not None:
                        self.on_error(exc)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
            final = WorkerState.STOPPED
        except Exception as exc:  # an error in on_error itself: the worker cannot go on
            log.exception("inference worker failed")
            self._record_error(exc)
            final = WorkerState.FAILED
        with self._cond:
            self._state = final
            self._busy = False
            self._cond.notify_all()

    def _record_result(self, result: HeadResult) -> None:
        with self._cond:
            self._latest = result
            self._processed += 1
            self._done_times.append(time.monotonic())

    def _record_error(self, exc: BaseException) -> None:
        with self._cond:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"

    def _process(self, fs: FrameSet, skipped_before: int) -> HeadResult:
        t0 = time.perf_counter()
        with self._model_lock:
            batch, views = self._stack(fs)
            t1 = time.perf_counter()
            with torch.inference_mode():
                out = self.loaded.model(batch)
            refined = out.refined[0].float().cpu().numpy()
            coarse = out.coarse[0].float().cpu().numpy()
        done_ns = time.monotonic_ns()
        total = (time.perf_counter() - t0) * 1e3
        timings = {
            "preprocess": (t1 - t0) * 1e3 + out.timings.get("prepare", 0.0),
            "coarse": out.timings.get("coarse", math.nan),
            "refine": out.timings.get("refine", math.nan),
            "total": total,
        }
        stamp = fs.host_timestamp_ns
        latency = (done_ns - stamp) / 1e6 if stamp > 0 else math.nan
        if self._filter is not None:
            t = (stamp or done_ns) / 1e9
            refined = self._filter(refined, t)
        return HeadResult(
            fs.sequence,
            refined.astype(np.float32, copy=False),
            coarse.astype(np.float32, copy=False),
            timings,
            latency,
            views,
            skipped_before,
            stamp,
        )
