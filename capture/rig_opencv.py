"""Rigs in OpenCV ``cv2.FileStorage`` files (``.yaml``, ``.yml``, ``.xml``).

Node names (FileStorage keys cannot start with a digit, so cameras are stored by index)::

    units: "mm"                 # optional, "mm" (default), "cm" or "m"
    name: "default16"           # optional rig name
    cameras: ["11_A", "11_B"]   # sequence of camera names, in view order
    camera_0:                   # one map per camera, camera_<index into cameras>
      serial: "0815-0000"       # optional
      image_size: [W, H]        # ints, pixels (also accepted: image_width + image_height)
      K: !!opencv-matrix 3x3    # camera_matrix, pixels
      D: !!opencv-matrix 1x5    # (k1, k2, p1, p2, k3); 4, 5 or more terms, extras must be 0
      R: !!opencv-matrix 3x3    # world -> camera rotation; or rvec 3x1 (Rodrigues) instead
      T: !!opencv-matrix 3x1    # world -> camera translation, in ``units``
    camera_1: ...

Files are always written in millimetres with ``R`` (never ``rvec``). OpenCV writes doubles with
17 significant digits, so a write/read round trip is exact.
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from capture.camera import Camera, Rig, validate_rig
from capture.errors import CalibrationError
from capture.rig_units import resolve_units, scale_rig, unit_scale

log = logging.getLogger(__name__)

OPENCV_SUFFIXES = (".yaml", ".yml", ".xml")


def _string(node: cv2.FileNode) -> str | None:
    return None if node.empty() or node.isNone() else node.string()


def _matrix(node: cv2.FileNode, path: Path, camera: str, field: str) -> np.ndarray:
    if node.empty() or node.isNone():
        raise CalibrationError("missing key", path=path, camera=camera, field=field)
    if node.isSeq():
        values = [node.at(i).real() for i in range(node.size())]
        return np.asarray(values, dtype=np.float64)
    mat = node.mat()
    if mat is None:
        raise CalibrationError("not a matrix", path=path, camera=camera, field=field)
    return np.asarray(mat, dtype=np.float64)


def _image_size(node: cv2.FileNode, path: Path, camera: str) -> tuple[int, int]:
    size = node.getNode("image_size")
    if not size.empty() and size.isSeq() and size.size() == 2:
        values = [size.at(0), size.at(1)]
    else:
        values = [node.getNode("image_width"), node.getNode("image_height")]
    if any(v.empty() or v.isNone() or not v.isInt() for v in values):
        raise CalibrationError(
            "missing key or not integers: expected image_size [W, H]",
            path=path,
            camera=camera,
            field="image_size",
        )
    return int(values[0].real()), int(values[1].real())


def _camera(fs: cv2.FileStorage, index: int, name: str, path: Path) -> Camera:
    node = fs.getNode(f"camera_{index}")
    if node.empty() or not node.isMap():
        raise CalibrationError(
            f"missing map camera_{index}", path=path, camera=name, field=f"camera_{index}"
        )
    K = _matrix(node.getNode("K"), path, name, "K")
    if K.shape != (3, 3):
        raise CalibrationError(f"expected 3x3, got {K.shape}", path=path, camera=name, field="K")
    D = _matrix(node.getNode("D"), path, name, "D").ravel()
    if D.size < 4 or np.any(D[5:] != 0.0):
        raise CalibrationError(
            f"expected 4 or 5 distortion terms (k1, k2, p1, p2[, k3]), got {D.size}",
            path=path,
            camera=name,
            field="D",
        )
    dist = np.zeros(5)
    dist[: min(D.size, 5)] = D[:5]
    rnode = node.getNode("R")
    if not rnode.empty() and not rnode.isNone():
        R = _matrix(rnode, path, name, "R")
        if R.shape != (3, 3):
            raise CalibrationError(
                f"expected 3x3, got {R.shape}", path=path, camera=name, field="R"
            )
    else:
        rvec = _matrix(node.getNode("rvec"), path, name, "R or rvec").reshape(-1)
        if rvec.size != 3 or not np.all(np.isfinite(rvec)):
            raise CalibrationError(
                "expected 3 finite numbers", path=path, camera=name, field="rvec"
            )
        R = cv2.Rodrigues(rvec)[0]
    T = _matrix(node.getNode("T"), path, name, "T").reshape(-1)
    if T.size != 3:
        raise CalibrationError(
            f"expected 3 values, got {T.size}", path=path, camera=name, field="T"
        )
    width, height = _image_size(node, path, name)
    serial = _string(node.getNode("serial")) or ""
    return Camera(name, width, height, K, dist, R, T, serial)


def read_rig_opencv(path: str | PathLike[str], units: str | None = None) -> Rig:
    """Read and validate a FileStorage rig (layout in the module docstring), in millimetres.

    Parameters
    ----------
    path : path-like
        ``.yaml``, ``.yml`` or ``.xml`` file.
    units : {"mm", "cm", "m"}, optional
        Unit of ``T`` where the file declares none; must agree with the file's ``units``.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationError("no such file", path=path)
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    # A parse error inside the constructor surfaces as SystemError from the Python binding.
    except (cv2.error, SystemError) as exc:
        reason = getattr(exc, "err", None) or str(exc.__cause__ or exc)
        raise CalibrationError(
            f"not a readable OpenCV FileStorage file: {reason}", path=path
        ) from exc
    if not fs.isOpened():
        raise CalibrationError("not a readable OpenCV FileStorage file", path=path)
    try:
        unit = resolve_units(_string(fs.getNode("units")), units, path) or "mm"
        names_node = fs.getNode("cameras")
        if names_node.empty() or not names_node.isSeq():
            raise CalibrationError(
                "missing key: a sequence of camera names", path=path, field="cameras"
            )
        names = [names_node.at(i).string() for i in range(names_node.size())]
        rig_name = _string(fs.getNode("name")) or path.stem
        cams = tuple(_camera(fs, i, n or f"#{i}", path) for i, n in enumerate(names))
    except cv2.error as exc:
        raise CalibrationError(f"malformed OpenCV FileStorage file: {exc.err}", path=path) from exc
    finally:
        fs.release()
    rig = scale_rig(Rig(cams, rig_name), unit_scale(unit, path))
    validate_rig(rig, path)
    log.debug("read %d cameras from %s", len(rig), path)
    return rig


