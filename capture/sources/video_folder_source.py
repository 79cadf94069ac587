"""Replay of a folder of per-camera videos or image sequences plus a rig.

One entry per rig camera, named by the camera's serial or name, optionally prefixed ``cam_``
(``cam_<serial>.mp4``, ``<name>.mkv``, ``cam_<name>/`` …): a video file (``.mp4 .mkv .avi
.mov .h264 .264``), decoded with PyAV, or a sub-folder of images played in name order. Frame
``k`` of every camera forms set ``k``. Non-media files (a rig file, notes) are ignored; a
media entry that matches no rig camera, or a rig camera without an entry, is a
:class:`~capture.errors.TakeError` naming it.

A corrupt or truncated video is reported per frame (a :class:`TakeError` naming camera and
frame, through ``on_error`` when streaming) and the other cameras still replay; a camera whose
video cannot even be opened is a gap in every set. When a camera's frames differ in size from
the rig, that camera is resized (:meth:`Camera.resized`, logged); ``full_rig`` keeps the rig
as given.

Seeking a video re-opens it and decodes from the start up to the frame (exact for any codec;
slow for a far seek into a long video).
"""

from __future__ import annotations

import logging
import re
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from capture.camera import Rig
from capture.errors import StudioError, TakeError
from capture.sources.famos_source import IMAGE_SUFFIXES, IndexedReplay, read_image

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".h264", ".264")


def _key(name: str) -> str:
    return re.sub(r"^(cam(era)?[_-]?)", "", name, flags=re.IGNORECASE)


def media_entries(folder: str | PathLike[str]) -> list[Path]:
    """The video files and image sub-folders of ``folder`` in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        video = p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        if video or (
            p.is_dir()
            and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir() if f.is_file())
        ):
            out.append(p)
    return out


class _VideoReader:
    """Sequential PyAV decoding of one camera's video with re-open to seek back."""

    def __init__(self, path: Path, camera: str) -> None:
        self.path, self.camera = path, camera
        self._container: Any = None
        self._iter: Any = None
        self._next = 0
        self.broken: str | None = None
        self.count, self.size = self._probe()

    def _error(self, index: int, why: str) -> TakeError:
        return TakeError(f"camera {self.camera!r}: frame {index} ({self.path.name}): {why}")

    def _probe(self) -> tuple[int, tuple[int, int] | None]:
        """(frames found by demuxing, (width, height)); a broken file counts what it holds."""
        import av

        count = 0
        size = None
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    self.broken = "no video stream found (truncated, or not a video?)"
                    log.error("camera %r: %s: %s", self.camera, self.path, self.broken)
                    return 0, None
                stream = c.streams.video[0]
                size = (stream.codec_context.width, stream.codec_context.height)
                try:
                    for pkt in c.demux(stream):
                        if pkt.size:
                            count += 1
                except av.FFmpegError as exc:
                    log.warning("camera %s: %s: demuxing stopped: %s", self.camera, self.path, exc)
        except (av.FFmpegError, OSError) as exc:
            self.broken = f"cannot open the video: {exc}"
            log.error("camera %r: %s: %s", self.camera, self.path, self.broken)
        return count, size

    def _open(self) -> None:
        import av

        self.close()
        self._container = av.open(str(self.path))
        self._iter = self._container.decode(video=0)
        self._next = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._iter = None

    def frame(self, index: int) -> np.ndarray:
        import av

        if self.broken:
            raise self._error(index, self.broken)
        if index >= self.count:
            raise self._error(index, f"video ends after {self.count} frames (truncated?)")
        try:
            if self._iter is None or index < self._next:
                self._open()
            while True:
                try:
                    frame = next(self._iter)
                except StopIteration:
                    self.close()
                    raise self._error(
                        index, f"decoder ran out of frames at {self._next} (truncated?)"
                    ) from None
                self._next += 1
                if self._next - 1 == index:
                    break
            fmt = "gray" if frame.format.name in ("gray", "gray8") else "bgr24"
            return np.ascontiguousarray(frame.to_ndarray(format=fmt))
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.close()
            raise self._error(index, f"decoding failed: {exc}") from exc


