"""``tempeh info`` (versions, devices, GL renderer, cameras) and ``tempeh demo``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from app.cli import package_version
from capture.errors import RenderError

log = logging.getLogger(__name__)

MAIN_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "opencv-python-headless",
    "PySide6-Essentials",
    "pyqtgraph",
    "moderngl",
    "pypylon",
    "trimesh",
    "av",
    "usd-core",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info`` and ``demo``."""
    p = subparsers.add_parser("info", help="versions, torch devices, OpenGL renderer, cameras")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_info)
    d = subparsers.add_parser(
        "demo", help="render and export the procedural head with a few expressions (headless)"
    )
    d.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    d.add_argument(
        "--png-only", action="store_true", help="write only the contact sheet (README picture)"
    )
    d.set_defaults(handler=_demo)


def _versions() -> dict[str, str]:
    out = {}
    for name in MAIN_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _torch_devices() -> list[str]:
    import torch

    devices = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        devices += [
            f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
    return devices


def _gl_renderer() -> str:
    from render.context import create_headless_context, gl_info

    try:
        ctx = create_headless_context()
    except RenderError as exc:
        return f"unavailable ({exc})"
    try:
        info = gl_info(ctx)
        return f"{info['renderer']} (OpenGL {info['version']})"
    finally:
        ctx.release()


def _cameras() -> dict[str, object]:
    """Count Basler cameras seen by pypylon (respects ``PYLON_CAMEMU`` for the emulator)."""
    try:
        from pypylon import pylon
    except ImportError as exc:
        return {"pypylon": f"unavailable ({exc})", "cameras": 0}
    factory = pylon.TlFactory.GetInstance()
    devices = factory.EnumerateDevices()
    return {
        "pypylon": version("pypylon"),
        "cameras": len(devices),
        "emulated": os.environ.get("PYLON_CAMEMU", "0"),
        "models": sorted({d.GetModelName() for d in devices}),
    }


def _info(args: argparse.Namespace) -> int:
    report = {
        "tempeh-studio": package_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
        "torch_devices": _torch_devices(),
        "opengl": _gl_renderer(),
        "basler": _cameras(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"tempeh-studio {report['tempeh-studio']}  (Python {report['python']})")
    print(f"platform      {report['platform']}")
    for name, ver in report["packages"].items():
        print(f"  {name:24s} {ver}")
    print(f"torch devices {', '.join(report['torch_devices'])}")
    print(f"OpenGL        {report['opengl']}")
    cams = report["basler"]
    print(
        f"pypylon       {cams['pypylon']}: {cams['cameras']} camera(s) found"
        + (
            f" (emulated: PYLON_CAMEMU={cams['emulated']})"
            if cams.get("emulated", "0") != "0"
            else ""
        )
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Pose the procedural head with a few expressions; write a PNG contact sheet and PLYs."""
    import numpy as np
    import torch

    from inference.head_model import HeadModel, load_head_model_data
    from inference.mesh_io import write_mesh
    from render.snapshot import render_views, save_png

    data = load_head_model_data("procedural")
    model = HeadModel(data)
    names = list(data.expression_names) if data.expression_names else []
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, expr_name, jaw_deg in (
        ("neutral", None, 0.0),
        ("smile", "smile", 0.0),
        ("mouth open", None, 18.0),
    ):
        expression = torch.zeros(1, data.num_expression)
        if expr_name is not None and expr_name in names:
            expression[0, names.index(expr_name)] = 2.0
        jaw = torch.tensor([[np.deg2rad(jaw_deg), 0.0, 0.0]])
        with torch.no_grad():
            verts = model(expression=expression, jaw_pose=jaw).vertices[0].numpy()
        if not args.png_only:
            slug = label.replace(" ", "_")
            write_mesh(out / f"head_{slug}.ply", verts, data.template.faces, units="m")
        rows.append(render_views(verts, data.template.faces, size=320))
    sheet = np.concatenate(rows, axis=0)
    save_png(out / "procedural_heads.png", sheet)
    meshes = "" if args.png_only else f" and {len(rows)} PLY meshes (metres)"
    print(f"wrote {out / 'procedural_heads.png'}{meshes} to {out}")
    return 0
