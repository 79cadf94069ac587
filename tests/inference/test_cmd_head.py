"""``tempeh head`` on the FLAME stand-in (export and info; render is the renderer's test)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import trimesh

from app import cmd_head
from capture.errors import ConfigError, HeadModelError
from inference.flame import load_flame
from inference.mesh_io import read_mesh


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tempeh")
    cmd_head.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_export_writes_a_ply_in_metres(tmp_path: Path, flame_standin: Path, capsys) -> None:
    out = tmp_path / "head.ply"
    assert _run(["head", "export", "--model", str(flame_standin), "--out", str(out)]) == 0
    assert "5023 vertices" in capsys.readouterr().out
    mesh = trimesh.load(out, process=False)
    assert mesh.vertices.shape == (5023, 3)
    template_mm = load_flame(flame_standin).template.vertices
    np.testing.assert_allclose(mesh.vertices, template_mm / 1000.0, atol=1e-6)


def test_export_with_coefficients_and_jaw(tmp_path: Path, flame_standin: Path) -> None:
    rest, posed = tmp_path / "rest.obj", tmp_path / "posed.obj"
    _run(["head", "export", "--model", str(flame_standin), "--out", str(rest)])
    argv = ["head", "export", "--model", str(flame_standin), "--out", str(posed)]
    argv += ["--shape=-1,0.5", "--expression", "2", "--jaw", "15", "--pose", "0,0.1,0"]
    _run(argv)
    (a, fa), (b, fb) = read_mesh(rest), read_mesh(posed)
    assert a.shape == b.shape == (5023, 3)
    np.testing.assert_array_equal(fa, fb)
    assert np.abs(a - b).max() > 0.1  # mm


def test_info_reports_version_and_components(flame_standin: Path, capsys) -> None:
    _run(["head", "info", "--model", str(flame_standin)])
    out = capsys.readouterr().out
    assert "flame" in out and "FLAME 2017-2020" in out
    assert "5023" in out and "9976" in out
    assert "300 components" in out and "100 components" in out


def test_bad_input_raises_studio_errors(tmp_path: Path, flame_standin: Path) -> None:
    out = str(tmp_path / "x.ply")
    with pytest.raises(ConfigError, match="--shape"):
        _run(["head", "export", "--model", str(flame_standin), "--shape", "a,b", "--out", out])
    with pytest.raises(HeadModelError, match="at most 300"):
        _run(
            [
                "head",
                "export",
                "--model",
                str(flame_standin),
                "--shape",
                "0," * 300 + "1",
                "--out",
                out,
            ]
        )
    with pytest.raises(HeadModelError, match=r"flame\.is\.tue\.mpg\.de"):
        _run(["head", "info", "--model", str(tmp_path / "nope.pkl")])


@pytest.mark.gl
def test_render_writes_a_png(tmp_path: Path, flame_standin: Path) -> None:
    from PIL import Image

    from capture.errors import RenderError
    from render.context import create_headless_context

    try:
        create_headless_context().release()
    except RenderError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")
    out = tmp_path / "head.png"
    _run(["head", "render", "--model", str(flame_standin), "--out", str(out), "--size", "64"])
    with Image.open(out) as img:
        assert img.size[1] == 64 and img.mode == "RGB"