def write_rig_opencv(rig: Rig, path: str | PathLike[str]) -> None:
    """Validate ``rig`` and write it as a FileStorage file; the format follows the suffix."""
    path = Path(path)
    validate_rig(rig, path)
    if path.suffix.lower() not in OPENCV_SUFFIXES:
        raise CalibrationError(f"expected one of {OPENCV_SUFFIXES}", path=path)
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    if not fs.isOpened():
        raise CalibrationError("cannot open for writing", path=path)
    try:
        fs.write("units", "mm")
        fs.write("name", rig.name)
        fs.startWriteStruct("cameras", cv2.FileNode_SEQ)
        for cam in rig:
            fs.write("", cam.name)
        fs.endWriteStruct()
        for i, cam in enumerate(rig):
            fs.startWriteStruct(f"camera_{i}", cv2.FileNode_MAP)
            fs.write("serial", cam.serial)
            fs.startWriteStruct("image_size", cv2.FileNode_SEQ | cv2.FileNode_FLOW)
            fs.write("", int(cam.width))
            fs.write("", int(cam.height))
            fs.endWriteStruct()
            fs.write("K", np.ascontiguousarray(cam.K))
            fs.write("D", np.ascontiguousarray(cam.dist.reshape(1, 5)))
            fs.write("R", np.ascontiguousarray(cam.R))
            fs.write("T", np.ascontiguousarray(cam.t.reshape(3, 1)))
            fs.endWriteStruct()
    finally:
        fs.release()
    log.debug("wrote %d cameras to %s", len(rig), path)
