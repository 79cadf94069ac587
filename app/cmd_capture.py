"""``tempeh record``, ``tempeh takes show`` and ``tempeh bench-capture``.

The emulated source plays frames of the synthetic performer (:class:`inference.synth.
PerformerFrames`: the procedural head rendered into the rig's cameras) through pylon's camera
emulator; ``--pattern`` plays :func:`capture.pattern.pattern_provider`'s test pattern instead (a
disc at the projection of a moving point: what the synchronisation tests and the capture
benchmark use, as it costs no rendering).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from capture.camera import Rig
from capture.errors import CaptureError, ConfigError

log = logging.getLogger(__name__)

EMULATED_SETS = 48
"""Test-pattern sets written for the emulator (they loop)."""
PERFORMER_SETS = 24
"""Rendered performer sets written for the emulator (they loop; rendering 16 views costs
about 0.2-0.5 s a set on two cores, so this bounds the start-up time)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record``, ``takes`` and ``bench-capture``."""
    r = subparsers.add_parser("record", help="record a take from cameras, the emulator or a take")
    r.add_argument(
        "--source", default="emulated", help="emulated | pylon | replay:PATH (default emulated)"
    )
    r.add_argument("--seconds", type=float, default=5.0, help="recording length (s)")
    r.add_argument("--out", type=Path, required=True, help="take folder to create")
    _rig_args(r)
    _replay_args(r)
    r.add_argument("--codec", choices=("h264", "ffv1", "png"), default="h264")
    r.add_argument(
        "--trigger",
        choices=("software", "hardware", "free_run"),
        default="software",
        help="pylon synchronisation: software trigger, FrameStart on Line1, or PTP free run "
        "grouped by device timestamps (the emulator always uses software trigger)",
    )
    r.add_argument(
        "--pattern",
        action="store_true",
        help="emulated cameras show a synchronisation test pattern instead of the rendered head",
    )
    r.set_defaults(handler=_record)

    t = subparsers.add_parser("takes", help="inspect recorded takes")
    tsub = t.add_subparsers(dest="takes_command", metavar="ACTION", required=True)
    s = tsub.add_parser("show", help="sets, rate, incomplete and lost sets, duration")
    s.add_argument(
        "take", type=Path, help="a take, a FaMoS/TEMPEH dataset root or a folder of videos"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--rig", default=None, help="rig file for a folder of videos")
    _replay_args(s)
    s.set_defaults(handler=_takes_show)

    b = subparsers.add_parser(
        "bench-capture", help="emulated cameras, software trigger, recording: sets/s and CPU"
    )
    b.add_argument("--cameras", type=int, default=16)
    b.add_argument("--seconds", type=float, default=60.0)
    b.add_argument("--size", default="640x480", help="WxH pixels")
    b.add_argument("--fps", type=float, default=20.0, help="target sets per second")
    b.add_argument("--codec", choices=("h264", "ffv1", "png"), default="h264")
    b.add_argument("--out", type=Path, default=None, help="keep the take here (default: temp)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(handler=_bench)


def _rig_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rig",
        default=None,
        help="shipped rig name or rig file path (default default16; for replay of a video "
        "folder: its rig file)",
    )
    p.add_argument("--fps", type=float, default=20.0, help="target sets per second")
    p.add_argument("--size", default=None, help="WxH: rescale the rig's images (e.g. 640x480)")


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subject", default=None, help="FaMoS replay: subject (default the first)")
    p.add_argument("--sequence", default=None, help="FaMoS replay: sequence (default the first)")


REPLAY_KINDS = (
    "a take recorded by tempeh (session.json, rig.json, timestamps.jsonl, video/)",
    "a FaMoS/TEMPEH dataset root (images/<subject>/<sequence>/<frame>/"
    "<sequence>.<frame>.<camera>.png with calibrations/<subject>/<sequence>/*.tka or --rig)",
    "a folder of per-camera videos (.mp4 .mkv .avi .mov) or image folders named by camera "
    "serial or name (cam_<serial>.mp4), with --rig (or a rig.json/.tka files inside)",
)


def replay_kind(path: Path) -> str:
    """``"take"``, ``"famos"`` or ``"videos"`` by content; ConfigError listing what is accepted."""
    from capture.sources.famos_source import is_famos_root
    from capture.sources.video_folder_source import media_entries
    from capture.take import SESSION_FILE

    if (path / SESSION_FILE).is_file():
        return "take"
    if is_famos_root(path):
        return "famos"
    if media_entries(path):
        return "videos"
    why = "does not exist" if not path.exists() else "matches no replay layout"
    raise ConfigError(
        f"{path} {why}; expected one of:\n  - " + "\n  - ".join(REPLAY_KINDS), field="replay"
    )


def open_replay(
    path: str | Path,
    rig: str | None = None,
    subject: str | None = None,
    sequence: str | None = None,
    realtime: bool = True,
    size: str | None = None,
) -> Any:
    """A replay source for a take, a FaMoS dataset root or a folder of videos (by content)."""
    path = Path(path)
    kind = replay_kind(path)
    if kind == "take":
        from capture.sources.replay_source import ReplaySource

        return ReplaySource(path, realtime=realtime)
    rig_obj = load_rig(rig, size) if rig else None
    if kind == "famos":
        from capture.sources.famos_source import FamosReplaySource

        return FamosReplaySource(path, subject, sequence, rig_obj, fps=60.0 if realtime else 0.0)
    from capture.sources.video_folder_source import VideoFolderSource

    if rig_obj is None:
        inside = [p for p in (path / "rig.json", path / "rig.yaml") if p.is_file()]
        if inside:
            rig_obj = load_rig(str(inside[0]), size)
        elif any(p.suffix.lower() == ".tka" for p in path.iterdir()):
            rig_obj = load_rig(str(path), size)
        else:
            raise ConfigError(
                f"{path}: a folder of videos needs its rig: give --rig RIGFILE", field="--rig"
            )
    return VideoFolderSource(path, rig_obj, fps=None if realtime else 0.0)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``; ConfigError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size must look like 640x480, got {text!r}", field="--size") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"size must be positive, got {text!r}", field="--size")
    return w, h


def load_rig(spec: str, size: str | None) -> Rig:
    """A shipped rig by name or a rig file (any supported format), optionally resized."""
    path = Path(spec)
    if path.exists():
        from capture.rig_io import read_rig

        rig = read_rig(path)
    else:
        from capture.default_rigs import SHIPPED_RIGS, load_shipped_rig

        if spec not in SHIPPED_RIGS:
            raise ConfigError(
                f"{spec!r} is neither a rig file nor a shipped rig ({', '.join(SHIPPED_RIGS)})",
                field="--rig",
            )
        rig = load_shipped_rig(spec)
    if size:
        rig = rig.resized(*parse_size(size))
    return rig


def emulator_rig(rig: Rig) -> Rig:
    """``rig`` with the emulator's serials (``0815-0000``…) in view order."""
    cams = tuple(dataclasses.replace(c, serial=f"0815-{i:04d}") for i, c in enumerate(rig.cameras))
    return Rig(cams, rig.name, dict(rig.metadata))


