"""The :class:`MeshSequence` record and its file formats: NPZ, USD and PLY/OBJ frames.

The public entry points are re-exported by :mod:`inference.mesh_sequence`, which documents the
layout of each format. Every writer here is atomic (temporary sibling + ``os.replace``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capture.atomic import temporary_sibling, write_atomically
from capture.errors import ConfigError, MeshIOError
from inference.mesh_io import write_mesh

log = logging.getLogger(__name__)

FORMATS = ("ply", "obj", "npz", "usd")
"""Every format :func:`export_sequence` and :class:`SequenceWriter` can write."""
FRAME_FORMATS = ("ply", "obj")
"""Formats written as one file per frame."""
USD_SUFFIXES = (".usd", ".usda", ".usdc")

NPZ_KEYS = ("vertices", "faces", "fps", "timestamps", "frame_ids", "source", "units")
FRAME_FILE = re.compile(r"^(?P<stem>.+)\.(?P<id>\d+)\.(?P<ext>ply|obj)$")
FRAME_LOG_KIND = "tempeh-mesh-frames"


@dataclass(frozen=True)
class MeshSequence:
    """T meshes of one topology, in millimetres.

    Arrays are converted to the dtypes below on construction; shapes, index ranges and finite
    values are checked and a :class:`ValueError` names what was wrong.

    Attributes
    ----------
    vertices : np.ndarray
        (T, N, 3) float32, mm, T >= 1.
    faces : np.ndarray
        (F, 3) int32 triangles, 0-based, indices in [0, N).
    fps : float
        Playback rate in frames per second, > 0.
    timestamps : np.ndarray
        (T,) float64 seconds (from the first frame by convention), non-decreasing.
    frame_ids : np.ndarray
        (T,) int64 capture sequence numbers, >= 0 and strictly increasing.
    source : str
        The take path or a description of where the meshes came from.
    """

    vertices: np.ndarray
    faces: np.ndarray
    fps: float
    timestamps: np.ndarray
    frame_ids: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices)
        if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] < 1 or not _is_real(v):
            raise ValueError(f"vertices must be real (T>=1, N, 3), got {v.dtype} {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("vertices contain NaN or infinite values")
        f = np.asarray(self.faces)
        if f.ndim != 2 or f.shape[1] != 3 or (f.size and not np.issubdtype(f.dtype, np.integer)):
            raise ValueError(f"faces must be (F, 3) integers, got {f.dtype} {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= v.shape[1]):
            raise ValueError(
                f"face indices must lie in [0, {v.shape[1]}) for {v.shape[1]} vertices, "
                f"got [{f.min()}, {f.max()}]"
            )
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        t = np.asarray(self.timestamps)
        if t.shape != (v.shape[0],) or not _is_real(t) or not np.all(np.isfinite(t)):
            raise ValueError(f"timestamps must be ({v.shape[0]},) finite, got {t.dtype} {t.shape}")
        if np.any(np.diff(t) < 0):
            raise ValueError("timestamps must be non-decreasing")
        ids = np.asarray(self.frame_ids)
        if ids.shape != (v.shape[0],) or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(
                f"frame_ids must be ({v.shape[0]},) integers, got {ids.dtype} {ids.shape}"
            )
        if np.any(ids < 0) or np.any(np.diff(ids) <= 0):
            raise ValueError("frame_ids must be >= 0 and strictly increasing")
        object.__setattr__(self, "vertices", np.ascontiguousarray(v, dtype=np.float32))
        object.__setattr__(self, "faces", np.ascontiguousarray(f, dtype=np.int32))
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "timestamps", t.astype(np.float64))
        object.__setattr__(self, "frame_ids", ids.astype(np.int64))
        object.__setattr__(self, "source", str(self.source))

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.vertices.shape[0])


def _is_real(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Validate format names (case-insensitive); raise :class:`ConfigError` listing the known."""
    if isinstance(formats, str):
        formats = [formats]
    out = tuple(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in out if f not in FORMATS]
    if unknown or not out:
        raise ConfigError(
            f"unknown mesh format(s) {unknown or list(formats)}; known: {', '.join(FORMATS)}",
            field="format",
        )
    return out


# --- NPZ ---------------------------------------------------------------------------------------


