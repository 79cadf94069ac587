"""Replay of the TEMPEH/FaMoS image layout as a :class:`~capture.sources.FrameSource`.

Layout (what ``tempeh synth`` writes, tempeh-reference §1.2)::

    ROOT/images/<subject>/<sequence>/<frame>/<sequence>.<frame>.<camera>.png
    ROOT/calibrations/<subject>/<sequence>/<camera>.tka      (full-resolution cameras)

Frames are the sub-folders of the sequence in name order; views follow the rig's camera order.
Images are often smaller than the calibration (the released data is downsampled by 4): the
rig is then resized to the image size with :meth:`Rig.resized` (``full_rig`` keeps the
calibration as read). A missing image is a gap (``None``) in its set, counted in
``missing_views`` and logged, never dropped; an unreadable image is a
:class:`~capture.errors.TakeError` naming camera and frame.

:class:`IndexedReplay` is the shared machinery for sources whose sets are addressed by
position (this one and :class:`capture.sources.video_folder_source.VideoFolderSource`): seek,
paced or as-fast-as-possible playback on one thread (``indexed-replay``), and
:meth:`IndexedReplay.frame_set` / :meth:`IndexedReplay.sets` to read ``FrameSet`` s directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.camera import Rig
from capture.errors import CaptureError, StudioError, TakeError
from capture.frames import Frame, FrameSet
from capture.sources.replay_base import ThreadedReplay

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


def as_frame_image(img: np.ndarray) -> np.ndarray:
    """``img`` as (H, W) or (H, W, 3) uint8 (alpha dropped, 16-bit scaled down)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return np.ascontiguousarray(img)


def read_image(path: Path, camera: str, frame: str | int) -> np.ndarray:
    """Read one image file; :class:`TakeError` naming camera and frame when it cannot be."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise TakeError(
            f"camera {camera!r}: frame {frame}: cannot read {path}: {exc.strerror or exc}"
        ) from exc
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise TakeError(f"camera {camera!r}: frame {frame}: {path} cannot be decoded")
    return as_frame_image(img)


class IndexedReplay(ThreadedReplay):
    """Base of replays whose sets are numbered ``0 .. len-1``.

    Subclasses set ``_rig`` and implement :meth:`__len__`, :meth:`read_set` and may override
    :meth:`frame_label`. ``fps > 0`` paces playback at that rate; ``fps <= 0`` plays as fast
    as reading allows (``nominal_fps`` is then 0).
    """

    _rig: Rig

    thread_name = "indexed-replay"

    def __init__(self, fps: float = 0.0, start: int = 0) -> None:
        super().__init__(start)
        self.fps = float(fps)
        self._t_next = 0.0

    # ----------------------------------------------------------------- to implement

    def frame_label(self, position: int) -> int:
        """The frame number shown for set ``position`` (the ``frame_id`` of its frames)."""
        return position

    # ----------------------------------------------------------------- protocol

    @property
    def rig(self) -> Rig:
        """The rig, sized like the images."""
        return self._rig

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names in view order."""
        return tuple(self._rig.names)

    @property
    def nominal_fps(self) -> float:
        """The playback rate; 0 when playing as fast as possible."""
        return max(0.0, self.fps)

    # ----------------------------------------------------------------- direct reading

    def frame_set(self, position: int, strict: bool = True) -> FrameSet:
        """Set ``position`` as a :class:`FrameSet` (gaps are None).

        ``strict``: raise the first unreadable view's :class:`TakeError`; otherwise that view
        becomes a gap too (and is logged).
        """
        if not 0 <= position < len(self):
            raise CaptureError(f"set {position}: the replay has {len(self)} sets")
        images, errors = self.read_set(position)
        if errors and strict:
            raise errors[0]
        for err in errors:
            log.error("%s", err)
        now = time.monotonic_ns()
        frames = tuple(
            None if img is None else self._frame(img, i, position, now)
            for i, img in enumerate(images)
        )
        return FrameSet(position, frames, self._rig, 0, position)

    def sets(self, start: int = 0, strict: bool = True) -> Iterator[FrameSet]:
        """Every set from ``start`` in order (see :meth:`frame_set`)."""
        for pos in range(start, len(self)):
            yield self.frame_set(pos, strict)

    def summary(self) -> dict[str, Any]:
        """Like :meth:`capture.take.TakeReader.summary` (completeness from what exists)."""
        complete = self.complete_sets()
        fps = self.nominal_fps
        n = len(self)
        return {
            "cameras": len(self._rig),
            "sets": n,
            "complete": complete,
            "incomplete": n - complete,
            "lost": 0,
            "fps": round(fps, 3),
            "duration_s": round(n / fps, 3) if fps > 0 else 0.0,
        }

    def complete_sets(self) -> int:
        """Number of sets with every view present (without decoding); all by default."""
        return len(self)

    def _frame(self, img: np.ndarray, i: int, pos: int, now: int) -> Frame:
        return Frame(img, i, self._rig.cameras[i].name, self.frame_label(pos), now, None, pos)

    # ----------------------------------------------------------------- pacing

    def _restart_clock(self) -> None:
        self._t_next = time.monotonic()

    def _delay(self, position: int) -> float:
        """At ``fps``: one period after the previous set (a late set does not bunch up later)."""
        if self.fps <= 0:
            return 0.0
        period = 1.0 / self.fps
        now = time.monotonic()
        delay = self._t_next - now
        self._t_next = max(self._t_next + period, max(now, self._t_next) - period)
        return delay


