"""``tempeh live --headless``: capture → record + live reconstruction → meshes and a preview.

Wiring (threads): the source's grab thread → the session's dispatcher → (a) the take recorder
(every set) and (b) the inference worker in live mode through its feeder (newest set only).
The worker's ``on_result`` (worker thread) appends the raw mesh to a
:class:`~inference.mesh_sequence.SequenceWriter` and hands a frame to the
:class:`~app.preview_video.PreviewVideo` thread. Output under ``--out``::

    take/          the recorded take (unless --no-record)
    meshes/        meshes.npz (mm), meshes.usd, and meshes.<set>.ply with --ply (metres)
    preview.mp4    mesh from a fixed orbit camera beside camera 0, one frame per result
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from capture.errors import CaptureError, ConfigError

log = logging.getLogger(__name__)

MESH_STEM = "meshes"


def run_live(args: argparse.Namespace) -> int:
    """The ``live`` handler (headless only: the window is ``tempeh studio``)."""
    if not args.headless:
        raise ConfigError("only --headless is available from the command line", field="--headless")
    if args.seconds <= 0:
        raise ConfigError(f"must be positive, got {args.seconds}", field="--seconds")
    from app.cmd_capture import make_source
    from app.preview_video import PreviewVideo, caption_for
    from capture.grouping import GroupingMode
    from capture.recorder import TakeRecorder
    from capture.session import CaptureSession
    from inference.mesh_sequence import SequenceWriter
    from inference.pipeline import InferenceWorker, load_pipeline_model
    from inference.temporal_filter import OneEuroFilter

    out: Path = args.out
    loaded = load_pipeline_model(args.model, args.device, args.flame)
    if not loaded.trained:
        print(f"model: {loaded.label}: the meshes are not heads")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tempeh-live-") as work:
        source = make_source(args.source, args.rig, args.size, args.fps, Path(work))
        session = CaptureSession(source, mode=GroupingMode.COUNTER)
        recorder = None
        if not args.no_record:
            config = {"source": args.source, "rig": args.rig, "fps": args.fps, "live": True}
            recorder = TakeRecorder(out / "take", codec="h264", session_config=config)
        formats = ("npz", "usd") + (("ply",) if args.ply else ())
        fps = source.nominal_fps or args.fps
        writer = SequenceWriter(
            out / "meshes", loaded.template.faces, fps, formats, stem=MESH_STEM, source=args.source
        )
        banner = None if loaded.trained else loaded.label
        preview = PreviewVideo(out / "preview.mp4", loaded.template.faces, fps, banner)
        smooth = OneEuroFilter(args.filter) if args.filter else None
        recent: collections.OrderedDict[int, Any] = collections.OrderedDict()
        recent_lock = threading.Lock()
        latencies: list[float] = []
        errors: list[str] = []
        t_first: list[int] = []

        def remember(fs: Any) -> None:  # dispatcher thread: cheap
            with recent_lock:
                recent[fs.sequence] = fs
                while len(recent) > 64:
                    recent.popitem(last=False)

        def on_result(result: Any) -> None:  # worker thread
            if not t_first:
                t_first.append(result.host_timestamp_ns)
            t = (result.host_timestamp_ns - t_first[0]) / 1e9
            writer.append(result.vertices, max(0.0, t), result.sequence)
            latencies.append(result.latency_ms)
            with recent_lock:
                fs = recent.get(result.sequence)
            image = None
            if fs is not None:
                image = next((f.image for f in fs.frames if f is not None), None)
            shown = result.vertices if smooth is None else smooth(result.vertices, t)
            preview.submit(
                shown, image, caption_for(result.sequence, result.latency_ms, loaded.label)
            )

        def on_error(exc: BaseException) -> None:
            errors.append(f"{type(exc).__name__}: {exc}")

        worker = InferenceWorker(loaded, session.rig, "live", on_result, on_error)
        session.set_ready.connect(remember)
        session.error.connect(lambda exc: log.error("capture: %s", exc))
        pausable = hasattr(source, "pause") and hasattr(source, "resume")
        if pausable:
            source.pause()
        t0 = time.monotonic()
        worker.start()
        session.start()
        try:
            if recorder is not None:
                recorder.start(session)
            worker.attach(session)
            if pausable:
                source.resume()
            t_end = time.monotonic() + args.seconds
            while time.monotonic() < t_end and not session.wait_finished(0.1):
                pass
        finally:
            rec_status = recorder.stop() if recorder is not None else None
            session.stop()
            worker.drain(timeout=30.0)
            status = worker.stop()
            wall = time.monotonic() - t0
            paths = writer.close() if status.processed else []
            frames = preview.close()
    cap = session.status()
    lat = np.array([x for x in latencies if not math.isnan(x)])
    print(
        f"captured {cap.grouping.emitted} sets ({cap.grouping.incomplete} incomplete, "
        f"{cap.grouping.cut_off} cut off by the stop) in {wall:.1f} s"
    )
    if rec_status is not None:
        print(f"recorded {rec_status.sets_written} sets to {out / 'take'}")
    print(
        f"meshes {status.processed}, skipped {status.skipped}, errors {status.errors}, "
        f"{status.processed / wall:.2f} meshes/s"
    )
    if lat.size:
        print(
            f"capture-to-mesh latency median {np.median(lat):.0f} ms, "
            f"p95 {np.percentile(lat, 95):.0f} ms"
        )
    for p in paths:
        if p.suffix in (".npz", ".usd"):
            print(f"wrote {p}")
    print(f"preview {out / 'preview.mp4'}: {frames} frames ({preview.dropped} dropped)")
    if not loaded.trained:
        print(f"model: {loaded.label}")
    if errors:
        print(f"first inference error: {errors[0]}")
    if rec_status is not None and rec_status.last_error:
        raise CaptureError(f"recording failed: {rec_status.last_error}")
    return 0
