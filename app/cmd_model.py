"""``tempeh import-official`` and ``tempeh evaluate``: model files and their evaluation."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.head_data import HeadTemplate
    from inference.network.model import TempehModel

log = logging.getLogger(__name__)

HEATMAP_FRAMES = 3
"""Frames whose error heat maps ``evaluate`` renders."""

HEATMAP_MAX_MM = 10.0
"""Vertex-to-vertex error drawn in full red."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import-official``, ``evaluate`` and ``model-card``."""
    p = subparsers.add_parser(
        "import-official",
        help="convert official TEMPEH coarse + refinement checkpoints into one model file",
        description="Reads the official {'model': state_dict} files (weights only) and writes "
        "a tempeh-studio model built on the FLAME template.",
    )
    p.add_argument("--coarse", type=Path, required=True, help="coarse run dir or .pth file")
    p.add_argument("--refinement", type=Path, required=True, help="refinement run dir or .pth file")
    p.add_argument("--flame", type=Path, required=True, help="FLAME pickle (generic_model.pkl)")
    p.add_argument("--masks", type=Path, default=None, help="TEMPEH vertex_masks2.npz")
    p.add_argument(
        "--compat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reproduce the official quirks the weights were trained with (default on)",
    )
    p.add_argument("--out", type=Path, required=True, help="output model file (.pt)")
    p.set_defaults(handler=_import_official)

    p = subparsers.add_parser(
        "evaluate",
        help="scan-to-mesh and vertex-to-vertex errors of a model on a dataset split",
    )
    p.add_argument("--model", required=True, help="model file (.pt) or 'default'")
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--split", default="test", help="frame list name (default test)")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--views", type=int, default=None, help="use K random views per frame")
    p.add_argument("--max-frames", type=int, default=None, help="evaluate at most N frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the view choice")
    p.add_argument(
        "--scan-points", type=int, default=20000, help="scan points per frame (default 20000)"
    )
    p.add_argument("--flame", type=Path, default=None, help="FLAME pickle for FLAME models")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-heatmaps", action="store_true", help="skip the heat-map renders")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="bf16/fp16: run the networks under autocast and also in fp32 on the same frames; "
        "the report gains 'precision' with how far the vertices move (no heat maps)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "model-card",
        help="accuracy, robustness and jitter table of a model on a `tempeh train-default` folder",
    )
    p.add_argument("--model", required=True, help="model file (.pt) or 'default'")
    p.add_argument("--recipe", type=Path, required=True, help="folder of `tempeh train-default`")
    p.add_argument("--out", type=Path, required=True, help="writes card.json and card.md here")
    p.add_argument("--max-frames", type=int, default=None, help="frames per accuracy row")
    p.add_argument("--scan-points", type=int, default=5000, help="scan points per frame")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(handler=_model_card)


def _import_official(args: argparse.Namespace) -> int:
    import dataclasses

    from inference.flame import load_flame
    from inference.model_store import save_model
    from inference.network.model import TempehModel
    from inference.network.official import import_official
    from inference.network.presets import preset

    template = load_flame(args.flame, args.masks).template
    config = dataclasses.replace(preset("tempeh"), compat=args.compat, template="flame")
    model = TempehModel(config, template)
    import_official(args.coarse, args.refinement, model)
    spec = {
        "kind": "flame",
        "path": str(args.flame),
        "masks": None if args.masks is None else str(args.masks),
    }
    path = save_model(args.out, model, spec)
    print(f"wrote {path}")
    return 0


def _model_card(args: argparse.Namespace) -> int:
    import json

    from inference.model_card import markdown_table, model_card
    from inference.model_store import load_model

    model, template = load_model(args.model, args.device)
    card = model_card(model, template, args.recipe, args.device, args.scan_points, args.max_frames)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    table = markdown_table(card)
    (args.out / "card.md").write_text(table)
    print(table, end="")
    print(f"wrote {args.out / 'card.json'} and {args.out / 'card.md'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from capture.errors import ConfigError
    from inference.evaluation import evaluate, heat_colors, write_report
    from inference.model_store import load_model

    model, template = load_model(args.model, args.device, args.flame)
    args.out.mkdir(parents=True, exist_ok=True)
    renders: list[Path] = []

    def heatmaps(i: int, sample, meshes) -> None:
        if args.no_heatmaps or i >= HEATMAP_FRAMES:
            return
        from render.snapshot import render_views, save_png

        for stage in ("coarse", "refined"):
            colors = heat_colors(meshes[f"{stage}_v2v"], HEATMAP_MAX_MM)
            image = render_views(
                meshes[stage], template.faces, size=256, mode="colors", color=colors
            )
            path = args.out / f"heatmap_{i:03d}_{sample.subject}_{sample.sequence}_{stage}.png"
            save_png(path, image)
            renders.append(path)

    options = {
        "split": args.split,
        "views": args.views,
        "max_frames": args.max_frames,
        "seed": args.seed,
        "device": args.device,
        "scan_points": args.scan_points,
    }
    try:
        if args.precision == "fp32":
            report = evaluate(model, template, args.data, on_frame=heatmaps, **options)
        else:
            report = _precision_report(model, template, args.data, args.precision, options)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--views") from exc
    path = write_report(report, args.out)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"wrote {path} and {len(renders)} heat maps ({report['frames']} frames)")
    for stage in ("coarse", "refined"):
        stats = report[stage]
        print(
            f"{stage:8s} v2v median {_fmt(stats['v2v']['median_mm'])} mm, "
            f"s2m median {_fmt(stats['s2m']['median_mm'])} mm "
            f"(on the head: {_fmt(stats['s2m_head']['median_mm'])} mm)"
        )
    if "precision" in report:
        info = report["precision"]
        for stage, moved in info["vs_fp32"].items():
            print(
                f"{stage:8s} {info['dtype']} vs fp32 on {info['device']}: vertices moved "
                f"median {_fmt(moved['median_mm'])} mm, p90 {_fmt(moved['p90_mm'])} mm, "
                f"max {_fmt(moved['max_mm'])} mm, {100 * moved['over_1mm']:.3f} % over 1 mm; "
                "fp32 v2v median "
                f"{_fmt(info['fp32'][stage]['v2v']['median_mm'])} mm"
            )
    return 0


def _precision_report(
    model: TempehModel, template: HeadTemplate, data: Path, name: str, options: dict
) -> dict:
    """The reduced-precision report, with ``precision``: dtype, device, how far the vertices
    moved against fp32 (mm) and the fp32 errors."""
    from inference.evaluation import STAGES
    from inference.precision import autocast_dtype, compare_precision

    both = compare_precision(model, template, data, autocast_dtype(name), **options)
    report = both["reduced"]
    report["precision"] = {
        "dtype": name,
        "device": str(options["device"]),
        "vs_fp32": both["vs_fp32"],
        "fp32": {stage: both["fp32"][stage] for stage in STAGES},
    }
    return report


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