def save_npz(seq: MeshSequence, path: str | Path) -> Path:
    """Write a sequence as an uncompressed NPZ (keys of :class:`MeshSequence`, ``units="mm"``).

    The file is written to a temporary sibling and moved into place, so a reader never sees a
    half-written file. Parent folders are created.
    """
    path = Path(path)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                vertices=seq.vertices,
                faces=seq.faces,
                fps=np.float64(seq.fps),
                timestamps=seq.timestamps,
                frame_ids=seq.frame_ids,
                source=np.str_(seq.source),
                units=np.str_("mm"),
            )

    try:
        write_atomically(path, write)
    except OSError as exc:
        raise MeshIOError(f"cannot write NPZ ({exc})", path=path) from exc
    log.debug("wrote %s: %d frames", path, seq.num_frames)
    return path


def load_npz(path: str | Path) -> MeshSequence:
    """Read a sequence written by :func:`save_npz` (``units`` "mm" or "m"; never unpickles).

    Raises
    ------
    MeshIOError
        Missing or corrupted file, a missing key, or arrays that do not form a sequence.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshIOError("mesh sequence file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise MeshIOError("missing key in mesh sequence NPZ", path=path, field=missing[0])
            data = {}
            for key in NPZ_KEYS:
                try:
                    data[key] = npz[key]
                except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                    raise MeshIOError(f"unreadable array ({exc})", path=path, field=key) from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MeshIOError(f"not a readable NPZ file ({exc})", path=path) from exc
    units = str(data.pop("units"))
    scale = {"mm": 1.0, "m": 1000.0}.get(units)
    if scale is None:
        raise MeshIOError(f"units must be 'mm' or 'm', got {units!r}", path=path, field="units")
    for key in ("fps", "source"):
        if data[key].ndim != 0:
            raise MeshIOError(
                f"expected a scalar, got shape {data[key].shape}", path=path, field=key
            )
    try:
        return MeshSequence(
            vertices=np.asarray(data["vertices"]) * scale if scale != 1.0 else data["vertices"],
            faces=data["faces"],
            fps=float(data["fps"]),
            timestamps=data["timestamps"],
            frame_ids=data["frame_ids"],
            source=str(data["source"]),
        )
    except (ValueError, TypeError) as exc:
        raise MeshIOError(f"invalid mesh sequence ({exc})", path=path) from exc


# --- USD ---------------------------------------------------------------------------------------


def write_usd(seq: MeshSequence, path: str | Path, meters_per_unit: float = 1.0) -> Path:
    """Write a sequence as a USD point cache (see the module docstring for the layout).

    Parameters
    ----------
    seq : MeshSequence
        The meshes, mm.
    path : str or Path
        ``.usd`` or ``.usdc`` (binary crate) or ``.usda`` (text).
    meters_per_unit : float
        Stage ``metersPerUnit``; points are written as ``mm / 1000 / meters_per_unit``
        (1.0: metres, 0.01: centimetres).
    """
    from pxr import Sdf, Usd, UsdGeom, Vt

    path = Path(path)
    if path.suffix.lower() not in USD_SUFFIXES:
        raise MeshIOError(f"USD files end in {', '.join(USD_SUFFIXES)}", path=path)
    if not np.isfinite(meters_per_unit) or meters_per_unit <= 0:
        raise ValueError(f"meters_per_unit must be positive, got {meters_per_unit}")
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageMetersPerUnit(stage, float(meters_per_unit))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    stage.SetTimeCodesPerSecond(seq.fps)
    stage.SetFramesPerSecond(seq.fps)
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(seq.num_frames - 1)
    root = UsdGeom.Xform.Define(stage, "/Head")
    stage.SetDefaultPrim(root.GetPrim())
    root.GetPrim().SetDocumentation(seq.source)
    mesh = UsdGeom.Mesh.Define(stage, "/Head/Mesh")
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(seq.faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(seq.faces.reshape(-1)))
    points, extent = mesh.CreatePointsAttr(), mesh.CreateExtentAttr()
    scale = 1.0 / (1000.0 * meters_per_unit)
    for i in range(seq.num_frames):
        p = (seq.vertices[i].astype(np.float64) * scale).astype(np.float32)
        code = Usd.TimeCode(i)
        points.Set(Vt.Vec3fArray.FromNumpy(p), code)
        extent.Set(Vt.Vec3fArray.FromNumpy(np.stack([p.min(axis=0), p.max(axis=0)])), code)
    prim = mesh.GetPrim()
    ids = prim.CreateAttribute("tempeh:frameIds", Sdf.ValueTypeNames.Int64Array, custom=True)
    ids.Set(Vt.Int64Array.FromNumpy(seq.frame_ids))
    stamps = prim.CreateAttribute("tempeh:timestamps", Sdf.ValueTypeNames.DoubleArray, custom=True)
    stamps.Set(Vt.DoubleArray.FromNumpy(seq.timestamps))
    args = {"format": "usdc"} if path.suffix.lower() == ".usd" else {}

    def write(tmp: Path) -> None:
        if not stage.GetRootLayer().Export(str(tmp), args=args):
            raise MeshIOError("cannot write USD", path=path)

    try:
        write_atomically(path, write)
    except (OSError, RuntimeError) as exc:
        raise MeshIOError(f"cannot write USD ({exc})", path=path) from exc
    log.debug("wrote %s: %d frames at %g fps", path, seq.num_frames, seq.fps)
    return path


def read_usd(path: str | Path) -> MeshSequence:
    """Read the first triangle ``UsdGeomMesh`` under the default prim as a sequence (mm).

    Frames are the ``points`` time samples (a single default value gives one frame); units
    follow the stage ``metersPerUnit`` (USD's fallback 0.01 where none is authored); fps is
    ``timeCodesPerSecond``. Timestamps and frame ids come from the ``tempeh:`` attributes when
    present, else from the time codes. Prim transforms are not applied.

    Raises
    ------
    MeshIOError
        Missing or unreadable file, no mesh, non-triangle faces, or changing vertex counts.
    """
    from pxr import Sdf, Tf, Usd, UsdGeom

    path = Path(path)
    if not path.is_file():
        raise MeshIOError("USD file not found", path=path)
    try:
        # Anonymous: never served stale from the layer registry after a rewrite.
        layer = Sdf.Layer.OpenAsAnonymous(str(path))
    except Tf.ErrorException as exc:
        raise MeshIOError(
            f"not a readable USD file ({str(exc).strip()[-200:]})", path=path
        ) from exc
    if layer is None:
        raise MeshIOError("not a readable USD file", path=path)
    stage = Usd.Stage.Open(layer)
    start = stage.GetDefaultPrim() or stage.GetPseudoRoot()
    prim = next((p for p in Usd.PrimRange(start) if p.IsA(UsdGeom.Mesh)), None)
    if prim is None:
        raise MeshIOError("no UsdGeomMesh in the stage", path=path)
    mesh = UsdGeom.Mesh(prim)
    counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], dtype=np.int64)
    indices = np.asarray(mesh.GetFaceVertexIndicesAttr().Get() or [], dtype=np.int64)
    if np.any(counts != 3) or indices.size != 3 * counts.size:
        raise MeshIOError(
            "only triangle meshes are supported", path=path, field=str(prim.GetPath())
        )
    points_attr = mesh.GetPointsAttr()
    codes = points_attr.GetTimeSamples()
    frames = [np.asarray(points_attr.Get(c), dtype=np.float64) for c in codes]
    if not codes:
        frames, codes = [np.asarray(points_attr.Get() or [], dtype=np.float64)], [0.0]
    if frames[0].ndim != 2 or frames[0].shape[1] != 3:
        raise MeshIOError("the mesh has no points", path=path, field="points")
    if any(f.shape != frames[0].shape for f in frames):
        raise MeshIOError("the vertex count changes over time", path=path, field="points")
    to_mm = UsdGeom.GetStageMetersPerUnit(stage) * 1000.0
    fps = stage.GetTimeCodesPerSecond()
    stamps_attr = prim.GetAttribute("tempeh:timestamps")
    ids_attr = prim.GetAttribute("tempeh:frameIds")
    if stamps_attr and ids_attr and len(stamps_attr.Get() or []) == len(frames):
        timestamps = np.asarray(stamps_attr.Get(), dtype=np.float64)
        frame_ids = np.asarray(ids_attr.Get(), dtype=np.int64)
    else:
        t = np.asarray(codes, dtype=np.float64)
        timestamps, frame_ids = (t - t[0]) / fps, np.arange(len(frames), dtype=np.int64)
    try:
        return MeshSequence(
            vertices=np.stack(frames) * to_mm,
            faces=indices.reshape(-1, 3),
            fps=fps,
            timestamps=timestamps,
            frame_ids=frame_ids,
            source=start.GetDocumentation() if start.IsValid() else "",
        )
    except ValueError as exc:
        raise MeshIOError(f"invalid mesh sequence ({exc})", path=path) from exc


# --- Per-frame files ---------------------------------------------------------------------------


def frame_path(out_dir: str | Path, stem: str, frame_id: int, fmt: str) -> Path:
    """``out_dir/<stem>.<frame_id:06d>.<fmt>``."""
    return Path(out_dir) / f"{stem}.{int(frame_id):06d}.{fmt}"


def journal_path(out_dir: str | Path, stem: str) -> Path:
    """The per-frame sidecar ``out_dir/<stem>.frames.jsonl`` (fps, timestamps, frame ids)."""
    return Path(out_dir) / f"{stem}.frames.jsonl"


def write_frame(path: str | Path, vertices_mm: np.ndarray, faces: np.ndarray, fmt: str) -> Path:
    """Write one frame as binary PLY or OBJ in metres, atomically (temp file + ``os.replace``).

    ``path`` must end in ``.<fmt>``; vertices are (N, 3) mm and faces (F, 3) 0-based.
    """
    path = Path(path)
    if fmt not in FRAME_FORMATS:
        raise ConfigError(f"per-frame format must be one of {FRAME_FORMATS}, got {fmt!r}")
    if path.suffix.lower() != f".{fmt}":
        raise MeshIOError(f"a {fmt} frame must end in .{fmt}", path=path)
    try:
        write_atomically(path, lambda tmp: write_mesh(tmp, vertices_mm, faces, units="m"))
    except MeshIOError as exc:
        raise MeshIOError(exc.reason, path=path) from exc
    except OSError as exc:
        raise MeshIOError(f"cannot write the frame ({exc})", path=path) from exc
    return path


def read_frame_log(path: Path) -> tuple[dict[str, Any], dict[int, float]]:
    """Header and ``{frame_id: timestamp}`` of a frame sidecar.

    Text after the last newline is a write torn by a crash and is ignored; a torn line that a
    resumed writer has since closed off is skipped with a warning.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise MeshIOError(f"cannot read frame sidecar ({exc})", path=path) from exc
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or header.get("kind") != FRAME_LOG_KIND:
            raise MeshIOError(f"not a {FRAME_LOG_KIND} sidecar", path=path)
        float(header["fps"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MeshIOError(f"malformed frame sidecar header ({exc})", path=path) from exc
    frames: dict[int, float] = {}
    for number, line in enumerate(lines[1:-1], start=2):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            frames[int(entry["frame_id"])] = float(entry["timestamp"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("%s: line %d is torn or malformed, skipped: %.60r", path, number, line)
    return header, frames


def start_frame_log(path: Path, fps: float, source: str) -> bool:
    """Create a ``.frames.jsonl`` sidecar holding its header line, unless one exists.

    Creation is atomic and exclusive (hard link of a finished temporary file), so writers in
    several processes never overwrite each other's header. Returns whether it was created.
    """
    header = {"kind": FRAME_LOG_KIND, "version": 1, "fps": fps, "units": "m", "source": source}
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(json.dumps(header) + "\n", encoding="utf-8")
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise MeshIOError(f"cannot write frame sidecar ({exc})", path=path) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return True


def append_frame_log(path: Path, frame_id: int, timestamp: float) -> None:
    """Append one ``{frame_id, timestamp}`` line to a sidecar (after the frame's files exist)."""
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"frame_id": frame_id, "timestamp": timestamp}) + "\n")
    except OSError as exc:
        raise MeshIOError(f"cannot append to frame sidecar ({exc})", path=path) from exc


def merge_sequences(parts: Sequence[MeshSequence], where: str | Path) -> MeshSequence:
    """Concatenate sequences of one topology, sorted by frame id; ``where`` names errors."""
    first = parts[0]
    for p in parts[1:]:
        if p.faces.shape != first.faces.shape or not np.array_equal(p.faces, first.faces):
            raise MeshIOError("checkpoint parts have different topologies", path=where)
    ids = np.concatenate([p.frame_ids for p in parts])
    order = np.argsort(ids, kind="stable")
    try:
        return MeshSequence(
            np.concatenate([p.vertices for p in parts])[order],
            first.faces,
            first.fps,
            np.concatenate([p.timestamps for p in parts])[order],
            ids[order],
            first.source,
        )
    except ValueError as exc:
        raise MeshIOError(f"cannot merge checkpoint parts ({exc})", path=where) from exc
