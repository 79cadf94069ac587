"""Mesh sequences on disk: per-frame PLY/OBJ, one NPZ, or one USD point cache.

A :class:`MeshSequence` is T frames of one topology. Four formats hold it:

``ply`` / ``obj``
    ``<stem>.<frame_id:06d>.ply`` per frame, in **metres** (the TEMPEH convention), plus a
    ``<stem>.frames.jsonl`` sidecar: a header line (fps, source, units) and one line per
    frame (frame id, timestamp), appended as frames are written so it survives a crash.
``npz``
    ``<stem>.npz`` with the arrays of :class:`MeshSequence` in **millimetres** (no pickles).
``usd``
    ``<stem>.usd`` (crate; ``.usda`` for text): one ``UsdGeomMesh`` ``/Head/Mesh`` with
    constant topology and ``points`` time-sampled at time codes ``0 .. T-1``,
    ``timeCodesPerSecond = fps``, ``metersPerUnit`` and ``upAxis = Y`` declared. Unreal and
    Blender import it as a geometry cache. Exact timestamps and frame ids ride along as the
    custom attributes ``tempeh:timestamps`` and ``tempeh:frameIds``.

:class:`SequenceWriter` streams frames to these formats during live runs and reconstruction.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from capture.errors import ConfigError, MeshIOError
from inference.mesh_io import read_mesh
from inference.mesh_sequence_formats import (
    FORMATS,
    FRAME_FILE,
    FRAME_FORMATS,
    USD_SUFFIXES,
    MeshSequence,
    check_formats,
    frame_path,
    journal_path,
    load_npz,
    merge_sequences,
    read_frame_log,
    read_usd,
    save_npz,
    write_frame,
    write_usd,
)
from inference.mesh_sequence_writer import SequenceWriter

__all__ = [
    "FORMATS",
    "FRAME_FORMATS",
    "USD_SUFFIXES",
    "MeshSequence",
    "SequenceWriter",
    "check_formats",
    "export_sequence",
    "frame_path",
    "journal_path",
    "load_npz",
    "load_sequence",
    "read_usd",
    "save_npz",
    "write_frame",
    "write_usd",
]

log = logging.getLogger(__name__)


def _frame_files(folder: Path, stem: str | None) -> tuple[str, str, dict[int, Path]]:
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for p in folder.iterdir():
        m = FRAME_FILE.match(p.name)
        if m and p.is_file():
            found.setdefault((m["stem"], m["ext"]), {})[int(m["id"])] = p
    stems = sorted({s for s, _ in found} if stem is None else {stem} & {s for s, _ in found})
    if not stems:
        raise MeshIOError(
            f"no <stem>.<frame>.ply/.obj files{f' for stem {stem!r}' if stem else ''}", path=folder
        )
    if len(stems) > 1:
        raise MeshIOError(
            f"several sequences here ({', '.join(stems)}); choose a stem", path=folder
        )
    ext = "ply" if (stems[0], "ply") in found else "obj"  # Binary PLY holds the exact floats.
    return stems[0], ext, found[(stems[0], ext)]


def _load_frames_folder(folder: Path, fps: float | None, stem: str | None) -> MeshSequence:
    stem, _ext, files = _frame_files(folder, stem)
    journal = journal_path(folder, stem)
    source = str(folder)
    if journal.is_file():
        header, stamps = read_frame_log(journal)
        rate = float(header["fps"]) if fps is None else fps
        source = str(header.get("source", source))
        unlisted = sorted(set(files) - set(stamps))
        if unlisted:
            log.warning("%s: ignoring frames written but not logged: %s", journal, unlisted)
        missing = sorted(set(stamps) - set(files))
        if missing:
            raise MeshIOError(f"frame {missing[0]} is listed but its file is missing", path=journal)
        ids = sorted(stamps)
    else:
        if fps is None:
            raise MeshIOError(f"no {journal.name} sidecar: give the frame rate (fps)", path=folder)
        rate, ids = fps, sorted(files)
        stamps = {i: (i - ids[0]) / fps for i in ids}
    vertices, faces = [], None
    for i in ids:
        v, f = read_mesh(files[i], units="m")
        if faces is None:
            faces = f
        elif f.shape != faces.shape or not np.array_equal(f, faces):
            raise MeshIOError("topology differs from the first frame", path=files[i])
        if vertices and v.shape != vertices[0].shape:
            raise MeshIOError(
                f"{len(v)} vertices, the first frame has {len(vertices[0])}", path=files[i]
            )
        vertices.append(v)
    try:
        return MeshSequence(
            np.stack(vertices),
            faces,
            rate,
            np.array([stamps[i] for i in ids]),
            np.array(ids),
            source,
        )
    except ValueError as exc:
        raise MeshIOError(f"invalid mesh sequence ({exc})", path=folder) from exc


def _load_checkpoint(folder: Path) -> MeshSequence:
    parts = [load_npz(p) for p in sorted(folder.glob("part-*.npz"))]
    if not parts:
        raise MeshIOError("no part-*.npz checkpoint files", path=folder)
    return merge_sequences(parts, folder)


def load_sequence(
    path: str | Path, fps: float | None = None, stem: str | None = None
) -> MeshSequence:
    """Load a sequence from ``.npz``, ``.usd``/``.usda``/``.usdc`` or a folder.

    A folder holds either per-frame ``<stem>.<frame>.ply``/``.obj`` files (PLY preferred
    where both exist) with their ``<stem>.frames.jsonl`` sidecar, or the ``part-*.npz`` files
    of a :class:`SequenceWriter` checkpoint.

    Parameters
    ----------
    fps : float, optional
        Overrides the stored frame rate (timestamps are kept). Required for a folder of
        frames without a sidecar; its timestamps are then ``(frame_id - first) / fps``.
    stem : str, optional
        Which sequence of a folder holding several.
    """
    path = Path(path)
    if fps is not None and (not np.isfinite(fps) or fps <= 0):
        raise ConfigError(f"must be positive, got {fps}", field="fps")
    if path.is_dir():
        if any(path.glob("part-*.npz")):
            seq = _load_checkpoint(path)
        else:
            return _load_frames_folder(path, fps, stem)
    elif path.suffix.lower() == ".npz":
        seq = load_npz(path)
    elif path.suffix.lower() in USD_SUFFIXES:
        seq = read_usd(path)
    elif not path.exists():
        raise MeshIOError("mesh sequence not found", path=path)
    else:
        raise MeshIOError("not a mesh sequence (.npz, .usd, .usda, .usdc or a folder)", path=path)
    return seq if fps is None else replace(seq, fps=fps)


def export_sequence(
    seq: MeshSequence, out: str | Path, formats: Sequence[str], stem: str = "frame"
) -> list[Path]:
    """Write a sequence into the folder ``out`` in each of ``formats``.

    ``ply``/``obj``: ``out/<stem>.<frame_id:06d>.<fmt>`` plus ``out/<stem>.frames.jsonl``;
    ``npz``: ``out/<stem>.npz``; ``usd``: ``out/<stem>.usd``. Returns every path written.
    """
    formats = check_formats(formats)
    # A fresh export replaces an earlier one of the same stem instead of resuming it.
    journal_path(out, stem).unlink(missing_ok=True)
    shutil.rmtree(Path(out) / f"{stem}.checkpoint", ignore_errors=True)
    with SequenceWriter(
        out,
        seq.faces,
        seq.fps,
        formats,
        stem=stem,
        source=seq.source,
        flush_every=seq.num_frames + 1,
    ) as writer:
        for v, t, i in zip(seq.vertices, seq.timestamps, seq.frame_ids, strict=True):
            writer.append(v, float(t), int(i))
    return writer.close()
