"""PLY and OBJ round trips, checked against trimesh, and mesh I/O errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from capture.errors import MeshIOError
from inference.mesh_io import read_mesh, write_mesh


@pytest.fixture
def mesh() -> tuple[np.ndarray, np.ndarray]:
    """A random 200-vertex mesh, vertices in mm (head-sized)."""
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 90.0, (200, 3)), rng.integers(0, 200, (390, 3))


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
@pytest.mark.parametrize("units", ["m", "mm"])
def test_round_trip_matches_trimesh(tmp_path: Path, mesh, suffix: str, units: str) -> None:
    verts, faces = mesh
    path = write_mesh(tmp_path / "sub" / f"head{suffix}", verts, faces, units=units)
    scale = 1000.0 if units == "m" else 1.0
    other = trimesh.load(path, process=False)
    np.testing.assert_allclose(
        other.vertices, verts / scale, atol=1e-6 * (1 if units == "m" else 100)
    )
    np.testing.assert_array_equal(other.faces, faces)
    v, f = read_mesh(path, units=units)
    np.testing.assert_allclose(v / scale, other.vertices, atol=1e-6)
    np.testing.assert_array_equal(f, faces)
    assert v.dtype == np.float64 and f.dtype == np.int64


def test_ply_is_binary_little_endian_float32(tmp_path: Path, mesh) -> None:
    path = write_mesh(tmp_path / "head.ply", *mesh)
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert "property float x" in header and "element vertex 200" in header


def test_reads_ascii_ply_and_quads_from_other_writers(tmp_path: Path, mesh) -> None:
    verts, faces = mesh
    tm = trimesh.Trimesh(verts / 1000.0, faces, process=False)
    path = tmp_path / "ascii.ply"
    path.write_bytes(trimesh.exchange.ply.export_ply(tm, encoding="ascii"))
    v, f = read_mesh(path)
    np.testing.assert_allclose(v, verts, atol=1e-3)
    np.testing.assert_array_equal(f, faces)
    obj = tmp_path / "quad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nv 0 1 0\nf 1/1 2/1 3/1 -1/1\n")
    v, f = read_mesh(obj, units="mm")
    assert v.shape == (4, 3)
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3]])


def test_errors_name_the_file(tmp_path: Path, mesh) -> None:
    with pytest.raises(MeshIOError, match=r"missing\.ply"):
        read_mesh(tmp_path / "missing.ply")
    with pytest.raises(MeshIOError, match=r"unsupported mesh format '\.stl'"):
        write_mesh(tmp_path / "x.stl", *mesh)
    with pytest.raises(MeshIOError, match="units"):
        write_mesh(tmp_path / "x.ply", *mesh, units="cm")
    with pytest.raises(MeshIOError, match=r"vertices must be \(N, 3\)"):
        write_mesh(tmp_path / "x.ply", np.zeros((4, 2)), mesh[1])
    with pytest.raises(MeshIOError, match="face indices"):
        write_mesh(tmp_path / "x.ply", np.zeros((4, 3)), mesh[1])
    good = write_mesh(tmp_path / "good.ply", *mesh)
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(MeshIOError, match=r"truncated\.ply: truncated PLY"):
        read_mesh(truncated)
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"hello")
    with pytest.raises(MeshIOError, match=r"junk\.ply: not a PLY file"):
        read_mesh(junk)
