"""``tempeh bench``: inference timings on realistic input, and the live path's latency.

Input: the procedural head rendered by the synthetic performer into the ``default16`` rig
(the first ``--views`` cameras spread over the rig), so a trained model reconstructs a real
head. Timings come from the worker's own per-stage clock (CUDA synchronised); peak memory is
the process's peak RSS on the CPU and ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.camera import Camera, Rig
from capture.errors import ConfigError

log = logging.getLogger(__name__)

STAGES = ("preprocess", "coarse", "refine", "total")
RENDERED_SETS = 2
"""Distinct rendered sets the timed runs cycle through."""


def pick_views(rig: Rig, views: int) -> Rig:
    """``views`` cameras spread evenly over ``rig`` (view order kept)."""
    if not 1 <= views <= len(rig):
        raise ConfigError(f"must be in 1..{len(rig)}, got {views}", field="--views")
    idx = sorted({round(float(i)) for i in np.linspace(0, len(rig) - 1, views)})
    return Rig(tuple(rig.cameras[i] for i in idx), rig.name, dict(rig.metadata))


def rendered_sets(rig: Rig, count: int, frames_dir: Path | None = None) -> list[Any]:
    """``count`` FrameSets of the synthetic performer filmed by ``rig``.

    With ``frames_dir`` the images are read from ``frames_dir/set_<k>/<camera>.png`` where
    they are all there, and otherwise rendered and written there first: a machine without
    OpenGL (a headless GPU server, say) is benched on frames rendered elsewhere.
    """
    from capture.frames import Frame, FrameSet

    images = _render(rig, count) if frames_dir is None else _stored(rig, count, frames_dir)
    sets = []
    for k, imgs in enumerate(images):
        now = time.monotonic_ns()
        frames = tuple(
            Frame(np.ascontiguousarray(img), i, cam.name, k, now)
            for i, (img, cam) in enumerate(zip(imgs, rig.cameras, strict=True))
        )
        sets.append(FrameSet(k, frames, rig))
    return sets


def _render(rig: Rig, count: int) -> list[list[np.ndarray]]:
    from inference.procedural_head import load_procedural_head
    from inference.synth import PerformerFrames

    provider = PerformerFrames(rig, load_procedural_head(), seed=0, fps=20.0)
    try:
        return [list(provider(k * 5)) for k in range(count)]
    finally:
        provider.close()


def _stored(rig: Rig, count: int, frames_dir: Path) -> list[list[np.ndarray]]:
    """The sets read from ``frames_dir``, rendered and written there first unless all are."""
    paths = [[frames_dir / f"set_{k}" / f"{cam.name}.png" for cam in rig] for k in range(count)]
    if all(p.is_file() for row in paths for p in row):
        return [[_read_png(p, cam) for p, cam in zip(row, rig, strict=True)] for row in paths]
    images = _render(rig, count)
    for row, imgs in zip(paths, images, strict=True):
        row[0].parent.mkdir(parents=True, exist_ok=True)
        for path, img in zip(row, imgs, strict=True):
            if not cv2.imwrite(str(path), img):
                raise ConfigError("could not write a frame", path=path, field="--frames")
    return images


def _read_png(path: Path, cam: Camera) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConfigError("not a readable image", path=path, field="--frames")
    if img.shape[:2] != (cam.height, cam.width):
        raise ConfigError(
            f"is {img.shape[1]}x{img.shape[0]}, camera {cam.name!r} takes "
            f"{cam.width}x{cam.height} (render the frames with the same --size)",
            path=path,
            field="--frames",
        )
    return img


def stats(values: list[float]) -> dict[str, float]:
    """Median and 95th percentile, rounded to 0.01."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median": math.nan, "p95": math.nan}
    return {"median": round(float(np.median(a)), 2), "p95": round(float(np.percentile(a, 95)), 2)}


def _loaded(args: argparse.Namespace) -> Any:
    import torch

    from inference.loaded_model import resolve_device
    from inference.model_store import DEFAULT_MODEL
    from inference.network.model import TempehModel
    from inference.network.presets import preset
    from inference.pipeline import LoadedModel, load_pipeline_model
    from inference.procedural_head import load_procedural_head

    if args.model is not None:
        return load_pipeline_model(args.model, args.device, args.flame)
    if args.preset == "lite" and DEFAULT_MODEL.is_file():
        # the shipped weights are the lite preset: time what users run (a trained model's
        # head-shaped output, not an untrained network's blob)
        return load_pipeline_model("default", args.device)
    device = resolve_device(args.device)
    template = load_procedural_head().template
    torch.manual_seed(0)
    model = TempehModel(preset(args.preset), template).to(device).eval()
    label = f"{args.preset} (random weights)"
    return LoadedModel(model, template, label, False, None, device)


