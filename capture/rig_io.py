"""Read and write rigs in any supported format, chosen by the path.

=====================  ==========================================
path                   format
=====================  ==========================================
``*.json``             canonical rig (:mod:`capture.rig_json`)
``*.yaml/.yml/.xml``   OpenCV FileStorage (:mod:`capture.rig_opencv`)
folder or ``*.tka``    3dMD/TEMPEH ``.tka`` (:mod:`capture.rig_tka`)
=====================  ==========================================
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from capture.camera import Rig
from capture.errors import CalibrationError
from capture.rig_json import read_rig_json, write_rig_json
from capture.rig_opencv import OPENCV_SUFFIXES, read_rig_opencv, write_rig_opencv
from capture.rig_tka import read_rig_tka, write_rig_tka

SUPPORTED = ".json, .yaml, .yml, .xml, .tka or a folder of .tka files"


def _kind(path: Path, writing: bool) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in OPENCV_SUFFIXES:
        return "opencv"
    if suffix == ".tka" or path.is_dir() or (writing and suffix == ""):
        return "tka"
    raise CalibrationError(
        f"unknown rig format {suffix or '(no suffix)'!r}; expected {SUPPORTED}", path=path
    )


def read_rig(path: str | PathLike[str], units: str | None = None) -> Rig:
    """Read and validate a rig in world millimetres, the format chosen by ``path``.

    Parameters
    ----------
    path : path-like
        A file or a folder of ``.tka`` files.
    units : {"mm", "cm", "m"}, optional
        The unit of the file's translations where the file does not declare one.
    """
    path = Path(path)
    if not path.exists():
        raise CalibrationError("no such file or folder", path=path)
    kind = _kind(path, writing=False)
    if kind == "json":
        return read_rig_json(path, units)
    if kind == "opencv":
        return read_rig_opencv(path, units)
    return read_rig_tka(path, units=units)


def write_rig(rig: Rig, path: str | PathLike[str]) -> None:
    """Write ``rig`` (millimetres), the format chosen by ``path``.

    A path without suffix (or an existing folder) becomes a folder of ``.tka`` files; a single
    ``.tka`` path is accepted only for a one-camera rig and writes into its parent folder.
    """
    path = Path(path)
    kind = _kind(path, writing=True)
    if kind == "json":
        write_rig_json(rig, path)
    elif kind == "opencv":
        write_rig_opencv(rig, path)
    elif path.suffix.lower() == ".tka":
        if len(rig) != 1 or rig.cameras[0].name != path.stem:
            raise CalibrationError(
                "a single .tka file holds one camera named like the file; give a folder instead",
                path=path,
            )
        write_rig_tka(rig, path.parent)
    else:
        write_rig_tka(rig, path)