def make_source(
    spec: str,
    rig_spec: str,
    size: str | None,
    fps: float,
    workdir: Path,
    trigger: str = "software",
    subject: str | None = None,
    sequence: str | None = None,
    pattern: bool = False,
) -> Any:
    """Build the frame source named by ``--source`` (``pattern``: emulated test pattern)."""
    from capture.sources.pylon_source import PylonConfig, PylonSource, TriggerMode, emulated_source

    if spec.startswith("replay:"):
        return open_replay(spec.removeprefix("replay:"), rig_spec, subject, sequence)
    rig = load_rig(rig_spec or "default16", size)
    if spec == "emulated":
        rig = emulator_rig(rig)
        provider = emulated_provider(rig, pattern, fps)
        count = EMULATED_SETS if pattern else PERFORMER_SETS
        try:
            return emulated_source(rig, provider, workdir, count=count, frame_rate=fps)
        finally:
            if hasattr(provider, "close"):
                provider.close()
    if spec == "pylon":
        return PylonSource(rig, PylonConfig(trigger=TriggerMode(trigger), frame_rate=fps))
    raise ConfigError(f"unknown source {spec!r} (emulated, pylon or replay:PATH)", field="--source")


def emulated_provider(rig: Rig, pattern: bool, fps: float) -> Any:
    """Frames for the emulated cameras: the rendered performer, or the test pattern."""
    from capture.pattern import pattern_provider

    if pattern:
        return pattern_provider(rig)
    from inference.procedural_head import load_procedural_head
    from inference.synth import PerformerFrames

    return PerformerFrames(rig, load_procedural_head(), seed=0, fps=fps)