def run_bench(args: argparse.Namespace) -> int:
    """The ``bench`` handler."""
    import torch

    from app.cmd_capture import load_rig
    from inference.pipeline import InferenceWorker

    if args.iterations < 1 or args.warmup < 0:
        raise ConfigError("--iterations must be >= 1 and --warmup >= 0", field="--iterations")
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = _loaded(args)
    rig = pick_views(load_rig("default16", args.size), args.views)
    cuda = loaded.device.type == "cuda"
    sets = rendered_sets(rig, RENDERED_SETS, args.frames)
    worker = InferenceWorker(loaded, rig, mode="offline", precision=args.precision)
    for k in range(args.warmup):
        worker.reconstruct(sets[k % len(sets)])
    if cuda:
        torch.cuda.reset_peak_memory_stats(loaded.device)
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    t0 = time.perf_counter()
    for k in range(args.iterations):
        result = worker.reconstruct(sets[k % len(sets)])
        for s in STAGES:
            timings[s].append(result.timings_ms[s])
    wall = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated(loaded.device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    w, h = rig.cameras[0].image_size
    report: dict[str, Any] = {
        "device": str(loaded.device),
        "preset": args.preset if args.model is None else "model",
        "model": loaded.label,
        "precision": worker.precision,
        "views": len(rig),
        "image_size": f"{w}x{h}",
        "threads": torch.get_num_threads(),
        "stages_ms": {s: stats(v) for s, v in timings.items()},
        "fps": round(args.iterations / wall, 3),
        "peak_mem_mb": round(peak, 1),
    }
    if args.live > 0:
        report["live"] = live_latency(loaded, args.size, args.live)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


def live_latency(loaded: Any, size: str | None, seconds: float) -> dict[str, Any]:
    """Emulated default16 rig → session → live worker for ``seconds``: latency and skips."""
    from app.cmd_capture import make_source
    from capture.grouping import GroupingMode
    from capture.session import CaptureSession
    from inference.pipeline import InferenceWorker

    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tempeh-bench-live-") as work:
        source = make_source("emulated", "default16", size, 20.0, Path(work))
        session = CaptureSession(source, mode=GroupingMode.COUNTER)
        worker = InferenceWorker(
            loaded, session.rig, "live", on_result=lambda r: latencies.append(r.latency_ms)
        )
        worker.start()
        session.start()
        t0 = time.monotonic()
        try:
            worker.attach(session)
            time.sleep(seconds)
        finally:
            session.stop()
            worker.drain(timeout=60.0)
            status = worker.stop()
            wall = time.monotonic() - t0
    cap = session.status()
    return {
        "views": len(session.rig),
        "seconds": round(wall, 2),
        "sets": cap.grouping.emitted,
        "meshes": status.processed,
        "skipped": status.skipped,
        "errors": status.errors,
        "mesh_fps": round(status.processed / wall, 3),
        "latency_ms": stats(latencies),
    }


def print_report(report: dict[str, Any]) -> None:
    """The human-readable table."""
    print(
        f"{report['model']} on {report['device']} ({report['precision']}, "
        f"{report['threads']} threads), "
        f"{report['views']} views at {report['image_size']}"
    )
    print(f"{'stage':>12} {'median ms':>10} {'p95 ms':>10}")
    for stage, s in report["stages_ms"].items():
        print(f"{stage:>12} {s['median']:>10.1f} {s['p95']:>10.1f}")
    print(f"{'frames/s':>12} {report['fps']:>10.2f}")
    print(f"{'peak MiB':>12} {report['peak_mem_mb']:>10.0f}")
    live = report.get("live")
    if live:
        lat = live["latency_ms"]
        print(
            f"live: {live['sets']} sets in {live['seconds']} s -> {live['meshes']} meshes "
            f"({live['mesh_fps']}/s), {live['skipped']} skipped, latency median "
            f"{lat['median']} ms, p95 {lat['p95']} ms"
        )