def famos_sequences(root: str | PathLike[str]) -> list[tuple[str, str]]:
    """``(subject, sequence)`` pairs under ``ROOT/images`` in name order."""
    images = Path(root) / "images"
    if not images.is_dir():
        return []
    return [
        (subj.name, seq.name)
        for subj in sorted(p for p in images.iterdir() if p.is_dir())
        for seq in sorted(p for p in subj.iterdir() if p.is_dir())
    ]


def is_famos_root(path: str | PathLike[str]) -> bool:
    """True when ``path`` has the FaMoS layout (``images/<subject>/<sequence>/<frame>/``)."""
    return bool(famos_sequences(path))


def _downscale_factor(sizes: set[tuple[int, int]], image: tuple[int, int]) -> int | None:
    """The integer k with every calibration size (W, H) equal to k × ``image``, else None."""
    w, h = image
    factors = {a // w if a % w == b % h == 0 and a // w == b // h else None for a, b in sizes}
    return factors.pop() if len(factors) == 1 else None


class FamosReplaySource(IndexedReplay):
    """Plays one sequence of a TEMPEH/FaMoS dataset.

    Parameters
    ----------
    root : path-like
        Dataset root holding ``images/`` (and ``calibrations/`` unless ``rig`` is given).
    subject, sequence : str, optional
        Which sequence; default the first found (name order).
    rig : Rig or path-like, optional
        The cameras (any rig file or ``.tka`` folder); default
        ``calibrations/<subject>/<sequence>/``, then ``ROOT/rig.json``.
    fps : float
        Playback rate (FaMoS was captured at 60 sets/s); ``<= 0``: as fast as possible.
    resize_rig : bool
        Resize the rig to the image size when they differ (default); otherwise keep the
        calibration size and only report the difference (frames then do not match the rig).
    start : int
        First set to play.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        subject: str | None = None,
        sequence: str | None = None,
        rig: Rig | str | PathLike[str] | None = None,
        *,
        fps: float = 60.0,
        resize_rig: bool = True,
        start: int = 0,
    ) -> None:
        super().__init__(fps, start)
        self.root = Path(root)
        found = famos_sequences(self.root)
        if not found:
            raise TakeError(
                f"{self.root}: not a FaMoS/TEMPEH dataset (expected "
                "images/<subject>/<sequence>/<frame>/<sequence>.<frame>.<camera>.png)"
            )
        if subject is None:
            subject = next((s for s, q in found if sequence is None or q == sequence), None)
        if sequence is None:
            sequence = next((q for s, q in found if s == subject), None)
        if (subject, sequence) not in found:
            listed = ", ".join(f"{s}/{q}" for s, q in found[:20])
            raise TakeError(
                f"{self.root}: no sequence {subject}/{sequence} under images/ (found: {listed})"
            )
        assert subject is not None and sequence is not None
        self.subject, self.sequence = subject, sequence
        self.folder = self.root / "images" / subject / sequence
        self.frames = sorted(p.name for p in self.folder.iterdir() if p.is_dir())
        if not self.frames:
            raise TakeError(f"{self.folder}: holds no frame folders")
        self.full_rig = self._load_rig(rig)
        self.image_size = self._probe_size()
        w, h = self.image_size
        sizes = {c.image_size for c in self.full_rig.cameras}
        if sizes != {(w, h)}:
            if resize_rig:
                log.info(
                    "%s: images are %dx%d, calibration %s: rig resized to the images",
                    self.folder,
                    w,
                    h,
                    ", ".join(f"{a}x{b}" for a, b in sorted(sizes)),
                )
                self._rig = self.full_rig.resized(w, h)
            else:
                # TEMPEH's released images are the calibration size over an integer factor:
                # expected (the model scales the intrinsics itself), so not a warning
                factor = _downscale_factor(sizes, (w, h))
                log.log(
                    logging.INFO if factor else logging.WARNING,
                    "%s: images are %dx%d but the rig says %s (rig kept at full size%s)",
                    self.folder,
                    w,
                    h,
                    ", ".join(f"{a}x{b}" for a, b in sorted(sizes)),
                    f"; a 1/{factor} downscale" if factor else "",
                )
                self._rig = self.full_rig
        else:
            self._rig = self.full_rig
        self.missing_views = 0
        self._missing_seen: set[tuple[int, int]] = set()

    def _load_rig(self, rig: Rig | str | PathLike[str] | None) -> Rig:
        from capture.rig_io import read_rig

        if isinstance(rig, Rig):
            return rig
        if rig is not None:
            path = Path(rig)
        else:
            path = self.root / "calibrations" / self.subject / self.sequence
            if not path.is_dir() and (self.root / "rig.json").is_file():
                path = self.root / "rig.json"
            elif not path.is_dir():
                raise TakeError(
                    f"{self.root}: no calibrations/{self.subject}/{self.sequence}/*.tka and no "
                    "rig.json; give the rig explicitly"
                )
        try:
            return read_rig(path)
        except StudioError as exc:
            raise TakeError(f"{path}: cannot read the rig: {exc}") from exc

    def image_path(self, position: int, camera: int) -> Path:
        """Where the image of camera index ``camera`` in set ``position`` lives."""
        frame = self.frames[position]
        name = self.full_rig.cameras[camera].name
        return self.folder / frame / f"{self.sequence}.{frame}.{name}.png"

    def _probe_size(self) -> tuple[int, int]:
        for pos in range(len(self.frames)):
            for i, cam in enumerate(self.full_rig.cameras):
                path = self.image_path(pos, i)
                if path.is_file():
                    img = read_image(path, cam.name, self.frames[pos])
                    return img.shape[1], img.shape[0]
        raise TakeError(
            f"{self.folder}: no image of any rig camera ({', '.join(self.full_rig.names)})"
        )

    def __len__(self) -> int:
        return len(self.frames)

    def frame_label(self, position: int) -> int:
        """The frame folder's number (its position when the name is not a number)."""
        name = self.frames[position]
        return int(name) if name.isdigit() else position

    def complete_sets(self) -> int:
        """Sets with every camera's image file present."""
        return sum(
            all(self.image_path(p, i).is_file() for i in range(len(self._rig)))
            for p in range(len(self))
        )

    def read_set(self, position: int) -> tuple[list[np.ndarray | None], list[TakeError]]:
        """Images of set ``position``; a missing file is a gap (counted), a bad one an error."""
        images: list[np.ndarray | None] = []
        errors: list[TakeError] = []
        frame = self.frames[position]
        for i, cam in enumerate(self._rig.cameras):
            path = self.image_path(position, i)
            if not path.is_file():
                if (position, i) not in self._missing_seen:
                    self._missing_seen.add((position, i))
                    self.missing_views += 1
                    log.warning("camera %r: frame %s: image %s is missing", cam.name, frame, path)
                images.append(None)
                continue
            try:
                img = read_image(path, cam.name, frame)
            except TakeError as exc:
                errors.append(exc)
                images.append(None)
                continue
            if img.shape[:2] != (cam.height, cam.width) and self._rig is not self.full_rig:
                errors.append(
                    TakeError(
                        f"camera {cam.name!r}: frame {frame}: image is "
                        f"{img.shape[1]}x{img.shape[0]}, the others {cam.width}x{cam.height}"
                    )
                )
                images.append(None)
                continue
            images.append(img)
        return images, errors
