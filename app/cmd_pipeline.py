"""``tempeh reconstruct``, ``tempeh bench`` and ``tempeh live``: the inference pipeline.

The work lives in :mod:`app.pipeline_reconstruct`, :mod:`app.pipeline_bench` and
:mod:`app.pipeline_live`; this module only declares the options (torch is imported by the
handlers, so ``tempeh --help`` stays fast).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reconstruct``, ``bench`` and ``live``."""
    r = subparsers.add_parser(
        "reconstruct",
        help="offline: every frame of a take, dataset or video folder to mesh files",
        description="Reconstructs every frame set in order and writes meshes; frames already "
        "written are skipped (resumable). Under 'python -m torch.distributed.run "
        "--nproc_per_node N -m app.cli reconstruct ...' each process takes every N-th frame "
        "and rank 0 writes the sequence files at the end.",
    )
    r.add_argument(
        "input",
        type=Path,
        help="a take, a FaMoS/TEMPEH dataset root or a folder of per-camera videos (with --rig)",
    )
    r.add_argument("--out", type=Path, required=True, help="output folder")
    _model_args(r)
    r.add_argument(
        "--formats",
        default="ply,npz",
        help="comma-separated mesh formats: ply, obj, npz, usd (default ply,npz; FaMoS input "
        "always writes the per-frame PLYs of the official layout)",
    )
    r.add_argument("--frames", default=None, help="a:b: only set positions a..b-1 (per sequence)")
    r.add_argument("--rig", default=None, help="rig file (video folders; FaMoS override)")
    r.add_argument("--split", default="test", help="FaMoS input: frame list name (default test)")
    r.add_argument("--subject", default=None, help="FaMoS input: only this subject")
    r.add_argument("--sequence", default=None, help="FaMoS input: only this sequence")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(handler=_reconstruct)

    b = subparsers.add_parser(
        "bench",
        help="inference timings per stage, frames/s, peak memory, live latency",
        description="Renders the procedural head into the default16 rig and times the worker "
        "on it; --live adds the emulated rig -> session -> worker path.",
    )
    b.add_argument("--preset", choices=("lite", "tempeh"), default="lite")
    b.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    b.add_argument("--views", type=int, default=16, help="cameras used (1..16, default 16)")
    b.add_argument(
        "--model",
        default=None,
        help="default or a model file (default: the shipped weights for lite, "
        "random weights for tempeh)",
    )
    b.add_argument("--flame", type=Path, default=None, help="FLAME pickle for FLAME models")
    b.add_argument("--iterations", type=int, default=10, help="timed runs (default 10)")
    b.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    b.add_argument("--size", default=None, help="WxH: resize the rig (default its own size)")
    b.add_argument(
        "--live", type=float, default=0.0, help="also run the live path for SECONDS (emulated rig)"
    )
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default all)")
    b.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="CUDA: autocast dtype of the 2D and 3D networks (auto: what the worker uses, "
        "bf16 where supported); the CPU always runs fp32",
    )
    b.add_argument(
        "--frames",
        type=Path,
        default=None,
        metavar="DIR",
        help="read the input frames from DIR/set_K/CAMERA.png, rendering and writing them there "
        "first where they are missing (bench a machine without OpenGL on frames rendered "
        "elsewhere)",
    )
    b.add_argument("--json", action="store_true", help="print exactly one JSON object")
    b.set_defaults(handler=_bench)

    v = subparsers.add_parser(
        "live",
        help="capture -> record + reconstruct live; --headless writes meshes and a preview video",
    )
    v.add_argument("--headless", action="store_true", help="no window (the only mode here)")
    v.add_argument("--source", default="emulated", help="emulated | pylon | replay:PATH")
    v.add_argument("--seconds", type=float, default=10.0, help="how long to run (s)")
    v.add_argument("--out", type=Path, required=True, help="output folder (take, meshes, video)")
    _model_args(v)
    v.add_argument("--rig", default=None, help="shipped rig name or rig file (default default16)")
    v.add_argument("--size", default=None, help="WxH: rescale the rig's images")
    v.add_argument("--fps", type=float, default=20.0, help="target sets per second")
    v.add_argument("--no-record", action="store_true", help="do not record the take")
    v.add_argument("--ply", action="store_true", help="also write per-frame PLYs (metres)")
    v.add_argument(
        "--filter",
        type=float,
        default=None,
        metavar="HZ",
        help="smooth the preview with a One-Euro filter of this cut-off (meshes stay raw)",
    )
    v.set_defaults(handler=_live)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="default",
        help="'default' (the shipped model; random weights while none is shipped) or a .pt",
    )
    p.add_argument("--flame", type=Path, default=None, help="FLAME pickle for FLAME models")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")


def _reconstruct(args: argparse.Namespace) -> int:
    from app.pipeline_reconstruct import run_reconstruct

    return run_reconstruct(args)


def _bench(args: argparse.Namespace) -> int:
    from app.pipeline_bench import run_bench

    return run_bench(args)


def _live(args: argparse.Namespace) -> int:
    from app.pipeline_live import run_live

    return run_live(args)
