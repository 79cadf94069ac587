"""``tempeh synth``: write a synthetic multi-view dataset in the TEMPEH/FaMoS split layout."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth``."""
    p = subparsers.add_parser(
        "synth",
        help="render a synthetic performer into a TEMPEH-layout dataset "
        "(images, .tka, scans, registrations, frame lists)",
        description="Images are written at the calibration size divided by --downscale (as "
        "TEMPEH's released *_images_4); the .tka files describe the full-resolution cameras.",
    )
    p.add_argument("--rig", default="default16", help="shipped rig name or a rig file/folder")
    p.add_argument("--model", default="procedural", help="'procedural' or a FLAME pickle path")
    p.add_argument("--subjects", type=int, default=1, help="number of subjects")
    p.add_argument("--sequences", type=int, default=1, help="sequences per subject")
    p.add_argument("--frames", type=int, default=1, help="frames per sequence")
    p.add_argument("--seed", type=int, default=0, help="master seed")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--downscale", type=int, default=4, help="image downscale (default 4)")
    p.add_argument("--rgb", action="store_true", help="RGB images (default grayscale)")
    p.add_argument(
        "--preview", action="store_true", help="write preview.png (all views, first frame)"
    )
    p.add_argument(
        "--frame-step", type=int, default=5, help="frame-number spacing (1: consecutive frames)"
    )
    p.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of subjects in the test list"
    )
    p.add_argument("--static", action="store_true", help="a still head (only noise changes)")
    p.add_argument("--yaw", type=float, help="fixed head yaw, degrees (sign alternates by subject)")
    p.add_argument(
        "--translation",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="fixed head translation, mm",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="processes rendering frames side by side (default: one per core, at most 8)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_synth)


def _load_rig(spec: str):
    from capture.default_rigs import SHIPPED_RIGS, load_shipped_rig

    if spec in SHIPPED_RIGS:
        return load_shipped_rig(spec)
    from capture.rig_io import read_rig

    return read_rig(spec)


def _synth(args: argparse.Namespace) -> int:
    from inference.head_model import load_head_model_data
    from inference.synth import SynthConfig, write_synthetic_dataset

    config = SynthConfig(
        rig=args.rig,
        model=str(args.model),
        subjects=args.subjects,
        sequences=args.sequences,
        frames=args.frames,
        seed=args.seed,
        downscale=args.downscale,
        rgb=args.rgb,
        frame_step=args.frame_step,
        test_fraction=args.test_fraction,
        static=args.static,
        yaw_deg=args.yaw,
        translation_mm=None if args.translation is None else tuple(args.translation),
    )
    rig = _load_rig(args.rig)
    model = load_head_model_data(args.model)
    s = write_synthetic_dataset(
        rig,
        model,
        args.out,
        config,
        progress=not args.no_progress,
        preview=args.preview,
        workers=args.workers,
    )
    done = s.frames_written + s.frames_skipped
    per = s.seconds / s.frames_written if s.frames_written else 0.0
    print(
        f"wrote {s.frames_written} frames, skipped {s.frames_skipped} existing "
        f"({done} in all, {len(rig)} views) to {s.out} in {s.seconds:.1f} s "
        f"({per:.2f} s/frame); {s.bytes_on_disk / 1e6:.1f} MB on disk; "
        f"lists: " + ", ".join(f"{k} {v}" for k, v in s.splits.items())
    )
    if args.preview:
        print(f"preview: {s.out / 'preview.png'}")
    return 0
