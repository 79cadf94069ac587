"""``tempeh export``: convert a mesh sequence between NPZ, USD and per-frame PLY/OBJ."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from capture.errors import ConfigError

FORMAT_CHOICES = ("usd", "ply", "obj", "npz")
_USD_SUFFIXES = (".usd", ".usda", ".usdc")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    p = subparsers.add_parser(
        "export",
        help="convert a mesh sequence (NPZ, USD, folder of PLY/OBJ frames) to another format",
        description="Convert a mesh sequence. MESHES is a .npz, a .usd/.usda/.usdc, or a folder "
        "of <stem>.<frame>.ply/.obj frames (with their <stem>.frames.jsonl sidecar, or --fps).",
    )
    p.add_argument("meshes", type=Path, metavar="MESHES", help="input sequence")
    p.add_argument("--format", required=True, choices=FORMAT_CHOICES, help="output format")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output file (.npz; .usd/.usdc crate or .usda text) or folder (ply, obj)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate: required for frames without a sidecar, otherwise overrides it",
    )
    p.add_argument("--stem", default="frame", help="file name stem of per-frame output")
    p.set_defaults(handler=_export)


def _size(paths: list[Path]) -> str:
    total = float(sum(p.stat().st_size for p in paths))
    for unit in ("B", "KB", "MB"):
        if total < 1024:
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total:.1f} GB"


def _export(args: argparse.Namespace) -> int:
    from inference.mesh_sequence import export_sequence, load_sequence, save_npz, write_usd

    if args.fps is not None and (not math.isfinite(args.fps) or args.fps <= 0):
        raise ConfigError(f"must be positive, got {args.fps}", field="--fps")
    out: Path = args.out
    if args.format == "npz" and out.suffix.lower() != ".npz":
        raise ConfigError(f"an NPZ output must end in .npz, got {str(out)!r}", field="--out")
    if args.format == "usd" and out.suffix.lower() not in _USD_SUFFIXES:
        raise ConfigError(
            f"a USD output must end in .usd, .usda or .usdc, got {str(out)!r}", field="--out"
        )
    if args.format in ("ply", "obj") and out.suffix.lower() in (".npz", *_USD_SUFFIXES):
        raise ConfigError(f"{args.format} frames go to a folder, got {str(out)!r}", field="--out")
    seq = load_sequence(args.meshes, fps=args.fps)
    if args.format == "npz":
        paths = [save_npz(seq, out)]
    elif args.format == "usd":
        paths = [write_usd(seq, out)]
    else:
        paths = export_sequence(seq, out, [args.format], stem=args.stem)
    print(
        f"wrote {seq.num_frames} frames ({seq.vertices.shape[1]} vertices, {len(seq.faces)} "
        f"faces, {seq.fps:g} fps) to {out} as {args.format} "
        f"({len(paths)} file{'s' if len(paths) != 1 else ''}, {_size(paths)})"
    )
    return 0
