"""The take folder: layout, per-camera video streams, and reading a take back.

Layout::

    TAKE/
      rig.json            the rig (canonical tempeh-rig JSON, mm)
      session.json        codec, rate, source and session config
      timestamps.jsonl    one JSON line per frame set, append-only
      video/00_cam00.h264 one stream per camera (or .ffv1, or a folder of PNGs)

Videos are **raw elementary streams** written packet by packet (H.264 Annex B, playable with
ffplay/ffmpeg; FFV1 packets with their codec extradata beside them). Each line of
``timestamps.jsonl`` is written only after every packet of that set is in the files, and
carries, per camera, ``[video_index, byte_offset, size, crc32, keyframe]`` (null for a missing
view). So a crash (SIGKILL) loses at most the set being written, a reader never needs a
container index, a truncated or corrupted file is detected per frame (size and CRC), and
seeking decodes from the nearest keyframe (every ``gop`` frames).

Durability: the recorder flushes (``write(2)``) videos then the line after every set, which
survives a killed process; it ``fsync`` s videos then the line every ``fsync_every`` sets
(default 20, about 1 s), which bounds what a power loss can take.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.camera import Rig
from capture.errors import StudioError, TakeError
from capture.rig_json import read_rig_json

log = logging.getLogger(__name__)

TAKE_FORMAT = "tempeh-take"
TAKE_VERSION = 1
CODECS = ("h264", "ffv1", "png")
EXTENSIONS = {"h264": ".h264", "ffv1": ".ffv1", "png": ""}
RIG_FILE = "rig.json"
SESSION_FILE = "session.json"
TIMESTAMPS_FILE = "timestamps.jsonl"
VIDEO_DIR = "video"


def video_path(take: Path, index: int, name: str, codec: str) -> Path:
    """Where camera ``index`` (``name``) stores its stream in ``take``."""
    return take / VIDEO_DIR / f"{index:02d}_{name}{EXTENSIONS[codec]}"


# --------------------------------------------------------------------------- encoding


class StreamWriter:
    """Encodes one camera's frames into a raw stream file (recorder thread only).

    Parameters
    ----------
    path : Path
        The stream file (a folder for ``png``).
    codec : str
        ``"h264"`` (libx264 ultrafast, zerolatency: one packet per frame), ``"ffv1"`` or
        ``"png"``.
    width, height : int
        Frame size in pixels; ``color`` says whether frames are (H, W, 3) BGR or (H, W).
    fps : float
        Nominal rate (for the encoder's rate control), sets/s.
    gop : int
        Keyframe interval in frames (H.264).
    crf : int
        H.264 quality (lower is better; 18 is visually lossless).
    """

    def __init__(
        self,
        path: Path,
        codec: str,
        width: int,
        height: int,
        color: bool,
        fps: float = 20.0,
        gop: int = 40,
        crf: int = 18,
    ) -> None:
        if codec not in CODECS:
            raise TakeError(f"unknown codec {codec!r} (choose from {', '.join(CODECS)})")
        self.path, self.codec, self.color = path, codec, color
        self.width, self.height = width, height
        self.count = 0
        self.offset = 0
        self._file = None
        self._cc: Any = None
        if codec == "png":
            path.mkdir(parents=True, exist_ok=True)
            return
        import av

        rate = Fraction(max(1, round(fps)), 1)
        if codec == "h264":
            cc = av.CodecContext.create("libx264", "w")
            cc.pix_fmt = "yuv420p"
            cc.gop_size = gop
            cc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(crf)}
        else:
            cc = av.CodecContext.create("ffv1", "w")
            cc.pix_fmt = "bgr0" if color else "gray"
        cc.width, cc.height = width, height
        cc.time_base = 1 / rate
        cc.framerate = rate
        cc.open()
        self._cc = cc
        if codec == "ffv1" and cc.extradata:
            path.with_suffix(".extradata").write_bytes(bytes(cc.extradata))
        self._file = open(path, "wb")  # noqa: SIM115 (kept open for the whole take)

    def write(self, image: np.ndarray) -> list[int]:
        """Encode one frame; returns its index entry ``[index, offset, size, crc32, key]``."""
        if image.shape[:2] != (self.height, self.width):
            raise TakeError(
                f"{self.path.name}: frame is {image.shape[1]}x{image.shape[0]}, "
                f"stream is {self.width}x{self.height}"
            )
        if self.codec == "png":
            ok, buf = cv2.imencode(".png", image)
            if not ok:
                raise TakeError(f"{self.path}: PNG encoding failed for frame {self.count}")
            data = buf.tobytes()
            with open(self.path / f"{self.count:06d}.png", "wb") as f:
                f.write(data)
            entry = [self.count, 0, len(data), zlib.crc32(data), 1]
        else:
            import av

            fmt = "bgr24" if image.ndim == 3 else "gray"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
            if self.codec == "h264":
                frame = frame.reformat(format="yuv420p")
            frame.pts = self.count
            packets = self._cc.encode(frame)
            if len(packets) != 1:
                raise TakeError(
                    f"{self.path.name}: encoder returned {len(packets)} packets for frame "
                    f"{self.count} (one expected with zero-latency settings)"
                )
            data = bytes(packets[0])
            self._file.write(data)
            entry = [
                self.count,
                self.offset,
                len(data),
                zlib.crc32(data),
                int(packets[0].is_keyframe),
            ]
            self.offset += len(data)
        self.count += 1
        return entry

    def flush(self, sync: bool = False) -> None:
        """Hand written bytes to the OS (survives a killed process); ``sync``: also fsync."""
        import os

        if self._file is not None:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close (the encoder is not drained: it holds no delayed frames)."""
        if self._file is not None:
            self.flush(sync=True)
            self._file.close()
            self._file = None
        self._cc = None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class SetRecord:
    """One line of ``timestamps.jsonl``.

    Attributes
    ----------
    sequence, key : int
        Set number in the session and its grouping key (trigger id / frame counter).
    spread_ns : int
        Timestamp spread of the set (ns).
    host_ns, device_ns, frame_id : tuple
        Per camera (None for a missing view).
    video : tuple
        Per camera ``(index, offset, size, crc32, keyframe)`` or None.
    """

    sequence: int
    key: int
    spread_ns: int
    host_ns: tuple[int | None, ...]
    device_ns: tuple[int | None, ...]
    frame_id: tuple[int | None, ...]
    video: tuple[tuple[int, int, int, int, int] | None, ...]

    @property
    def complete(self) -> bool:
        """Every camera has a frame."""
        return all(v is not None for v in self.video)

    @property
    def time_ns(self) -> int:
        """Earliest host timestamp of the set (monotonic ns)."""
        stamps = [t for t in self.host_ns if t is not None]
        return min(stamps) if stamps else 0


def read_timestamps(path: Path) -> list[SetRecord]:
    """Every complete line of ``timestamps.jsonl``; a torn last line (crash) is ignored."""
    records = []
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise TakeError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rec = SetRecord(
                int(d["seq"]),
                int(d["key"]),
                int(d["spread_ns"]),
                tuple(d["host_ns"]),
                tuple(d["device_ns"]),
                tuple(d["frame_id"]),
                tuple(None if v is None else tuple(int(x) for x in v) for v in d["video"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            if n >= len(lines) - 1:
                log.warning("%s: ignoring a torn last line (%d bytes)", path, len(line))
                break
            raise TakeError(f"{path}: line {n} is not a valid set record: {exc}") from exc
        records.append(rec)
    return records


class StreamReader:
    """Decodes frames of one camera's stream by video index (one thread at a time).

    Parameters
    ----------
    path : Path
        The stream file (a folder for ``png``).
    codec : str
        ``"h264"``, ``"ffv1"`` or ``"png"``.
    camera : str
        Camera name, for error messages.
    color : bool
        Decode to (H, W, 3) BGR instead of (H, W) gray.
    entries : list
        The camera's ``[index, offset, size, crc32, keyframe]`` entries from the take index.
    size : tuple[int, int]
        ``(width, height)`` in pixels (FFV1 needs it before the first packet).
    """

    def __init__(
        self,
        path: Path,
        codec: str,
        camera: str,
        color: bool,
        entries: list,
        size: tuple[int, int] = (0, 0),
    ) -> None:
        self.path, self.codec, self.camera, self.color = path, codec, camera, color
        self.size = size
        self.entries = {e[0]: e for e in entries}
        self._keyframes = sorted(e[0] for e in entries if e[4])
        self._cc: Any = None
        self._next = -1
        if codec != "png" and not path.is_file():
            raise TakeError(f"camera {camera!r}: video file {path} is missing")

    def _error(self, index: int, why: str) -> TakeError:
        return TakeError(f"camera {self.camera!r}: frame {index} ({self.path.name}): {why}")

    def _packet(self, index: int) -> bytes:
        e = self.entries.get(index)
        if e is None:
            raise self._error(index, "not in the take's index")
        _, offset, size, crc, _ = e
        if self.codec == "png":
            try:
                data = (self.path / f"{index:06d}.png").read_bytes()
            except OSError as exc:
                raise self._error(index, f"missing image file: {exc.strerror}") from exc
        else:
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read(size)
            except OSError as exc:
                raise self._error(index, f"cannot read: {exc.strerror}") from exc
            if len(data) < size:
                raise self._error(index, f"video is truncated ({len(data)} of {size} bytes)")
        if zlib.crc32(data) != crc:
            raise self._error(index, "video data is corrupt (CRC mismatch)")
        return data

    def _decoder(self) -> Any:
        import av

        cc = av.CodecContext.create(self.codec, "r")
        extra = self.path.with_suffix(".extradata")
        if self.codec == "ffv1":
            # FFV1 needs the frame size and the encoder's extradata before the first packet.
            cc.width, cc.height = self.size
            if extra.exists():
                cc.extradata = extra.read_bytes()
        return cc

    def frame(self, index: int) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 frame ``index``; raises TakeError naming camera and frame."""
        data = self._packet(index)
        if self.codec == "png":
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise self._error(index, "PNG cannot be decoded")
            return img
        import av

        if index != self._next:
            # Seek: decode from the last keyframe at or before ``index``.
            start = max((k for k in self._keyframes if k <= index), default=None)
            if start is None:
                raise self._error(index, "no keyframe before this frame")
            self._cc = self._decoder()
            for k in range(start, index):
                try:
                    self._decode(self._packet(k), k)
                except TakeError:
                    log.warning("camera %s: frame %d undecodable while seeking", self.camera, k)
        frames = self._decode(data, index)
        self._next = index + 1
        if not frames:
            raise self._error(index, "decoder returned no picture")
        fmt = "bgr24" if self.color else "gray"
        try:
            return frames[-1].to_ndarray(format=fmt)
        except (ValueError, av.FFmpegError) as exc:
            raise self._error(index, f"cannot convert: {exc}") from exc

    def _decode(self, data: bytes, index: int) -> list:
        import av

        try:
            return list(self._cc.decode(av.Packet(data)))
        except av.FFmpegError as exc:
            self._next = -1
            raise self._error(index, f"decoding failed: {exc}") from exc


class TakeReader:
    """A recorded take: rig, session config, set records and per-camera frame decoding."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / SESSION_FILE).is_file():
            raise TakeError(f"{self.path}: not a take (no {SESSION_FILE})")
        try:
            self.session = json.loads((self.path / SESSION_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TakeError(f"{self.path / SESSION_FILE}: cannot read: {exc}") from exc
        if self.session.get("format") != TAKE_FORMAT:
            raise TakeError(f"{self.path / SESSION_FILE}: format is not {TAKE_FORMAT!r}")
        try:
            self.rig: Rig = read_rig_json(self.path / RIG_FILE)
        except StudioError as exc:
            raise TakeError(f"{self.path}: bad rig file: {exc}") from exc
        self.codec = str(self.session["codec"])
        self.records = read_timestamps(self.path / TIMESTAMPS_FILE)
        self._readers: dict[int, StreamReader] = {}

    @property
    def fps(self) -> float:
        """Measured set rate (sets/s) from the host timestamps; the nominal rate if < 2 sets."""
        if len(self.records) >= 2:
            span = (self.records[-1].time_ns - self.records[0].time_ns) / 1e9
            if span > 0:
                return (len(self.records) - 1) / span
        return float(self.session.get("fps", 0.0))

    def summary(self) -> dict[str, Any]:
        """``{"cameras", "sets", "complete", "incomplete", "lost", "fps", "duration_s"}``."""
        complete = sum(r.complete for r in self.records)
        lost = sum(
            max(0, b.key - a.key - 1) for a, b in zip(self.records, self.records[1:], strict=False)
        )
        fps = self.fps
        return {
            "cameras": len(self.rig),
            "sets": len(self.records),
            "complete": complete,
            "incomplete": len(self.records) - complete,
            "lost": lost,
            "fps": round(fps, 3),
            "duration_s": round(len(self.records) / fps, 3) if fps > 0 else 0.0,
        }

    def reader(self, camera: int) -> StreamReader:
        """The stream reader of camera index ``camera`` (created on first use)."""
        if camera not in self._readers:
            cam = self.rig.cameras[camera]
            entries = [r.video[camera] for r in self.records if r.video[camera] is not None]
            color = bool(self.session.get("color", [False] * len(self.rig))[camera])
            self._readers[camera] = StreamReader(
                video_path(self.path, camera, cam.name, self.codec),
                self.codec,
                cam.name,
                color,
                entries,
                (cam.width, cam.height),
            )
        return self._readers[camera]

    def read_set(self, position: int) -> tuple[list[np.ndarray | None], list[TakeError]]:
        """Images of the ``position``-th recorded set (None where missing or undecodable).

        Undecodable frames come back as errors (naming camera and frame), not exceptions, so
        the other views of the set still replay.
        """
        rec = self.records[position]
        images: list[np.ndarray | None] = []
        errors: list[TakeError] = []
        for i, v in enumerate(rec.video):
            if v is None:
                images.append(None)
                continue
            try:
                images.append(self.reader(i).frame(v[0]))
            except TakeError as exc:
                errors.append(exc)
                images.append(None)
        return images, errors
