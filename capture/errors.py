"""The typed error hierarchy shared by every package.

Every error raised where bad input enters the product derives from :class:`StudioError`,
so the CLI and the studio can catch one type, show its message and keep running. Messages
name the file, the camera and the field (or key) that was wrong.

This module lives in ``capture`` because ``capture`` is the lowest package that every other
package may import (``inference`` and ``render`` depend on it, never the reverse).
"""

from __future__ import annotations

from os import PathLike


class StudioError(Exception):
    """Base class of every error the product raises on purpose."""


class _LocatedError(StudioError):
    """An error that knows which file, camera and field it is about.

    The message is prefixed with whichever of ``path``, ``camera`` and ``field`` are given,
    e.g. ``rig.json: camera 'cam03': field 'K': focal length must be positive``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        camera: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.camera = camera
        self.field = field
        self.reason = message
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if camera is not None:
            parts.append(f"camera {camera!r}")
        if field is not None:
            parts.append(f"field {field!r}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class CalibrationError(_LocatedError):
    """A camera or rig calibration is missing, malformed or physically implausible."""


class HeadModelError(_LocatedError):
    """A head model file (FLAME pickle, procedural model data) is missing or invalid."""


class MeshIOError(_LocatedError):
    """A mesh file could not be read or written."""


class RenderError(StudioError):
    """OpenGL rendering failed (no context, unsupported GL version, bad input arrays)."""


class ConfigError(_LocatedError):
    """A configuration file or option is invalid."""


class CaptureError(StudioError):
    """A camera source could not be opened, matched to the rig, configured or streamed."""


class TakeError(StudioError):
    """A recorded take is missing, malformed, or one of its videos cannot be decoded."""


class CheckpointError(_LocatedError):
    """A network checkpoint is missing, unreadable, or does not match the model's layout."""


class DatasetError(StudioError):
    """A dataset frame is incomplete or inconsistent (missing image, calibration, scan, mesh).

    The message names the subject, sequence, frame and camera concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        sequence: str | None = None,
        frame: str | None = None,
        camera: str | None = None,
        path: str | PathLike[str] | None = None,
    ) -> None:
        self.subject, self.sequence, self.frame, self.camera = subject, sequence, frame, camera
        self.path = None if path is None else str(path)
        self.reason = message
        parts = [
            f"{label} {value!r}"
            for label, value in (
                ("subject", subject),
                ("sequence", sequence),
                ("frame", frame),
                ("camera", camera),
            )
            if value is not None
        ]
        if self.path is not None:
            parts.append(self.path)
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
