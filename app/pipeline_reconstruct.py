"""``tempeh reconstruct``: offline reconstruction of takes, FaMoS datasets and video folders.

Outputs:

- a take or a video folder: :class:`inference.mesh_sequence.SequenceWriter` into ``--out``
  with stem ``meshes``: ``meshes.<frame:06d>.ply`` (metres) and ``meshes.frames.jsonl``
  per frame, ``meshes.npz`` (mm) / ``meshes.usd`` for the whole take. Frame ids are the
  take's set sequence numbers (a video folder's frame positions).
- a FaMoS/TEMPEH dataset: ``<out>/<subject>/<sequence>/<sequence>.<frame>.ply`` in metres,
  the layout and units of the official tester, for the frames of ``lists/<split>.json`` (every
  frame of every sequence when the list does not exist); ``npz``/``usd`` add
  ``<sequence>.npz``/``.usd`` beside them.

Resumable: frames whose files exist are skipped. Several processes: under ``torchrun`` (env
``RANK``/``WORLD_SIZE``) process ``r`` of ``W`` takes the frames ``i`` with ``i % W == r`` of
the flat frame list, writes only those, and rank 0 writes the sequence-level files after a
gloo barrier (per-frame PLYs are then always written: they are what rank 0 merges).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from capture.camera import Rig
from capture.errors import ConfigError, StudioError
from capture.frames import FrameSet

log = logging.getLogger(__name__)

TAKE_STEM = "meshes"
FAMOS_FPS = 60.0


@dataclass
class Unit:
    """One sequence to reconstruct: its rig, its frames and where each result goes.

    ``items`` are ``(position, frame_id)``; ``read(position)`` gives the FrameSet;
    ``exists(frame_id)`` says whether it is already written; ``write(result, frame_id)`` writes
    it; ``finish(rank0)`` writes sequence-level files (rank 0 after every frame is written).
    """

    name: str
    rig: Rig
    items: list[tuple[int, int]]
    read: Callable[[int], FrameSet]
    exists: Callable[[int], bool]
    write: Callable[[Any, int], None]
    open: Callable[[], None] = lambda: None
    finish: Callable[[bool], list[Path]] = lambda rank0: []
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DistInfo:
    """This process's place among ``torchrun`` processes (rank 0 of 1 when alone)."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_env(cls) -> DistInfo:
        """Read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``."""
        try:
            return cls(
                int(os.environ.get("RANK", 0)),
                int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)),
            )
        except ValueError as exc:
            raise ConfigError(f"bad torchrun environment: {exc}", field="RANK") from exc

    def barrier(self) -> None:
        """Wait for every process (no-op when alone)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def parse_frames(text: str | None) -> slice:
    """``"a:b"`` (either end optional) → a slice; ConfigError otherwise."""
    if not text:
        return slice(None)
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ConfigError(f"must look like a:b, got {text!r}", field="--frames") from None
    return slice(a, b)


def parse_formats(text: str) -> tuple[str, ...]:
    """The ``--formats`` list, validated."""
    from inference.mesh_sequence import check_formats

    return check_formats([f.strip() for f in text.split(",") if f.strip()])


# --------------------------------------------------------------------------- inputs


def take_unit(
    path: Path, out: Path, formats: tuple[str, ...], frames: slice, faces: np.ndarray
) -> Unit:
    """A recorded take → ``out/meshes.*``."""
    from capture.frames import Frame
    from capture.take import TakeReader

    take = TakeReader(path)
    records = take.records
    t0 = records[0].time_ns if records else 0
    positions = list(range(len(records)))[frames]
    items = [(p, records[p].sequence) for p in positions]
    stamps = {records[p].sequence: (records[p].time_ns - t0) / 1e9 for p in positions}

    def read(pos: int) -> FrameSet:
        rec = records[pos]
        images, errors = take.read_set(pos)
        for err in errors:
            log.error("%s", err)
        now = time.monotonic_ns()
        slots = tuple(
            None
            if img is None
            else Frame(img, i, take.rig.names[i], int(rec.frame_id[i] or 0), now)
            for i, img in enumerate(images)
        )
        return FrameSet(pos, slots, take.rig, rec.spread_ns, rec.key)

    fps = take.fps if take.fps > 0 else 20.0
    return sequence_writer_unit(str(path), take.rig, items, read, out, formats, faces, fps, stamps)


def video_unit(
    source: Any, path: Path, out: Path, formats: tuple[str, ...], frames: slice, faces: np.ndarray
) -> Unit:
    """A folder of per-camera videos → ``out/meshes.*`` (frame ids are positions)."""
    positions = list(range(len(source)))[frames]
    items = [(p, source.frame_label(p)) for p in positions]
    fps = source.nominal_fps if source.nominal_fps > 0 else 30.0
    stamps = {fid: fid / fps for _, fid in items}

    def read(pos: int) -> FrameSet:
        return source.frame_set(pos, strict=False)

    return sequence_writer_unit(
        str(path), source.rig, items, read, out, formats, faces, fps, stamps
    )


def sequence_writer_unit(
    name: str,
    rig: Rig,
    items: list[tuple[int, int]],
    read: Callable[[int], FrameSet],
    out: Path,
    formats: tuple[str, ...],
    faces: np.ndarray,
    fps: float,
    stamps: dict[int, float],
) -> Unit:
    """A unit writing through one :class:`SequenceWriter` (stem ``meshes``) in ``out``."""
    from inference.mesh_sequence import FRAME_FORMATS, SequenceWriter

    state: dict[str, Any] = {"kind": "writer"}
    frame_formats = tuple(f for f in formats if f in FRAME_FORMATS)

    def open_(distributed: bool = False) -> None:
        fmts = (frame_formats or ("ply",)) if distributed else formats
        state["writer"] = SequenceWriter(out, faces, fps, fmts, stem=TAKE_STEM, source=name)

    def write(result: Any, frame_id: int) -> None:
        state["writer"].append(result.vertices, stamps.get(frame_id, 0.0), frame_id)

    def finish(rank0: bool) -> list[Path]:
        paths = state["writer"].close()
        if state.get("distributed") and rank0 and formats != frame_formats:
            # every rank's frames are on disk now: a writer that resumes merges them
            merged = SequenceWriter(out, faces, fps, formats, stem=TAKE_STEM, source=name)
            paths = merged.close()
        return paths

    unit = Unit(name, rig, items, read, lambda fid: state["writer"].exists(fid), write)
    unit.open = open_  # type: ignore[method-assign]
    unit.finish = finish  # type: ignore[method-assign]
    unit.extra = state
    return unit


def famos_units(
    root: Path,
    out: Path,
    formats: tuple[str, ...],
    frames: slice,
    faces: np.ndarray,
    split: str,
    rig: str | None,
    subject: str | None,
    sequence: str | None,
) -> list[Unit]:
    """One unit per (subject, sequence) of a FaMoS/TEMPEH dataset (official PLY layout)."""
    from capture.sources.famos_source import FamosReplaySource, famos_sequences
    from inference.dataset import read_frame_list

    list_file = root / "lists" / f"{split}.json"
    wanted: dict[tuple[str, str], list[str] | None] = {}
    if list_file.is_file():
        for s, q, f in read_frame_list(list_file):
            wanted.setdefault((s, q), []).append(f)  # type: ignore[union-attr]
    else:
        log.warning("%s does not exist: reconstructing every frame of every sequence", list_file)
        wanted = {key: None for key in famos_sequences(root)}
    units = []
    for (s, q), listed in sorted(wanted.items()):
        if (subject and s != subject) or (sequence and q != sequence):
            continue
        src = FamosReplaySource(root, s, q, rig, fps=0.0, resize_rig=False)
        index = {name: i for i, name in enumerate(src.frames)}
        names = src.frames if listed is None else sorted(set(listed))
        missing = [f for f in names if f not in index]
        if missing:
            from capture.errors import DatasetError

            raise DatasetError(
                f"listed in {list_file.name} but has no image folder",
                subject=s,
                sequence=q,
                frame=missing[0],
            )
        positions = [index[f] for f in names][frames]
        units.append(famos_unit(src, out, formats, positions, faces))
    if not units:
        raise ConfigError(f"{root}: no sequence to reconstruct (split {split!r})", field="input")
    return units


def famos_unit(
    src: Any, out: Path, formats: tuple[str, ...], positions: list[int], faces: np.ndarray
) -> Unit:
    """Official layout ``<out>/<subject>/<sequence>/<sequence>.<frame>.ply`` (metres)."""
    from inference.mesh_sequence import MeshSequence, save_npz, write_frame, write_usd

    folder = out / src.subject / src.sequence
    per_frame = ["ply"] + (["obj"] if "obj" in formats else [])

    def path(frame_id: int, fmt: str) -> Path:
        return folder / f"{src.sequence}.{src.frames[frame_id]}.{fmt}"

    def exists(frame_id: int) -> bool:
        return all(path(frame_id, f).is_file() for f in per_frame)

    def write(result: Any, frame_id: int) -> None:
        for fmt in per_frame:
            write_frame(path(frame_id, fmt), result.vertices, faces, fmt)

    def finish(rank0: bool) -> list[Path]:
        done = [p for p in range(len(src.frames)) if exists(p)]
        whole = [f for f in formats if f in ("npz", "usd")]
        if not rank0 or not whole or not done:
            return []
        from inference.mesh_io import read_mesh

        verts = np.stack([read_mesh(path(p, "ply"))[0] for p in done]).astype(np.float32)
        labels = np.array([src.frame_label(p) for p in done])
        seq = MeshSequence(verts, faces, FAMOS_FPS, labels / FAMOS_FPS, labels, str(src.folder))
        paths = []
        if "npz" in whole:
            paths.append(save_npz(seq, folder / f"{src.sequence}.npz"))
        if "usd" in whole:
            paths.append(write_usd(seq, folder / f"{src.sequence}.usd"))
        return paths

    items = [(p, p) for p in positions]  # frame id: the position in the sequence folder
    return Unit(
        f"{src.subject}/{src.sequence}",
        src.rig,
        items,
        lambda pos: src.frame_set(pos, strict=False),
        exists,
        write,
        finish=finish,
    )


def build_units(args: argparse.Namespace, faces: np.ndarray) -> list[Unit]:
    """The units of ``args.input`` by its content (take, FaMoS root, video folder)."""
    from app.cmd_capture import open_replay, replay_kind

    formats = parse_formats(args.formats)
    frames = parse_frames(args.frames)
    kind = replay_kind(args.input)
    if kind == "take":
        return [take_unit(args.input, args.out, formats, frames, faces)]
    if kind == "famos":
        return famos_units(
            args.input,
            args.out,
            formats,
            frames,
            faces,
            args.split,
            args.rig,
            args.subject,
            args.sequence,
        )
    # realtime: the probed video rate becomes nominal_fps (frames are read directly, unpaced)
    source = open_replay(args.input, args.rig, realtime=True)
    return [video_unit(source, args.input, args.out, formats, frames, faces)]


# --------------------------------------------------------------------------- running


def run_reconstruct(args: argparse.Namespace) -> int:
    """The ``reconstruct`` handler; returns 1 when some frames failed."""
    from inference.pipeline import load_pipeline_model

    dist = DistInfo.from_env()
    device = args.device
    if dist.world > 1:
        import torch.distributed

        torch.distributed.init_process_group("gloo")
        if device == "cuda":
            # more processes than GPUs share them round-robin
            device = f"cuda:{dist.local_rank % max(torch.cuda.device_count(), 1)}"
    try:
        loaded = load_pipeline_model(args.model, device, args.flame)
        if not loaded.trained and dist.rank == 0:
            print(f"model: {loaded.label}: the meshes will not be heads")
        units = build_units(args, loaded.template.faces)
        args.out.mkdir(parents=True, exist_ok=True)
        for unit in units:
            if unit.extra.get("kind") != "writer":
                continue
            if dist.rank == 0:
                unit.extra["distributed"] = dist.world > 1
                unit.open(dist.world > 1)  # type: ignore[call-arg]
            dist.barrier()  # rank 0 created the frame sidecar before the others resume it
            if dist.rank != 0:
                unit.extra["distributed"] = True
                unit.open(True)  # type: ignore[call-arg]
        flat = [(u, pos, fid) for u in units for pos, fid in u.items]
        mine = [item for i, item in enumerate(flat) if i % dist.world == dist.rank]
        counts = _run_items(loaded, mine, progress=not args.no_progress and dist.rank == 0)
        dist.barrier()
        written: list[Path] = []
        for unit in units:
            written += unit.finish(dist.rank == 0)
    finally:
        if dist.world > 1:
            import torch.distributed

            torch.distributed.destroy_process_group()
    if dist.rank == 0 or counts["failed"]:
        where = f"rank {dist.rank}/{dist.world}: " if dist.world > 1 else ""
        print(
            f"{where}{counts['done']} frames reconstructed, {counts['skipped']} already written, "
            f"{counts['failed']} failed -> {args.out}"
        )
        for p in written:
            if p.suffix in (".npz", ".usd"):
                print(f"wrote {p}")
    for message in counts["errors"][:5]:
        print(f"failed: {message}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _run_items(loaded: Any, items: list[tuple[Unit, int, int]], progress: bool) -> dict[str, Any]:
    """Reconstruct ``items`` in order, one offline worker per unit; reading overlaps inference."""
    from tqdm import tqdm

    from inference.pipeline import InferenceWorker

    counts: dict[str, Any] = {"done": 0, "skipped": 0, "failed": 0, "errors": []}
    lock = threading.Lock()
    bar = tqdm(total=len(items), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for unit, group in _grouped(items):
            todo = []
            for pos, fid in group:
                if unit.exists(fid):
                    counts["skipped"] += 1
                    bar.update(1)
                else:
                    todo.append((pos, fid))
            if not todo:
                continue
            ids = dict(todo)

            def on_result(result: Any, unit: Unit = unit, ids: dict = ids) -> None:
                unit.write(result, ids[result.sequence])
                with lock:
                    counts["done"] += 1
                bar.update(1)

            def on_error(exc: BaseException) -> None:
                with lock:
                    counts["failed"] += 1
                    counts["errors"].append(f"{type(exc).__name__}: {exc}")
                bar.update(1)

            worker = InferenceWorker(loaded, unit.rig, "offline", on_result, on_error)
            worker.start()
            try:
                for pos, _ in todo:
                    try:
                        fs = unit.read(pos)
                    except StudioError as exc:
                        on_error(exc)
                        continue
                    worker.submit(fs)
                worker.drain()
            finally:
                worker.stop()
    finally:
        bar.close()
    return counts


def _grouped(items: list[tuple[Unit, int, int]]) -> Iterator[tuple[Unit, list[tuple[int, int]]]]:
    """Consecutive items of the same unit, in order."""
    current: Unit | None = None
    group: list[tuple[int, int]] = []
    for unit, pos, fid in items:
        if unit is not current:
            if current is not None:
                yield current, group
            current, group = unit, []
        group.append((pos, fid))
    if current is not None:
        yield current, group