def record_take(source: Any, out: Path, seconds: float, codec: str, config: dict) -> dict:
    """Stream ``source`` and record ``seconds`` of it into ``out``; returns the status counts.

    Free-running pylon cameras are grouped by timestamp (PTP), everything else by counter.
    """
    from capture.grouping import GroupingMode
    from capture.recorder import TakeRecorder
    from capture.session import CaptureSession
    from capture.sources.pylon_source import TriggerMode

    free_run = getattr(getattr(source, "config", None), "trigger", None) is TriggerMode.FREE_RUN
    session = CaptureSession(
        source, mode=GroupingMode.TIMESTAMP if free_run else GroupingMode.COUNTER
    )
    recorder = TakeRecorder(out, codec=codec, session_config=config)
    session.error.connect(lambda exc: log.error("capture: %s", exc))
    session.camera_lost.connect(lambda i, n: log.warning("camera %s stopped delivering", n))
    pausable = hasattr(source, "pause") and hasattr(source, "resume")
    if pausable:  # a replay must not deliver its first sets before the recorder listens
        source.pause()
    session.start()
    try:
        recorder.start(session)
        if pausable:
            source.resume()
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end and not session.wait_finished(0.1):
            pass
        if source.finished:
            session.wait_finished(5.0)
        rec_status = recorder.stop()
    finally:
        session.stop()
        recorder.stop()
    status = session.status()
    return {
        "sets_written": rec_status.sets_written,
        "complete": status.grouping.complete,
        "incomplete": status.grouping.incomplete,
        "cut_off": status.grouping.cut_off,
        "dropped": status.grouping.dropped,
        "late": status.grouping.late,
        "frames_overflowed": status.frames_overflowed,
        "recorder_overflows": rec_status.overflows,
        "recorder_error": rec_status.last_error,
    }


def _record(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tempeh-emu-") as work:
        source = make_source(
            args.source,
            args.rig,
            args.size,
            args.fps,
            Path(work),
            args.trigger,
            args.subject,
            args.sequence,
            args.pattern,
        )
        config = {
            "source": args.source,
            "rig": args.rig,
            "fps": args.fps,
            "size": args.size,
            "codec": args.codec,
            "trigger": args.trigger,
        }
        if hasattr(source, "config"):
            config["pylon"] = _jsonable(dataclasses.asdict(source.config))
        counts = record_take(source, args.out, args.seconds, args.codec, config)
    print(f"recorded {counts['sets_written']} sets to {args.out}")
    if counts["recorder_error"]:
        raise CaptureError(f"recording failed: {counts['recorder_error']}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value"):
        return value.value
    return value


def _takes_show(args: argparse.Namespace) -> int:
    from capture.take import TakeReader

    if replay_kind(args.take) == "take":
        summary = TakeReader(args.take).summary()
    else:
        source = open_replay(args.take, args.rig, args.subject, args.sequence)
        summary = source.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{args.take}: {summary['cameras']} cameras, {summary['sets']} sets "
            f"({summary['complete']} complete, {summary['incomplete']} incomplete, "
            f"{summary['lost']} lost), {summary['fps']:.2f} sets/s, {summary['duration_s']:.2f} s"
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    import resource  # Unix only: imported here so ``tempeh --help`` works everywhere

    from capture.default_rigs import load_shipped_rig
    from capture.pattern import pattern_provider, ring_rig
    from capture.sources.pylon_source import emulated_source
    from capture.take import TakeReader

    w, h = parse_size(args.size)
    if args.cameras == 16:
        rig = emulator_rig(load_shipped_rig("default16").resized(w, h))
    else:
        rig = ring_rig(args.cameras, w, h)
    with tempfile.TemporaryDirectory(prefix="tempeh-bench-") as work:
        out = args.out or Path(work) / "take"
        source = emulated_source(
            rig, pattern_provider(rig), Path(work) / "img", count=EMULATED_SETS, frame_rate=args.fps
        )
        t0, c0 = time.monotonic(), time.process_time()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        counts = record_take(source, out, args.seconds, args.codec, {"bench": True})
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        take = TakeReader(out)
        summary = take.summary()
        t1 = time.monotonic()
        errors = 0
        for pos in range(len(take.records)):
            errors += len(take.read_set(pos)[1])
        decode = time.monotonic() - t1
    result = {
        "cameras": args.cameras,
        "size": f"{w}x{h}",
        "codec": args.codec,
        "target_fps": args.fps,
        "wall_s": round(wall, 2),
        "sets": summary["sets"],
        "sets_per_s": summary["fps"],
        "complete": summary["complete"],
        "incomplete": summary["incomplete"],
        "lost": summary["lost"] + counts["recorder_overflows"],
        "cpu_s": round(cpu, 2),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "user_s": round(r1.ru_utime - r0.ru_utime, 2),
        "system_s": round(r1.ru_stime - r0.ru_stime, 2),
        "max_rss_mb": round(r1.ru_maxrss / 1024, 1),
        "replay_decode_sets_per_s": round(len(take.records) / decode, 1) if decode else 0.0,
        "replay_errors": errors,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")
    return 0