class _ImageFolderReader:
    def __init__(self, path: Path, camera: str) -> None:
        self.path, self.camera = path, camera
        self.files = sorted(
            f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        self.count = len(self.files)
        self.broken: str | None = None
        first = read_image(self.files[0], camera, 0)
        self.size: tuple[int, int] | None = (first.shape[1], first.shape[0])

    def frame(self, index: int) -> np.ndarray:
        if index >= self.count:
            raise TakeError(
                f"camera {self.camera!r}: frame {index}: {self.path} holds {self.count} images"
            )
        return read_image(self.files[index], self.camera, index)

    def close(self) -> None:
        pass


class VideoFolderSource(IndexedReplay):
    """Plays per-camera videos or image folders of ``folder`` against ``rig``.

    Parameters
    ----------
    folder : path-like
        The folder of per-camera entries.
    rig : Rig or path-like
        The cameras (any rig file or ``.tka`` folder); entries are matched by serial or name.
    fps : float
        Playback rate; ``None`` takes the first video's rate (30 for image folders);
        ``<= 0``: as fast as possible.
    start : int
        First set to play.
    """

    def __init__(
        self,
        folder: str | PathLike[str],
        rig: Rig | str | PathLike[str],
        *,
        fps: float | None = None,
        start: int = 0,
    ) -> None:
        self.folder = Path(folder)
        if not isinstance(rig, Rig):
            from capture.rig_io import read_rig

            try:
                rig = read_rig(rig)
            except StudioError as exc:
                raise TakeError(f"{rig}: cannot read the rig: {exc}") from exc
        self.full_rig = rig
        entries = media_entries(self.folder)
        if not entries:
            raise TakeError(
                f"{self.folder}: no per-camera videos ({', '.join(VIDEO_SUFFIXES)}) or image "
                "folders"
            )
        lookup: dict[str, int] = {}
        for i, cam in enumerate(rig.cameras):
            lookup[cam.name] = i
            if cam.serial:
                lookup[cam.serial] = i
        matched: dict[int, Path] = {}
        for entry in entries:
            stem = entry.stem if entry.is_file() else entry.name
            idx = lookup.get(stem, lookup.get(_key(stem)))
            if idx is None:
                raise TakeError(
                    f"{entry}: matches no rig camera by name or serial "
                    f"(rig {rig.name!r}: {', '.join(rig.names)})"
                )
            if idx in matched:
                raise TakeError(
                    f"rig camera {rig.cameras[idx].name!r}: two entries, {matched[idx].name} "
                    f"and {entry.name}"
                )
            matched[idx] = entry
        missing = [c.name for i, c in enumerate(rig.cameras) if i not in matched]
        if missing:
            raise TakeError(
                f"{self.folder}: no video or image folder for rig camera(s) {', '.join(missing)}"
            )
        self._readers: list[Any] = []
        for i, cam in enumerate(rig.cameras):
            path = matched[i]
            reader = (
                _VideoReader(path, cam.name)
                if path.is_file()
                else _ImageFolderReader(path, cam.name)
            )
            self._readers.append(reader)
        if all(r.broken for r in self._readers):
            raise TakeError(f"{self.folder}: no camera's video can be opened")
        self.paths = tuple(matched[i] for i in range(len(rig)))
        cams = []
        for cam, r in zip(rig.cameras, self._readers, strict=True):
            if r.size and r.size != cam.image_size:
                log.info(
                    "camera %s: frames are %dx%d, the rig says %dx%d: resized",
                    cam.name,
                    *r.size,
                    *cam.image_size,
                )
                cam = cam.resized(*r.size)
            cams.append(cam)
        self._rig = Rig(tuple(cams), rig.name, dict(rig.metadata))
        if fps is None:
            fps = self._probe_fps()
        super().__init__(fps, start)

    def _probe_fps(self) -> float:
        import av

        for r in self._readers:
            if isinstance(r, _VideoReader) and not r.broken:
                try:
                    with av.open(str(r.path)) as c:
                        rate = c.streams.video[0].average_rate or c.streams.video[0].base_rate
                        if rate:
                            return float(rate)
                except av.FFmpegError:
                    continue
        return 30.0

    def __len__(self) -> int:
        return max(r.count for r in self._readers)

    def frame_counts(self) -> tuple[int, ...]:
        """Frames found per camera (by demuxing, before decoding)."""
        return tuple(r.count for r in self._readers)

    def complete_sets(self) -> int:
        """Sets every camera has a frame for (the shortest camera's count)."""
        return min(0 if r.broken else r.count for r in self._readers)

    def read_set(self, position: int) -> tuple[list[np.ndarray | None], list[TakeError]]:
        """Frame ``position`` of every camera; failures are errors naming camera and frame."""
        images: list[np.ndarray | None] = []
        errors: list[TakeError] = []
        for r in self._readers:
            try:
                images.append(r.frame(position))
            except TakeError as exc:
                errors.append(exc)
                images.append(None)
        return images, errors

    def stop(self) -> None:
        """Stop the replay thread and close the videos."""
        super().stop()
        for r in self._readers:
            r.close()
