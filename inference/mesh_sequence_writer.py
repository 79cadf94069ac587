"""The streaming :class:`SequenceWriter` (re-exported by :mod:`inference.mesh_sequence`)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from capture.errors import MeshIOError
from inference.mesh_io import read_mesh
from inference.mesh_sequence_formats import (
    FRAME_FORMATS,
    MeshSequence,
    append_frame_log,
    check_formats,
    frame_path,
    journal_path,
    load_npz,
    merge_sequences,
    read_frame_log,
    save_npz,
    start_frame_log,
    write_frame,
    write_usd,
)

log = logging.getLogger(__name__)


class SequenceWriter:
    """Stream frames to disk as they come; resumable after a crash.

    Per-frame PLY/OBJ files are written on :meth:`append` (each atomically) and logged in the
    ``<stem>.frames.jsonl`` sidecar, so a crash loses nothing already appended. NPZ/USD are
    written by :meth:`close`; until then the frames are checkpointed every ``flush_every``
    frames as ``out_dir/<stem>.checkpoint/part-NNNNNN.npz`` (each a valid NPZ of that slice,
    so total I/O stays linear in the take length; ``load_sequence`` reads the folder), and only
    the frames since the last checkpoint are held in memory. A new writer on the same folder
    and stem resumes: :meth:`exists` reports frames already on disk and :meth:`close` writes
    the complete sequence. :meth:`append` is thread-safe; the writer is a context manager
    whose exit closes it.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created).
    faces : np.ndarray
        (F, 3) int triangles shared by every frame.
    fps : float
        Frame rate, > 0.
    formats : sequence of str
        Any of :data:`FORMATS`.
    flush_every : int
        Checkpoint period in frames (>= 1), for NPZ/USD.
    """

    def __init__(
        self,
        out_dir: str | Path,
        faces: np.ndarray,
        fps: float,
        formats: Sequence[str],
        stem: str = "frame",
        source: str = "",
        flush_every: int = 50,
    ) -> None:
        self.formats = check_formats(formats)
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be (F, 3) integers, got {faces.dtype} {faces.shape}")
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if int(flush_every) < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if not stem or "/" in stem or os.sep in stem:
            raise ValueError(f"stem must be a plain file name, got {stem!r}")
        self.out_dir, self.stem, self.source = Path(out_dir), stem, source
        self.faces = faces.astype(np.int32)
        self.fps = float(fps)
        self.flush_every = int(flush_every)
        self._frame_formats = [f for f in self.formats if f in FRAME_FORMATS]
        self._whole = [f for f in self.formats if f not in FRAME_FORMATS]
        self._checkpoint_dir = self.out_dir / f"{stem}.checkpoint"
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[np.ndarray, float]] = {}
        self._logged: dict[int, float] = {}  # Per-frame files on disk, from the sidecar.
        self._checkpointed: set[int] = set()
        self._num_vertices: int | None = None
        self._parts = 0
        self._closed = False
        self._result: list[Path] = []
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MeshIOError(f"cannot create output folder ({exc})", path=self.out_dir) from exc
        self._resume()

    def _resume(self) -> None:
        journal = journal_path(self.out_dir, self.stem)
        if self._frame_formats and not start_frame_log(journal, self.fps, self.source):
            self._resume_frame_log(journal)
        if self._whole and self._checkpoint_dir.is_dir():
            for part in sorted(self._checkpoint_dir.glob("part-*.npz")):
                seq = load_npz(part)
                if not np.array_equal(seq.faces, self.faces):
                    raise MeshIOError(
                        "checkpoint topology differs from the writer's faces", path=part
                    )
                self._num_vertices = seq.vertices.shape[1]
                self._checkpointed.update(int(i) for i in seq.frame_ids)
                self._parts = max(self._parts, int(part.stem.split("-")[1]) + 1)

    def _resume_frame_log(self, journal: Path) -> None:
        header, stamps = read_frame_log(journal)
        if not np.isclose(float(header["fps"]), self.fps):
            raise MeshIOError(f"written at {header['fps']} fps, not {self.fps}", path=journal)
        self._logged = {
            i: t
            for i, t in stamps.items()
            if all(frame_path(self.out_dir, self.stem, i, f).is_file() for f in self._frame_formats)
        }
        try:
            with journal.open("rb+") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(fh.tell() - 1)
                if fh.read(1) != b"\n":  # Close off a line torn by a crash.
                    fh.write(b"\n")
        except OSError as exc:
            raise MeshIOError(f"cannot repair frame sidecar ({exc})", path=journal) from exc

    def exists(self, frame_id: int) -> bool:
        """Whether ``frame_id`` is already written (per-frame files, checkpoint or pending)."""
        with self._lock:
            return self._exists_unlocked(int(frame_id))

    def _exists_unlocked(self, frame_id: int) -> bool:
        if self._frame_formats:
            return frame_id in self._logged
        return frame_id in self._checkpointed or frame_id in self._pending

    def append(self, vertices_mm: np.ndarray, timestamp_s: float, frame_id: int) -> None:
        """Add one frame: (N, 3) vertices in mm, its time in seconds and sequence number."""
        v = np.asarray(vertices_mm, dtype=np.float32)
        i, t = int(frame_id), float(timestamp_s)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"frame {i}: vertices must be (N, 3), got {v.shape}")
        if not np.all(np.isfinite(v)) or not np.isfinite(t):
            raise ValueError(f"frame {i}: vertices and timestamp must be finite")
        if self.faces.size and self.faces.max() >= len(v):
            raise ValueError(
                f"frame {i}: {len(v)} vertices, but faces index vertex {self.faces.max()}"
            )
        if i < 0:
            raise ValueError(f"frame_id must be >= 0, got {i}")
        with self._lock:
            if self._closed:
                raise RuntimeError("append() after close()")
            if self._num_vertices is not None and len(v) != self._num_vertices:
                raise ValueError(f"frame {i}: {len(v)} vertices, expected {self._num_vertices}")
            if self._exists_unlocked(i):
                raise ValueError(f"frame {i} was already written")
            self._num_vertices = len(v)
            for fmt in self._frame_formats:
                write_frame(frame_path(self.out_dir, self.stem, i, fmt), v, self.faces, fmt)
            if self._frame_formats:
                append_frame_log(journal_path(self.out_dir, self.stem), i, t)
                self._logged[i] = t
            # A checkpointed frame whose per-frame files were lost only gets those rewritten.
            if self._whole and i not in self._checkpointed:
                self._pending[i] = (v.copy(), t)
                if len(self._pending) >= self.flush_every:
                    self._flush()

    def _pending_sequence(self) -> MeshSequence:
        ids = sorted(self._pending)
        return MeshSequence(
            np.stack([self._pending[i][0] for i in ids]),
            self.faces,
            self.fps,
            np.array([self._pending[i][1] for i in ids]),
            np.array(ids),
            self.source,
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        save_npz(self._pending_sequence(), self._checkpoint_dir / f"part-{self._parts:06d}.npz")
        self._parts += 1
        self._checkpointed.update(self._pending)
        self._pending.clear()

    def _all_frames(self) -> Iterator[MeshSequence]:
        if self._checkpoint_dir.is_dir():
            yield from (load_npz(p) for p in sorted(self._checkpoint_dir.glob("part-*.npz")))
        if self._pending:
            yield self._pending_sequence()
        # Frames resumed from per-frame files but never checkpointed (a crash in between).
        known = self._checkpointed | set(self._pending)
        extra = sorted(set(self._logged) - known) if self._frame_formats else []
        if extra:
            fmt = "ply" if "ply" in self._frame_formats else "obj"
            verts = [read_mesh(frame_path(self.out_dir, self.stem, i, fmt))[0] for i in extra]
            yield MeshSequence(
                np.stack(verts),
                self.faces,
                self.fps,
                np.array([self._logged[i] for i in extra]),
                np.array(extra),
                self.source,
            )

    def close(self) -> list[Path]:
        """Write NPZ/USD, remove the checkpoint, and return every path of the sequence.

        Idempotent; the list holds per-frame files (with the sidecar) then NPZ then USD.
        """
        with self._lock:
            if self._closed:
                return list(self._result)
            self._closed = True
            paths: list[Path] = []
            for fmt in self._frame_formats:
                paths += [frame_path(self.out_dir, self.stem, i, fmt) for i in sorted(self._logged)]
            if self._frame_formats:
                paths.append(journal_path(self.out_dir, self.stem))
            if self._whole:
                parts = list(self._all_frames())
                if not parts:
                    log.warning(
                        "%s: no frames appended, no %s written", self.out_dir, "/".join(self._whole)
                    )
                else:
                    seq = merge_sequences(parts, self.out_dir)
                    if "npz" in self._whole:
                        paths.append(save_npz(seq, self.out_dir / f"{self.stem}.npz"))
                    if "usd" in self._whole:
                        paths.append(write_usd(seq, self.out_dir / f"{self.stem}.usd"))
                    shutil.rmtree(self._checkpoint_dir, ignore_errors=True)
            self._result = paths
            return list(paths)

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
