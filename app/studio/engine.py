"""The studio's engine: capture session, recorder, replay, inference and export (no Qt).

Threads: every slow control step (building a source, which renders the emulated performer;
opening cameras; loading the model; stopping threads) runs on one ``studio-control`` thread
in submission order, so the GUI thread only submits and polls. The capture session, the
recorder, the take player and the inference workers own their threads; their callbacks land
in :attr:`StudioEngine.on_error` / :attr:`StudioEngine.on_event`, called on those threads (the
main window bridges them to Qt with queued connections). The GUI reads :meth:`latest_frameset`,
:meth:`latest_result` and :meth:`status` on its timers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.studio.config import StudioConfig
from app.studio.player import TakePlayer
from app.studio.status import Activity, EngineStatus
from capture.camera import Rig
from capture.errors import CaptureError, ConfigError, StudioError
from capture.frames import FrameSet

log = logging.getLogger(__name__)

RESULT_CACHE = 4096
"""Live results kept (by session sequence) to give a new take its meshes."""


ErrorCallback = Callable[[str, BaseException], None]
EventCallback = Callable[[str, Any], None]


class StudioEngine:
    """Owns everything that runs behind the studio window.

    Parameters
    ----------
    config : StudioConfig
    on_error : callable
        ``(where, exception)`` for any error of any worker (called on that worker's thread).
    on_event : callable, optional
        ``(name, value)`` for ``"model"`` (LoadedModel), ``"rig"`` (Rig), ``"activity"``
        (Activity), ``"recorded"`` (Path of the finished take), ``"replay"`` (TakePlayer).
    worker_factory : callable, optional
        ``(loaded, rig, mode, on_result, on_error) -> worker`` (tests inject a fake);
        default :class:`inference.pipeline.InferenceWorker`.
    model_loader : callable, optional
        ``(config) -> LoadedModel``; default :func:`inference.pipeline.load_pipeline_model`.
    """

    def __init__(
        self,
        config: StudioConfig,
        on_error: ErrorCallback,
        on_event: EventCallback | None = None,
        worker_factory: Callable[..., Any] | None = None,
        model_loader: Callable[[StudioConfig], Any] | None = None,
    ) -> None:
        self.config = config
        self.on_error = on_error
        self.on_event = on_event or (lambda name, value: None)
        self._worker_factory = worker_factory or _default_worker
        self._model_loader = model_loader or _default_loader
        self._control = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="studio-control"
        )
        self._lock = threading.Lock()
        self._activity = Activity.IDLE
        self.loaded: Any = None
        self.rig: Rig | None = None
        self._session: Any = None
        self._source: Any = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._recorder: Any = None
        self._take_path: Path | None = None
        self._player: TakePlayer | None = None
        self._worker: Any = None
        self._results: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._keys: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._take_results: dict[int, np.ndarray] = {}
        self._references: list[np.ndarray] | None = None
        self._reference_count = 0
        self._export_workers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._replaying = False
        self._adopted_for: Path | None = None
        self._shutdown = False
        self.last_take: Path | None = None

    # ----------------------------------------------------------------- snapshots (any thread)

    @property
    def activity(self) -> Activity:
        """What the engine is doing now."""
        with self._lock:
            return self._activity

    @property
    def player(self) -> TakePlayer | None:
        """The take player while replaying."""
        with self._lock:
            return self._player

    def _set_activity(self, activity: Activity) -> None:
        with self._lock:
            self._activity = activity
        self.on_event("activity", activity)

    def latest_frameset(self) -> FrameSet | None:
        """The newest frame set (live session or replay), None before the first."""
        with self._lock:
            session, player = self._session, self._player
        if player is not None:
            return player.latest()
        if session is not None:
            return session.latest()
        return None

    def latest_result(self) -> Any:
        """The newest :class:`~inference.pipeline.HeadResult`, None before the first."""
        with self._lock:
            worker = self._worker
        return None if worker is None else worker.latest()

    def reference_for(self, sequence: int) -> np.ndarray | None:
        """(N, 3) ground-truth vertices of the set ``sequence`` when the source knows them.

        The emulated rig plays the synthetic performer: set key ``k`` shows the performer at
        set ``k % count``. None for cameras and takes without a reference.
        """
        with self._lock:
            refs, key = self._references, self._keys.get(sequence)
        if refs is None or key is None:
            return None
        return refs[key % len(refs)]

    def take_mesh(self, position: int) -> np.ndarray | None:
        """Vertices reconstructed for position ``position`` of the current take, or None."""
        with self._lock:
            return self._take_results.get(position)

    def take_mesh_count(self) -> int:
        """How many positions of the current take have a mesh."""
        with self._lock:
            return len(self._take_results)

    def _parts(self) -> tuple:
        """(session, worker, player, recorder); call with the lock held."""
        return self._session, self._worker, self._player, self._recorder

    def status(self) -> EngineStatus:
        """A consistent-enough snapshot of every counter (any thread)."""
        with self._lock:
            session, worker, player, recorder = self._parts()
            activity, take = self._activity, self._take_path
        fps = 0.0
        complete = incomplete = 0
        missing: tuple[int, ...] = ()
        lost: tuple[str, ...] = ()
        if session is not None:
            st = session.status()
            fps = st.sets_per_second
            complete, incomplete = st.grouping.complete, st.grouping.incomplete
            missing, lost = st.grouping.missing_views, st.missing_cameras
        elif player is not None:
            ps = player.status()
            fps = player.reader.fps * ps.speed if ps.playing else 0.0
            complete, incomplete = ps.shown, 0
        fs = self.latest_frameset()
        spread = fs.spread_ns / 1e6 if fs is not None else float("nan")
        ws = worker.status() if worker is not None else None
        rec_sets = recorder.status().sets_written if recorder is not None else 0
        loaded = self.loaded
        return EngineStatus(
            activity,
            self.rig.name if self.rig is not None else "",
            loaded.label if loaded is not None else "",
            bool(loaded.trained) if loaded is not None else True,
            str(loaded.device) if loaded is not None else self.config.device,
            fps,
            complete,
            incomplete,
            tuple(missing),
            tuple(lost),
            spread,
            ws.fps if ws is not None else 0.0,
            ws.processed if ws is not None else 0,
            ws.skipped if ws is not None else 0,
            ws.errors if ws is not None else 0,
            rec_sets,
            str(take) if take is not None else "",
        )

    # ----------------------------------------------------------------- control (GUI thread)

    def _submit(self, what: str, fn: Callable[[], Any]) -> concurrent.futures.Future:
        def guarded() -> Any:
            try:
                return fn()
            except StudioError as exc:  # a clear message is enough
                if self._shutdown:  # the window closed while this was running: expected
                    log.info("%s stopped: the studio closed", what)
                    raise
                log.error("%s failed: %s", what, exc)
                self.on_error(what, exc)
                raise
            except Exception as exc:  # every control error reaches the user
                log.exception("%s failed", what)
                self.on_error(what, exc)
                raise

        if self._shutdown:
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_exception(CaptureError("the studio is shutting down"))
            return fut
        return self._control.submit(guarded)

    def load_model(self) -> concurrent.futures.Future:
        """Load the configured model (once; later calls reuse it)."""
        return self._submit("loading the model", self._load_model)

    def start_live(self) -> concurrent.futures.Future:
        """Build the source, start the session and live inference (stops a replay first)."""
        return self._submit("starting live capture", self._start_live)

    def start_recording(self, folder: str | Path | None = None) -> concurrent.futures.Future:
        """Record the live session into ``folder`` (default: a new folder in ``takes_dir``)."""
        return self._submit("starting a recording", lambda: self._start_recording(folder))

    def stop_recording(self) -> concurrent.futures.Future:
        """Finish the take; the session keeps streaming."""
        return self._submit("stopping the recording", self._stop_recording)

    def stop(self) -> concurrent.futures.Future:
        """Stop recording, live capture or replay (back to IDLE)."""
        return self._submit("stopping", self._stop_all)

    def open_take(self, path: str | Path) -> concurrent.futures.Future:
        """Stop live capture and replay the take at ``path`` (paused at its first set)."""
        return self._submit("opening the take", lambda: self._open_take(Path(path)))

    def reconfigure(
        self, config: StudioConfig, reload_model: bool = False
    ) -> concurrent.futures.Future:
        """Stop everything and use ``config`` from now on (``reload_model``: load it again)."""

        def apply() -> None:
            self._stop_all()
            self.config = config
            if reload_model:
                self.loaded = None

        return self._submit("applying settings", apply)

    def reconstruct_take_position(self, reader: Any, position: int) -> np.ndarray:
        """Run the model on one set of a take on the calling thread (the export thread)."""
        from app.studio.player import frameset_from_take

        loaded = self.loaded
        if loaded is None:
            raise ConfigError("no model loaded yet")
        images, errors = reader.read_set(position)
        for err in errors:
            self.on_error("export", err)
        fs = frameset_from_take(reader, position, images)
        worker = self._export_workers.get(reader)
        if worker is None:  # one per reader: building the rig tensors is not free
            worker = self._worker_factory(loaded, reader.rig, "offline", None, None)
            self._export_workers[reader] = worker
        result = worker.reconstruct(fs)
        with self._lock:
            self._take_results[position] = result.vertices
        return result.vertices

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Stop everything within ``timeout`` seconds; True when every thread ended."""
        if self._shutdown:
            return True
        t_end = time.monotonic() + timeout
        fut = self._submit("shutting down", self._stop_all)
        self._shutdown = True
        try:
            fut.result(timeout=max(0.1, t_end - time.monotonic()))
        except concurrent.futures.TimeoutError:
            log.error("the studio did not stop within %.1f s", timeout)
        except Exception:  # already reported through on_error
            pass
        self._control.shutdown(wait=False, cancel_futures=True)
        for t in self._control._threads:  # the executor keeps them; join the idle one
            t.join(max(0.0, t_end - time.monotonic()))
        return fut.done()

    # ----------------------------------------------------------------- control thread

    def _load_model(self) -> Any:
        if self.loaded is None:
            t0 = time.monotonic()
            self.loaded = self._model_loader(self.config)
            log.info("model %s loaded in %.1f s", self.loaded.label, time.monotonic() - t0)
            self.on_event("model", self.loaded)
        return self.loaded

    def _start_worker(self, rig: Rig) -> Any:
        loaded = self._load_model()
        worker = self._worker_factory(
            loaded, rig, "live", self._on_result, lambda exc: self.on_error("inference", exc)
        )
        worker.start()
        with self._lock:
            self._worker = worker
        return worker

    def _start_live(self) -> None:
        self._stop_all()
        with self._lock:
            self._replaying = False
            self._take_path = None
        self._set_activity(Activity.STARTING)
        try:
            source = self._build_source()
            if self._shutdown:  # the window closed while the source was being built
                raise CaptureError("the studio is shutting down")
            self.rig = source.rig
            self.on_event("rig", source.rig)
            from capture.grouping import GroupingMode
            from capture.session import CaptureSession

            session = CaptureSession(source, mode=GroupingMode.COUNTER)
            session.error.connect(lambda exc: self.on_error("capture", exc))
            session.set_ready.connect(self._on_set)
            with self._lock:
                self._session, self._source = session, source
            session.start()
            worker = self._start_worker(source.rig)
            worker.attach(session)
        except BaseException:
            self._stop_all()
            raise
        self._set_activity(Activity.LIVE)

    def _build_source(self) -> Any:
        from app.studio.live_sources import build_live_source

        self._workdir = tempfile.TemporaryDirectory(prefix="tempeh-studio-")
        source, refs = build_live_source(self.config, Path(self._workdir.name))
        with self._lock:
            self._references = refs
        return source

    def _on_set(self, fs: FrameSet) -> None:
        """Dispatcher thread: remember each set's key (for the reference). Cheap."""
        with self._lock:
            self._keys[fs.sequence] = fs.key
            while len(self._keys) > RESULT_CACHE:
                self._keys.popitem(last=False)

    def _on_result(self, result: Any) -> None:
        """Worker thread: keep the result for takes and replay."""
        with self._lock:
            if self._replaying:
                self._take_results[result.sequence] = result.vertices
            else:
                self._results[result.sequence] = result.vertices
                while len(self._results) > RESULT_CACHE:
                    self._results.popitem(last=False)

    def _start_recording(self, folder: str | Path | None) -> Path:
        from app.studio.live_sources import performer_config
        from capture.recorder import TakeRecorder

        with self._lock:
            session = self._session
        if session is None or self.activity is not Activity.LIVE:
            raise CaptureError("start live capture before recording")
        if folder is None:
            root = Path(self.config.takes_dir or Path.home() / "tempeh-takes")
            folder = root / datetime.now().strftime("take-%Y%m%d-%H%M%S-%f")
        cfg = self.config
        session_config: dict[str, Any] = {
            "source": cfg.source,
            "rig": cfg.rig,
            "size": cfg.size,
            "fps": cfg.fps,
            "codec": cfg.codec,
            "studio": True,
        }
        performer = performer_config(cfg, self._references)
        if performer is not None:
            session_config["performer"] = performer
        recorder = TakeRecorder(folder, codec=cfg.codec, session_config=session_config)
        recorder.error.connect(lambda exc: self.on_error("recorder", exc))
        recorder.start(session)
        with self._lock:
            self._recorder, self._take_path = recorder, Path(folder)
        self._set_activity(Activity.RECORDING)
        log.info("recording to %s", folder)
        return Path(folder)

    def _stop_recording(self) -> Path | None:
        with self._lock:
            recorder, path = self._recorder, self._take_path
        if recorder is None:
            return None
        status = recorder.stop()
        with self._lock:
            self._recorder = None
        if self.activity is Activity.RECORDING:
            self._set_activity(Activity.LIVE)
        self._adopt_live_results(path)
        self.last_take = path
        log.info("recorded %d sets to %s", status.sets_written, path)
        self.on_event("recorded", path)
        return path

    def _adopt_live_results(self, path: Path | None) -> None:
        """Give the new take the live meshes of its sets (matched by session sequence)."""
        from capture.take import TakeReader

        if path is None or not path.exists():
            return
        try:
            records = TakeReader(path).records
        except Exception as exc:  # the take may be empty; reported, not fatal
            self.on_error("reading the new take", exc)
            return
        with self._lock:
            self._take_results = {
                pos: self._results[r.sequence]
                for pos, r in enumerate(records)
                if r.sequence in self._results
            }
            self._adopted_for = path

    def _open_take(self, path: Path) -> TakePlayer:
        from app.studio.live_sources import take_references
        from capture.take import TakeReader

        keep = self._adopted_for == path
        self._stop_all()
        reader = TakeReader(path)
        self.rig = reader.rig
        self.on_event("rig", reader.rig)
        refs = take_references(reader)
        with self._lock:
            self._references = refs
            self._keys.clear()
            if not keep:
                self._take_results = {}
            self._take_path = path
            self._replaying = True
        worker = self._start_worker(reader.rig)

        def on_set(fs: FrameSet) -> None:
            with self._lock:
                self._keys[fs.sequence] = fs.key
            worker.submit(fs)

        player = TakePlayer(reader, on_set, lambda exc: self.on_error("replay", exc))
        with self._lock:
            self._player = player
        self._set_activity(Activity.REPLAY)
        self.on_event("replay", player)
        return player

    def _stop_all(self) -> None:
        with self._lock:
            session, worker, player, recorder = self._parts()
            busy = any(x is not None for x in (session, worker, player, recorder))
        if not busy:
            if self.activity is not Activity.IDLE:
                self._set_activity(Activity.IDLE)
            return
        self._set_activity(Activity.STOPPING)
        t0 = time.monotonic()
        if recorder is not None:
            self._stop_recording()
        if player is not None:
            player.stop(1.0)
        if worker is not None:
            worker.stop(timeout=1.0)
        if session is not None:
            session.stop()
        with self._lock:
            self._session = self._source = self._worker = self._player = None
            if session is not None:
                self._references = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        log.info("studio stopped in %.2f s", time.monotonic() - t0)
        self._set_activity(Activity.IDLE)


def _default_loader(config: StudioConfig) -> Any:
    from inference.pipeline import load_pipeline_model

    return load_pipeline_model(config.model or None, config.device, config.flame or None)


def _default_worker(loaded: Any, rig: Rig, mode: str, on_result: Any, on_error: Any) -> Any:
    from inference.pipeline import InferenceWorker

    return InferenceWorker(loaded, rig, mode=mode, on_result=on_result, on_error=on_error)
