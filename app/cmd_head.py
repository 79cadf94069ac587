"""``tempeh head``: inspect, pose, export and render a head model (FLAME or procedural)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from capture.errors import ConfigError, HeadModelError

log = logging.getLogger(__name__)

POSE_NAMES = ("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``head info``, ``head export`` and ``head render``."""
    head = subparsers.add_parser("head", help="inspect, pose, export and render a head model")
    sub = head.add_subparsers(dest="head_command", metavar="HEAD_COMMAND", required=True)

    info = sub.add_parser("info", help="kind, version, sizes, components and regions")
    _add_model_args(info)
    info.set_defaults(handler=_info)

    export = sub.add_parser("export", help="pose the model and write a .ply or .obj mesh")
    _add_model_args(export)
    _add_coefficient_args(export)
    export.add_argument("--out", type=Path, required=True, help="output mesh (.ply or .obj)")
    export.add_argument(
        "--units", choices=("m", "mm"), default="m", help="units written (default m, as TEMPEH)"
    )
    export.set_defaults(handler=_export)

    render = sub.add_parser("render", help="pose the model and render a PNG")
    _add_model_args(render)
    _add_coefficient_args(render)
    render.add_argument("--out", type=Path, required=True, help="output image (.png)")
    render.add_argument("--size", type=int, default=512, help="image size in pixels")
    render.set_defaults(handler=_render)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="'procedural' or the path of a FLAME pickle (generic_model.pkl, flame2023.pkl)",
    )
    p.add_argument(
        "--masks", type=Path, default=None, help="FLAME only: TEMPEH vertex_masks2.npz regions"
    )


def _add_coefficient_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shape",
        default="",
        help="comma-separated identity coefficients, rest zero (negative first: --shape=-1,2)",
    )
    p.add_argument("--expression", default="", help="comma-separated expression coefficients")
    p.add_argument(
        "--pose",
        default="",
        help="up to 15 comma-separated axis-angle values in radians: global, neck, jaw, "
        "left eye, right eye (3 each), rest zero",
    )
    p.add_argument(
        "--jaw", type=float, default=0.0, help="jaw opening in degrees about x (adds to --pose)"
    )


def _floats(text: str, option: str) -> list[float]:
    if not text.strip():
        return []
    try:
        return [float(t) for t in text.split(",")]
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}", field=option) from exc


def _load(args: argparse.Namespace) -> Any:
    from inference.head_model import load_head_model_data

    if args.masks is None:
        return load_head_model_data(args.model)
    if args.model == "procedural":
        raise HeadModelError("--masks applies to FLAME files only", field="--masks")
    from inference.flame import load_flame

    return load_flame(args.model, masks_path=args.masks)


def _posed_vertices(args: argparse.Namespace) -> tuple[Any, Any]:
    """(N, 3) mm vertices and (F, 3) faces of the model posed by the command-line values."""
    import numpy as np
    import torch

    from inference.head_model import HeadModel

    data = _load(args)
    model = HeadModel(data)
    pose = _floats(args.pose, "--pose")
    if len(pose) > 3 * len(POSE_NAMES):
        raise ConfigError(f"expected at most 15 values, got {len(pose)}", field="--pose")
    pose_arr = np.zeros(3 * len(POSE_NAMES))
    pose_arr[: len(pose)] = pose
    pose_arr[6] += np.deg2rad(args.jaw)
    kwargs = {
        name: torch.tensor(pose_arr[3 * i : 3 * i + 3], dtype=torch.float32).unsqueeze(0)
        for i, name in enumerate(POSE_NAMES)
    }
    for option, key in (("--shape", "shape"), ("--expression", "expression")):
        values = _floats(getattr(args, key), option)
        if values:
            kwargs[key] = torch.tensor([values], dtype=torch.float32)
    with torch.no_grad():
        verts = model(**kwargs).vertices[0].numpy().astype(np.float64)
    return verts, data.template.faces


def _info(args: argparse.Namespace) -> int:
    data = _load(args)
    t = data.template
    print(f"kind        {data.kind}")
    print(f"version     {data.version or 'unknown'}")
    print(f"vertices    {t.num_vertices}")
    print(f"faces       {len(t.faces)}")
    print(f"shape       {data.num_shape} components")
    print(f"expression  {data.num_expression} components")
    regions = ", ".join(f"{k} ({len(v)})" for k, v in sorted(t.regions.items()))
    print(f"regions     {regions or 'none'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from inference.mesh_io import write_mesh

    verts, faces = _posed_vertices(args)
    path = write_mesh(args.out, verts, faces, units=args.units)
    print(f"wrote {path} ({len(verts)} vertices, {len(faces)} faces, {args.units})")
    return 0


def _render(args: argparse.Namespace) -> int:
    from render.snapshot import render_views, save_png

    if args.size <= 0:
        raise ConfigError(f"must be positive, got {args.size}", field="--size")
    verts, faces = _posed_vertices(args)
    image = render_views(verts, faces, size=args.size)
    save_png(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0
