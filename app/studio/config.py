"""The studio's settings as one frozen record (no Qt); :mod:`app.studio.settings` stores it."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

SOURCES = ("emulated", "basler", "replay")
"""Where frames come from: the pylon camera emulator playing the synthetic performer, real
Basler cameras, or a recorded take."""
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class StudioConfig:
    """Everything the studio needs to start capturing and reconstructing.

    Attributes
    ----------
    source : str
        One of :data:`SOURCES`.
    rig : str
        Shipped rig name (``default16``, ``test4``) or a rig file (any supported format).
    size : str
        ``WxH`` to rescale the rig's images ("" keeps the rig's size).
    fps : float
        Target capture rate, sets/s.
    take : str
        Take folder replayed by the ``replay`` source.
    model : str
        ``default`` (the embedded model) or a model/checkpoint file.
    flame : str
        FLAME pickle for FLAME-based models ("" for none).
    device : str
        Torch device (``cpu``, ``cuda``, ``cuda:1``).
    takes_dir : str
        Folder new recordings go into ("" for ``~/tempeh-takes``).
    codec : str
        Recording codec (``h264``, ``ffv1``, ``png``).
    """

    source: str = "emulated"
    rig: str = "default16"
    size: str = "640x480"
    fps: float = 15.0
    take: str = ""
    model: str = "default"
    flame: str = ""
    device: str = "cpu"
    takes_dir: str = ""
    codec: str = "h264"

    def updated(self, **changes: Any) -> StudioConfig:
        """A copy with ``changes`` (None values are ignored: unset command-line options)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @staticmethod
    def field_names() -> tuple[str, ...]:
        """The attribute names, in order."""
        return tuple(f.name for f in fields(StudioConfig))
