"""``tempeh train`` (a coarse or refinement stage on a TEMPEH-layout dataset) and
``tempeh export-model`` (two runs → one model file for ``evaluate`` and reconstruction)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``export-model`` and ``train-default``."""
    p = subparsers.add_parser(
        "train",
        help="train the coarse or refinement stage (CPU or CUDA; DDP under torchrun)",
        description="Writes RUN_DIR/config.json, RUN_DIR/checkpoints/step_XXXXXXXX.pt and "
        "TensorBoard logs in RUN_DIR/logs. Launch with `python -m torch.distributed.run "
        "--nproc_per_node N -m app.cli train ...` for several processes (nccl on CUDA, gloo on "
        "the CPU; TEMPEH_DIST_BACKEND=gloo overrides, e.g. for several processes on one GPU).",
    )
    p.add_argument("--stage", choices=("coarse", "refine"), required=True)
    p.add_argument("--preset", choices=("lite", "tempeh"), default="lite")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (tempeh synth)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--steps", type=int, default=1000, help="total optimizer steps")
    p.add_argument("--coarse-run", type=Path, help="refine: coarse run feeding the refinement")
    p.add_argument(
        "--template",
        help="head topology: 'procedural' or the path of a FLAME pickle (generic_model.pkl); it "
        "must match the data's registrations. Default: the preset's (procedural for lite; the "
        "tempeh preset is built on FLAME, which is not shipped); a resumed run or a coarse run "
        "feeding a refinement gives its own",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    p.add_argument("--batch-size", type=int, default=2, help="frames per step and process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--grid-shift-mm",
        type=float,
        help="coarse: move the search grid by up to this per axis while training, so heads "
        "away from the training data's positions are found (default 0; a resumed run keeps its "
        "own)",
    )
    p.add_argument(
        "--grid-rotation-deg",
        type=float,
        help="coarse: largest angle of the random search-grid rotation while training "
        "(default: 45 for lite, whose heatmap prior needs it; 180, any rotation as TEMPEH, for "
        "tempeh; a resumed run keeps its own)",
    )
    p.add_argument(
        "--coarse-offset-mm",
        type=float,
        help="refine: move the coarse meshes by smooth random offsets of this mean length while "
        "training, so the refinement learns to find the surface (default 0; a resumed run keeps "
        "its own)",
    )
    p.add_argument("--val-every", type=int, default=100, help="validation interval (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint interval")
    p.add_argument(
        "--keep-checkpoints",
        type=int,
        default=5,
        help="checkpoints kept, newest first (0: all)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_train)
    e = subparsers.add_parser(
        "export-model",
        help="combine the latest checkpoints of a coarse and a refinement run into MODEL.pt",
    )
    e.add_argument("--coarse-run", type=Path, required=True, help="coarse training run folder")
    e.add_argument("--refine-run", type=Path, required=True, help="refinement run folder")
    e.add_argument("--out", type=Path, required=True, help="model file to write (.pt)")
    e.set_defaults(handler=_export)
    d = subparsers.add_parser(
        "train-default",
        help="regenerate the synthetic data and retrain the embedded default model (resumable)",
        description="Runs the recipe of inference/training/default_recipe.py into OUT: "
        "synthetic training and held-out test sets, the coarse run, the refinement run and "
        "OUT/default.pt. Interrupt it at any time and run it again to continue.",
    )
    d.add_argument("--out", type=Path, required=True, help="recipe folder")
    d.add_argument(
        "--stop-after-minutes", type=float, help="stop training after this long (resumable)"
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.add_argument(
        "--coarse-steps",
        type=int,
        help="train the coarse stage longer than the recipe's 10000 steps (x0.03, then x0.01); "
        "continues a finished coarse run",
    )
    d.add_argument(
        "--workers",
        type=int,
        help="processes rendering the synthetic data (default: one per core, at most 8)",
    )
    d.set_defaults(handler=_train_default)


def _train(args: argparse.Namespace) -> int:
    from inference.training.config import CONFIG_NAME, TrainConfig
    from inference.training.trainer import train

    cfg = TrainConfig.from_preset(
        args.preset,
        stage=args.stage,
        data=str(args.data),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        coarse_run=None if args.coarse_run is None else str(args.coarse_run),
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        grid_shift_mm=args.grid_shift_mm or 0.0,
        coarse_offset_mm=args.coarse_offset_mm or 0.0,
        **({} if args.grid_rotation_deg is None else {"grid_rotation_deg": args.grid_rotation_deg}),
    )
    template = args.template
    if args.resume and (args.out / CONFIG_NAME).is_file():
        # this command has no schedule option: a resumed run keeps its own (its last phase
        # covers any added steps); the default one is for the --steps of a new run
        saved = TrainConfig.load(args.out)
        cfg = dataclasses.replace(cfg, schedule=saved.schedule)
        for key in ("grid_shift_mm", "grid_rotation_deg", "coarse_offset_mm"):
            if getattr(args, key) is None:
                cfg = dataclasses.replace(cfg, **{key: getattr(saved, key)})
        template = template or saved.model.template
    elif args.coarse_run is not None and (args.coarse_run / CONFIG_NAME).is_file():
        template = template or TrainConfig.load(args.coarse_run).model.template
    if template is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, template=template))
    result = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if result.checkpoint is not None:
        print(f"step {result.step}: {result.checkpoint} ({result.steps_per_second:.2f} steps/s)")
    return 0


def _train_default(args: argparse.Namespace) -> int:
    from inference.training.default_recipe import COARSE_STEPS, REFINE_STEPS, run_recipe

    result = run_recipe(
        args.out,
        args.stop_after_minutes,
        not args.no_progress,
        args.coarse_steps,
        workers=args.workers,
    )
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in result.seconds.items())
    coarse_steps = args.coarse_steps or COARSE_STEPS
    print(
        f"coarse {result.coarse_step}/{coarse_steps} steps, "
        f"refine {result.refine_step}/{REFINE_STEPS} steps ({times})"
    )
    if result.model is None:
        longer = f" --coarse-steps {args.coarse_steps}" if args.coarse_steps else ""
        print(
            f"not finished: run `tempeh train-default --out {args.out}{longer}` again to continue"
        )
        return 1
    ship = f"cp {args.out}/default.pt {args.out}/default.json resources/models/"
    print(f"wrote {result.model}; ship it with: {ship}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from inference.training.export import export_runs

    path = export_runs(args.coarse_run, args.refine_run, args.out)
    print(f"wrote {path}")
    return 0
