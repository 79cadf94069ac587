"""Triangle-mesh files: PLY (binary little-endian written; binary and ascii read) and OBJ.

Vertices are passed in and returned in **millimetres**; ``units`` says what the file holds.
TEMPEH writes FLAME-topology meshes in metres, hence ``units="m"`` by default. The format is
chosen by the file extension (``.ply`` or ``.obj``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from capture.errors import MeshIOError

log = logging.getLogger(__name__)

_SCALE_TO_MM = {"m": 1000.0, "mm": 1.0}
_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def _scale(units: str, path: Path) -> float:
    if units not in _SCALE_TO_MM:
        raise MeshIOError(f"units must be 'm' or 'mm', got {units!r}", path=path)
    return _SCALE_TO_MM[units]


def _format(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in (".ply", ".obj"):
        raise MeshIOError(f"unsupported mesh format {ext!r} (use .ply or .obj)", path=path)
    return ext[1:]


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray, units: str = "m") -> Path:
    """Write a triangle mesh as binary little-endian PLY (float32) or OBJ.

    Parameters
    ----------
    path : str or Path
        Destination, ``.ply`` or ``.obj``; parent folders are created.
    vertices : np.ndarray
        (N, 3) vertex positions, mm.
    faces : np.ndarray
        (F, 3) int triangles, 0-based.
    units : {"m", "mm"}
        Units written to the file (default metres, the TEMPEH convention).

    Raises
    ------
    MeshIOError
        Bad shapes, unknown extension or units, or the file cannot be written.
    """
    path = Path(path)
    fmt = _format(path)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshIOError(f"vertices must be (N, 3), got {v.shape}", path=path)
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and not np.issubdtype(f.dtype, np.integer)):
        raise MeshIOError(f"faces must be (F, 3) integers, got {f.dtype} {f.shape}", path=path)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise MeshIOError(f"face indices must lie in [0, {len(v)})", path=path)
    v = v / _scale(units, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "ply":
            _write_ply(path, v, f)
        else:
            _write_obj(path, v, f)
    except OSError as exc:
        raise MeshIOError(f"cannot write mesh ({exc})", path=path) from exc
    log.debug("wrote %s: %d vertices, %d faces (%s)", path, len(v), len(f), units)
    return path


def read_mesh(path: str | Path, units: str = "m") -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh from PLY (binary or ascii) or OBJ.

    Parameters
    ----------
    path : str or Path
        ``.ply`` or ``.obj`` file.
    units : {"m", "mm"}
        Units the file holds (default metres).

    Returns
    -------
    vertices : np.ndarray
        (N, 3) float64, mm.
    faces : np.ndarray
        (F, 3) int64, 0-based (OBJ polygons are fan-triangulated).

    Raises
    ------
    MeshIOError
        Missing, truncated or malformed file, or unsupported content.
    """
    path = Path(path)
    fmt = _format(path)
    scale = _scale(units, path)
    if not path.is_file():
        raise MeshIOError("mesh file not found", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshIOError(f"cannot read mesh ({exc})", path=path) from exc
    try:
        v, f = _read_ply(data, path) if fmt == "ply" else _read_obj(data, path)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise MeshIOError(f"malformed {fmt.upper()} file ({exc})", path=path) from exc
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise MeshIOError(f"face indices outside [0, {len(v)})", path=path)
    return v.astype(np.float64) * scale, f.astype(np.int64)


def _write_ply(path: Path, v: np.ndarray, f: np.ndarray) -> None:
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by tempeh-studio\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_rec = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_rec["n"] = 3
    face_rec["i"] = f
    with path.open("wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(v.astype("<f4").tobytes())
        fh.write(face_rec.tobytes())


def _write_obj(path: Path, v: np.ndarray, f: np.ndarray) -> None:
    with path.open("w", encoding="ascii") as fh:
        fh.write("# written by tempeh-studio\n")
        np.savetxt(fh, v, fmt="v %.9g %.9g %.9g")
        np.savetxt(fh, f.astype(np.int64) + 1, fmt="f %d %d %d")


def _parse_ply_header(data: bytes, path: Path) -> tuple[str, list[dict], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MeshIOError("not a PLY file (no 'ply' magic or 'end_header')", path=path)
    body = data.index(b"\n", end) + 1
    fmt = ""
    elements: list[dict] = []
    for line in data[:end].decode("ascii").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append({"name": words[1], "count": int(words[2]), "props": []})
        elif words[0] == "property":
            if not elements:
                raise MeshIOError("property before any element", path=path)
            if words[1] == "list":
                prop = (words[4], "list", _PLY_TYPES[words[2]], _PLY_TYPES[words[3]])
            else:
                prop = (words[2], _PLY_TYPES[words[1]])
            elements[-1]["props"].append(prop)
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise MeshIOError(f"unsupported PLY format {fmt!r}", path=path)
    return fmt, elements, body


def _read_ply(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    fmt, elements, pos = _parse_ply_header(data, path)
    if fmt == "ascii":
        return _read_ply_ascii(data[pos:], elements, path)
    order = "<" if fmt == "binary_little_endian" else ">"
    verts = np.zeros((0, 3))
    faces = np.zeros((0, 3), dtype=np.int64)
    for el in elements:
        fields = []
        for prop in el["props"]:
            if prop[1] == "list":
                # Only fixed triangle lists can be read vectorised; checked below.
                fields += [("_n", order + prop[2]), (prop[0], order + prop[3], (3,))]
            else:
                fields.append((prop[0], order + prop[1]))
        dtype = np.dtype(fields)
        need = dtype.itemsize * el["count"]
        if pos + need > len(data):
            raise MeshIOError(f"truncated PLY: element {el['name']!r} is incomplete", path=path)
        rec = np.frombuffer(data, dtype=dtype, count=el["count"], offset=pos)
        pos += need
        if el["name"] == "vertex":
            verts = np.stack([rec["x"], rec["y"], rec["z"]], axis=1)
        elif el["name"] == "face":
            faces = _face_list(rec, path)
        elif any(p[1] == "list" for p in el["props"]):
            break
    return verts, faces


def _face_list(rec: np.ndarray, path: Path) -> np.ndarray:
    names = [n for n in rec.dtype.names if n in ("vertex_indices", "vertex_index")]
    if not names:
        raise MeshIOError("face element has no vertex_indices list", path=path)
    if rec.size and np.any(rec["_n"] != 3):
        raise MeshIOError("only triangle faces are supported in PLY files", path=path)
    return rec[names[0]].astype(np.int64)


def _read_ply_ascii(body: bytes, elements: list[dict], path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = body.decode("ascii").splitlines()
    verts = np.zeros((0, 3))
    faces = np.zeros((0, 3), dtype=np.int64)
    start = 0
    for el in elements:
        rows = lines[start : start + el["count"]]
        if len(rows) < el["count"]:
            raise MeshIOError(f"truncated PLY: element {el['name']!r} is incomplete", path=path)
        start += el["count"]
        if el["name"] == "vertex":
            names = [p[0] for p in el["props"]]
            table = np.array([r.split() for r in rows], dtype=np.float64).reshape(len(rows), -1)
            verts = table[:, [names.index("x"), names.index("y"), names.index("z")]]
        elif el["name"] == "face":
            table = np.array([r.split()[:4] for r in rows], dtype=np.int64).reshape(len(rows), -1)
            if table.size and (table.shape[1] != 4 or np.any(table[:, 0] != 3)):
                raise MeshIOError("only triangle faces are supported in PLY files", path=path)
            faces = table[:, 1:4]
    return verts, faces


_OBJ_VERTEX = re.compile(rb"^v\s+(\S+)\s+(\S+)\s+(\S+)", re.MULTILINE)


def _read_obj(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    verts = np.array(_OBJ_VERTEX.findall(data), dtype=np.float64).reshape(-1, 3)
    tris: list[tuple[int, int, int]] = []
    for line in data.split(b"\n"):
        if not line.startswith(b"f ") and not line.startswith(b"f\t"):
            continue
        idx = [int(tok.split(b"/")[0]) for tok in line.split()[1:]]
        if len(idx) < 3:
            raise MeshIOError(f"face with fewer than 3 vertices: {line!r}", path=path)
        idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
        tris.extend((idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1))
    return verts, np.array(tris, dtype=np.int64).reshape(-1, 3)
