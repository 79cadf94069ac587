"""Length units of rig files and their conversion to the studio's millimetres."""

from __future__ import annotations

from os import PathLike

from capture.camera import Camera, Rig
from capture.errors import CalibrationError

UNIT_SCALE: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
"""Millimetres per unit for every unit a rig file may declare."""


def unit_scale(units: object, path: str | PathLike[str] | None = None) -> float:
    """Millimetres per ``units`` (``"mm"``, ``"cm"`` or ``"m"``); CalibrationError otherwise."""
    if not isinstance(units, str) or units not in UNIT_SCALE:
        raise CalibrationError(
            f"unknown units {units!r}; expected one of {sorted(UNIT_SCALE)}",
            path=path,
            field="units",
        )
    return UNIT_SCALE[units]


def resolve_units(
    declared: object | None, override: str | None, path: str | PathLike[str] | None
) -> str | None:
    """The unit of a file that ``declared`` one (or None) when the caller asks for ``override``.

    A file that declares a unit different from the caller's is refused rather than guessed.
    """
    if declared is not None:
        unit_scale(declared, path)
        if override is not None and override != declared:
            raise CalibrationError(
                f"the file declares units {declared!r} but {override!r} was requested",
                path=path,
                field="units",
            )
        return str(declared)
    if override is not None:
        unit_scale(override, path)
    return override


def scale_rig(rig: Rig, factor: float) -> Rig:
    """The rig with every translation multiplied by ``factor`` (e.g. 1000 for metres → mm)."""
    if factor == 1.0:
        return rig
    cams = tuple(
        Camera(c.name, c.width, c.height, c.K, c.dist, c.R, c.t * factor, c.serial) for c in rig
    )
    return Rig(cams, rig.name, dict(rig.metadata))
