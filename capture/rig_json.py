"""The canonical rig file: JSON, millimetres, one object per camera.

Layout::

    {
      "format": "tempeh-rig",
      "schema_version": 1,
      "units": "mm",                 # or "cm" / "m": translations are scaled to mm on load
      "name": "default16",
      "cameras": [
        {"name": "11_A", "serial": "0815-0000", "image_size": [W, H],
         "K": [[fx, s, cx], [0, fy, cy], [0, 0, 1]],   # pixels
         "dist": [k1, k2, p1, p2, k3],                 # OpenCV model
         "R": [[...], [...], [...]],                   # world -> camera rotation
         "t": [tx, ty, tz]}                            # world -> camera translation, in "units"
      ]
    }

Floats are written with ``repr`` precision, so a write/read round trip is exact. The file is
always written in millimetres. ``units`` must be declared: a file without it is refused.
"""

from __future__ import annotations

import json
import logging
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from capture.atomic import write_text_atomically
from capture.camera import Camera, Rig, validate_rig
from capture.errors import CalibrationError
from capture.rig_units import resolve_units, scale_rig, unit_scale

log = logging.getLogger(__name__)

FORMAT = "tempeh-rig"
SCHEMA_VERSION = 1
CAMERA_KEYS = ("name", "serial", "image_size", "K", "dist", "R", "t")


def _number_array(
    value: Any, shape: tuple[int, ...], path: Path, camera: str, field: str
) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or CalibrationError naming the field."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(
            f"expected numbers of shape {shape}, got {value!r}",
            path=path,
            camera=camera,
            field=field,
        ) from exc
    if arr.shape != shape:
        raise CalibrationError(
            f"expected shape {shape}, got {arr.shape}", path=path, camera=camera, field=field
        )
    return arr


def _parse_camera(entry: Any, index: int, path: Path) -> Camera:
    label = f"#{index}"
    if not isinstance(entry, dict):
        raise CalibrationError(
            f"camera entry must be an object, got {type(entry).__name__}", path=path, camera=label
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise CalibrationError(
            "missing or empty camera name", path=path, camera=label, field="name"
        )
    for key in CAMERA_KEYS:
        if key not in entry:
            raise CalibrationError("missing key", path=path, camera=name, field=key)
    serial = entry["serial"]
    if not isinstance(serial, str):
        raise CalibrationError(
            f"serial must be a string, got {serial!r}", path=path, camera=name, field="serial"
        )
    size = entry["image_size"]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise CalibrationError(
            f"image_size must be [width, height] integers, got {size!r}",
            path=path,
            camera=name,
            field="image_size",
        )
    return Camera(
        name=name,
        width=size[0],
        height=size[1],
        K=_number_array(entry["K"], (3, 3), path, name, "K"),
        dist=_number_array(entry["dist"], (5,), path, name, "dist"),
        R=_number_array(entry["R"], (3, 3), path, name, "R"),
        t=_number_array(entry["t"], (3,), path, name, "t"),
        serial=serial,
    )


def read_rig_json(path: str | PathLike[str], units: str | None = None) -> Rig:
    """Read and validate a canonical rig file; translations are returned in millimetres.

    Parameters
    ----------
    path : path-like
        The ``.json`` file.
    units : {"mm", "cm", "m"}, optional
        Must agree with the file's ``units`` when given.

    Raises
    ------
    CalibrationError
        Naming the file, the camera and the field for any missing, malformed or implausible value.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"cannot read rig file: {exc.strerror or exc}", path=path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"not valid JSON: {exc}", path=path) from exc
    if not isinstance(doc, dict):
        raise CalibrationError("top level must be a JSON object", path=path)
    if doc.get("format") != FORMAT:
        raise CalibrationError(
            f'expected "format": {FORMAT!r}, got {doc.get("format")!r}', path=path, field="format"
        )
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise CalibrationError(
            f"unsupported schema_version {doc.get('schema_version')!r} (expected {SCHEMA_VERSION})",
            path=path,
            field="schema_version",
        )
    if "units" not in doc and units is None:
        raise CalibrationError(
            'missing key: declare the length unit of the translations, e.g. "units": "mm" '
            '(or "cm", "m")',
            path=path,
            field="units",
        )
    unit = resolve_units(doc.get("units"), units, path)
    name = doc.get("name", path.stem)
    if not isinstance(name, str):
        raise CalibrationError(f"name must be a string, got {name!r}", path=path, field="name")
    cameras = doc.get("cameras")
    if not isinstance(cameras, list):
        raise CalibrationError("missing key or not a list", path=path, field="cameras")
    rig = Rig(tuple(_parse_camera(c, i, path) for i, c in enumerate(cameras)), name)
    rig = scale_rig(rig, unit_scale(unit, path))
    validate_rig(rig, path)
    log.debug("read %d cameras from %s", len(rig), path)
    return rig


def rig_to_json_text(rig: Rig) -> str:
    """The canonical JSON text of ``rig`` (millimetres, one line per field, repr floats)."""
    lines = [
        "{",
        f'  "format": {json.dumps(FORMAT)},',
        f'  "schema_version": {SCHEMA_VERSION},',
        '  "units": "mm",',
        f'  "name": {json.dumps(rig.name)},',
        '  "cameras": [',
    ]
    for i, cam in enumerate(rig):
        fields = {
            "name": cam.name,
            "serial": cam.serial,
            "image_size": [int(cam.width), int(cam.height)],
            "K": cam.K.tolist(),
            "dist": cam.dist.tolist(),
            "R": cam.R.tolist(),
            "t": cam.t.tolist(),
        }
        body = ",\n".join(f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
        lines.append("    {\n" + body + "\n    }" + ("," if i < len(rig) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def write_rig_json(rig: Rig, path: str | PathLike[str]) -> None:
    """Validate ``rig`` and write it as a canonical rig file in millimetres."""
    path = Path(path)
    validate_rig(rig, path)
    try:
        write_text_atomically(path, rig_to_json_text(rig))
    except OSError as exc:
        raise CalibrationError(f"cannot write rig file: {exc.strerror or exc}", path=path) from exc
    log.debug("wrote %d cameras to %s", len(rig), path)
