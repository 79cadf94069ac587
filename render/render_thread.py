"""A worker thread that owns an EGL context and renders multi-view sets for other threads.

Threads: the context and every GL object live on the worker thread only (created, used and
released there); callers on any thread submit requests through a bounded queue and get
:class:`concurrent.futures.Future` results.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from capture.camera import Camera, Rig
from capture.errors import RenderError
from render.multiview import DEFAULT_MARGIN, MultiViewImages, MultiViewRenderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Request:
    args: tuple
    kwargs: dict
    future: Future


_STOP = object()


class RenderThread:
    """A worker thread that owns an EGL context and a :class:`MultiViewRenderer`.

    Parameters
    ----------
    rig, downscale, channels, margin, cull_back_faces
        As :class:`MultiViewRenderer`.
    max_pending : int
        Bound of the request queue; :meth:`submit` blocks while it is full.

    Notes
    -----
    Thread affinity: the context is created, used and released on the worker thread only;
    :meth:`submit`, :meth:`render` and :meth:`close` may be called from any thread. Errors
    raised while rendering (or while creating the context) are set on the returned futures.
    """

    def __init__(
        self,
        rig: Rig,
        downscale: float = 1,
        channels: int = 1,
        margin: int = DEFAULT_MARGIN,
        cull_back_faces: bool = True,
        max_pending: int = 4,
    ) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._ready: Future = Future()
        self._thread = threading.Thread(
            target=self._run,
            args=(rig, downscale, channels, margin, cull_back_faces),
            name="render",
            daemon=True,
        )
        self._closed = False
        self._thread.start()

    def _run(self, rig: Rig, downscale: float, channels: int, margin: int, cull: bool) -> None:
        try:
            renderer = MultiViewRenderer(rig, downscale, channels, margin, cull)
        except Exception as exc:  # reported to every caller through the futures
            log.exception("render thread could not start")
            self._ready.set_exception(exc)
            self._fail_pending(exc)
            return
        self._ready.set_result(renderer.cameras)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                if not item.future.set_running_or_notify_cancel():
                    continue
                try:
                    item.future.set_result(renderer.render(*item.args, **item.kwargs))
                except Exception as exc:  # the caller gets it from its future
                    item.future.set_exception(exc)
        finally:
            renderer.release()

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(exc)

    @property
    def cameras(self) -> tuple[Camera, ...]:
        """The output cameras; waits for the worker to start (raises its start-up error)."""
        return self._ready.result()

    def submit(self, *args: object, **kwargs: object) -> Future:
        """Queue a :meth:`MultiViewRenderer.render` call; returns a future of its result.

        Arrays are used by the worker later: do not modify them until the future is done.
        """
        if self._closed:
            raise RenderError("render thread is closed")
        if self._ready.done() and self._ready.exception() is not None:
            raise RenderError("render thread failed to start") from self._ready.exception()
        fut: Future = Future()
        self._queue.put(_Request(args, kwargs, fut))
        if self._ready.done() and self._ready.exception() is not None:
            self._fail_pending(self._ready.exception())  # the worker died before taking it
        return fut

    def render(self, *args: object, **kwargs: object) -> MultiViewImages:
        """Synchronous :meth:`submit`: wait for and return the result (or raise its error)."""
        return self.submit(*args, **kwargs).result()

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish queued requests, release the GL objects on the worker, join the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("render thread did not stop within %s s", timeout)

    def __enter__(self) -> RenderThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
