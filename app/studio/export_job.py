"""Background export of a take's meshes to PLY / OBJ / NPZ / USD, with progress and cancel.

Threads: one ``studio-export`` thread per job; callbacks fire on it (the dialog bridges them
to Qt with queued connections). :meth:`ExportJob.cancel` may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.errors import ConfigError
from inference.mesh_sequence import SequenceWriter, check_formats

log = logging.getLogger(__name__)

MeshLookup = Callable[[int], "np.ndarray | None"]
"""Vertices (N, 3) mm of a take position, or None when none is available."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export.

    Attributes
    ----------
    out_dir : Path
        Destination folder (created).
    formats : tuple[str, ...]
        Any of :data:`inference.mesh_sequence.FORMATS`.
    first, last : int
        Inclusive range of take positions (set indices).
    stem : str
        File name stem (``<stem>.000012.ply``, ``<stem>.usd``).
    reconstruct_missing : bool
        Run the model on positions that have no mesh yet (slow on a CPU); otherwise they are
        left out of the sequence.
    """

    out_dir: Path
    formats: tuple[str, ...]
    first: int
    last: int
    stem: str = "frame"
    reconstruct_missing: bool = True

    def __post_init__(self) -> None:
        check_formats(self.formats)
        if self.first < 0 or self.last < self.first:
            raise ConfigError(
                f"frame range must satisfy 0 <= first <= last, got {self.first}..{self.last}",
                field="range",
            )


@dataclass(frozen=True)
class ExportOutcome:
    """How a job ended: ``paths`` written, frames exported and skipped, cancelled or not."""

    paths: tuple[Path, ...]
    exported: int
    skipped: int
    cancelled: bool


class ExportJob:
    """Writes the meshes of positions ``first..last`` of a take on a background thread.

    Parameters
    ----------
    request : ExportRequest
    faces : np.ndarray
        (F, 3) triangles of the template.
    fps : float
        Rate written into the sequence (the take's).
    timestamps_s : sequence of float
        Per take position, seconds since the first set.
    frame_ids : sequence of int
        Per take position, the capture sequence number (strictly increasing).
    cached : callable
        Position → vertices already reconstructed (live or replay), or None.
    reconstruct : callable, optional
        Position → vertices, by running the model (called on the export thread).
    on_progress : callable
        ``(done, total)`` after every position.
    on_done : callable
        :class:`ExportOutcome` at the end (also after a cancel).
    on_error : callable
        The exception that ended the job.
    source : str
        Recorded in the sequence (the take path).
    """

    def __init__(
        self,
        request: ExportRequest,
        faces: np.ndarray,
        fps: float,
        timestamps_s: Sequence[float],
        frame_ids: Sequence[int],
        cached: MeshLookup,
        reconstruct: MeshLookup | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        on_done: Callable[[ExportOutcome], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        source: str = "",
    ) -> None:
        if request.last >= len(timestamps_s):
            raise ConfigError(
                f"frame range ends at {request.last} but the take has {len(timestamps_s)} sets",
                field="range",
            )
        self.request = request
        self.faces, self.fps = np.asarray(faces), float(fps) if fps > 0 else 30.0
        self.timestamps_s, self.frame_ids = list(timestamps_s), list(frame_ids)
        self.cached, self.reconstruct = cached, reconstruct
        self.on_progress, self.on_done, self.on_error = on_progress, on_done, on_error
        self.source = source
        self._cancel = threading.Event()
        self.outcome: ExportOutcome | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="studio-export", daemon=True)

    def start(self) -> None:
        """Start the export thread."""
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the current frame; NPZ/USD are not written for a cancelled job."""
        self._cancel.set()

    @property
    def running(self) -> bool:
        """Whether the thread is still working."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; False if it is still running after ``timeout``."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        req = self.request
        total = req.last - req.first + 1
        exported = skipped = 0
        writer: SequenceWriter | None = None
        try:
            writer = SequenceWriter(
                req.out_dir, self.faces, self.fps, req.formats, stem=req.stem, source=self.source
            )
            for k, pos in enumerate(range(req.first, req.last + 1)):
                if self._cancel.is_set():
                    break
                vertices = self.cached(pos)
                if vertices is None and req.reconstruct_missing and self.reconstruct is not None:
                    vertices = self.reconstruct(pos)
                if vertices is None:
                    skipped += 1
                elif not writer.exists(self.frame_ids[pos]):
                    writer.append(vertices, self.timestamps_s[pos], self.frame_ids[pos])
                    exported += 1
                if self.on_progress is not None:
                    self.on_progress(k + 1, total)
            cancelled = self._cancel.is_set()
            paths: list[Path] = []
            if not cancelled:
                paths = writer.close()
            outcome = ExportOutcome(tuple(paths), exported, skipped, cancelled)
            self.outcome = outcome
            log.info(
                "export to %s: %d frames, %d without a mesh%s",
                req.out_dir,
                exported,
                skipped,
                " (cancelled)" if cancelled else "",
            )
            if self.on_done is not None:
                self.on_done(outcome)
        except Exception as exc:  # reported to the dialog, never lost in the thread
            log.exception("export failed")
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)
