"""3dMD / TEMPEH ``.tka`` calibrations (Tsai model), one file per camera.

A folder of ``.tka`` files is one rig: views are ordered by sorted file name and a camera is
named by its file stem (``11_A.tka`` → ``"11_A"``). Lines are parsed by their ``%`` key token
(``%M`` header then three rotation rows, ``%X %Y %Z`` camera centre mm, ``%f`` focal length mm,
``%K``/``%K2`` Tsai κ1/κ2, ``%S``, ``%x %y`` pixel size mm, ``%a %b`` principal point px,
``%is W H``, ``%c``), see tempeh-reference §1.3.

Distortion. The Tsai terms are *undistortion* coefficients on the sensor plane (mm). They are
turned into OpenCV forward coefficients ``(k1, k2)`` by the official least-squares fit
(:func:`tsai_to_opencv`); ``p1 = p2 = k3 = 0``.

Resizing. With ``official_resize=True`` the mm focal length is divided by ``resize_factor``
*before* the fit, as the official loader does, so the distortion depends on the factor (a quirk
that the released networks were trained with), and the principal point is ``(a, b) / r``. With
the default ``official_resize=False`` the distortion is fitted at full resolution and the
camera is then scaled with :meth:`Camera.scaled` (pixel-area convention).

Writing. ``.tka`` holds no tangential terms, ``k3`` or skew; such cameras are refused. The κ
values written are solved (Newton on the official fit, :func:`opencv_to_tsai`) so that reading
the file back gives the camera's ``(k1, k2)`` again; when the rig was read from ``.tka`` at full
resolution the original κ, focal length in mm, ``%S`` and ``%c`` (kept in
``rig.metadata["tka"][name]``) are written unchanged.
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

import numpy as np

from capture.atomic import write_text_atomically
from capture.camera import Camera, Rig, validate_rig
from capture.errors import CalibrationError
from capture.rig_units import resolve_units, scale_rig, unit_scale

log = logging.getLogger(__name__)

SCALAR_KEYS = ("%X", "%Y", "%Z", "%f", "%K", "%K2", "%S", "%x", "%y", "%a", "%b", "%c")
DEFAULT_PIXEL_SIZE_MM = 0.00454
"""Pixel size used when a camera from another format is written as ``.tka``."""


def _fit_rho(K1: float, K2: float, width: int, height: int, fx: float, fy: float) -> tuple:
    rho = 0.01 * np.arange(1, 101) * np.sqrt((width / fx) ** 2 + (height / fy) ** 2)
    u = rho * (1.0 + K1 * rho**2 + K2 * rho**4)
    return rho, u


def tsai_to_opencv(
    kappa1: float, kappa2: float, f_mm: float, width: int, height: int, fx: float, fy: float
) -> np.ndarray:
    """Official conversion of Tsai (κ1, κ2) to OpenCV forward ``(k1, k2)``.

    ``K1 = κ1 f²``, ``K2 = κ2 f⁴`` (normalised units); 100 radii ``ρ_i = 0.01 i √((W/fx)² +
    (H/fy)²)``, ``i = 1..100`` are undistorted to ``u_i = ρ_i (1 + K1 ρ_i² + K2 ρ_i⁴)`` and
    ``ρ/u − 1 ≈ k1 u² + k2 u⁴`` is solved by least squares.

    Parameters
    ----------
    kappa1, kappa2 : float
        Tsai radial terms, mm⁻² and mm⁻⁴.
    f_mm : float
        Focal length in mm (the *resized* one in the official loader).
    width, height : int
        Image size, pixels.
    fx, fy : float
        Focal lengths in pixels.

    Returns
    -------
    np.ndarray
        (2,) float64 ``(k1, k2)``.
    """
    rho, u = _fit_rho(kappa1 * f_mm**2, kappa2 * f_mm**4, width, height, fx, fy)
    A = np.stack([u**2, u**4], axis=1)
    return np.linalg.lstsq(A, rho / u - 1.0, rcond=None)[0]


def opencv_to_tsai(
    k: np.ndarray, f_mm: float, width: int, height: int, fx: float, fy: float
) -> tuple[float, float]:
    """Tsai ``(κ1, κ2)`` for which :func:`tsai_to_opencv` returns ``k = (k1, k2)``.

    Newton iteration on the fit (the map is smooth and nearly linear for real lenses), started
    from the series inverse ``K1 ≈ −k1``, ``K2 ≈ 3k1² − k2``.
    """
    k = np.asarray(k, dtype=np.float64)
    scale = np.array([f_mm**2, f_mm**4])

    def g(Kn: np.ndarray) -> np.ndarray:
        return tsai_to_opencv(Kn[0], Kn[1], 1.0, width, height, fx, fy)

    Kn = np.array([-k[0], 3.0 * k[0] ** 2 - k[1]])
    for _ in range(50):
        res = g(Kn) - k
        if np.abs(res).max() <= 1e-15 * max(1.0, np.abs(k).max()):
            break
        J = np.empty((2, 2))
        for j in range(2):
            h = 1e-7 * max(1.0, abs(Kn[j]))
            step = np.zeros(2)
            step[j] = h
            J[:, j] = (g(Kn + step) - g(Kn - step)) / (2.0 * h)
        Kn = Kn - np.linalg.solve(J, res)
    else:
        raise CalibrationError(
            f"cannot express distortion {k.tolist()} as Tsai κ1, κ2", field="dist"
        )
    kappa = Kn / scale
    return float(kappa[0]), float(kappa[1])


def official_landscape_update(
    K: np.ndarray, image_size_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The official dataset's portrait → landscape intrinsics update (compatibility mode).

    For ``H > W`` returns ``[[0, 1, 0], [−1, 0, W], [0, 0, 1]] @ K`` (note ``W``, not ``W − 1``)
    and the swapped size; landscape cameras are returned unchanged.

    Parameters
    ----------
    K : np.ndarray
        (3, 3) intrinsics, pixels.
    image_size_hw : (int, int)
        ``(H, W)`` of the (resized) image.
    """
    h, w = (int(v) for v in image_size_hw)
    K = np.asarray(K, dtype=np.float64)
    if h <= w:
        return K.copy(), (h, w)
    rot = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, float(w)], [0.0, 0.0, 1.0]])
    return rot @ K, (w, h)


def parse_tka(path: str | PathLike[str]) -> dict:
    """The raw values of one ``.tka`` file, keyed by token (``"%X"``, ...; ``"R"``, ``"%is"``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read .tka file: {exc}", path=path) from exc
    camera = path.stem
    raw: dict = {}
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            continue
        key = tokens[0]
        if key == "%M":
            rows = [ln.split() for ln in lines[i + 1 : i + 4]]
            try:
                R = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
            except ValueError as exc:
                raise CalibrationError(
                    f"bad rotation row: {exc}", path=path, camera=camera, field="%M"
                ) from exc
            if R.shape != (3, 3):
                raise CalibrationError(
                    "expected three rotation rows of 3 numbers after %M",
                    path=path,
                    camera=camera,
                    field="%M",
                )
            raw["R"] = R
        elif key == "%is":
            try:
                raw[key] = (int(tokens[1]), int(tokens[2]))
            except (IndexError, ValueError) as exc:
                raise CalibrationError(
                    "expected '%is W H' with integers", path=path, camera=camera, field="%is"
                ) from exc
        elif key in SCALAR_KEYS:
            try:
                raw[key] = float(tokens[1])
            except (IndexError, ValueError) as exc:
                raise CalibrationError(
                    f"expected one number, got {line!r}", path=path, camera=camera, field=key
                ) from exc
    for key in (
        "R",
        "%X",
        "%Y",
        "%Z",
        "%f",
        "%K",
        "%K2",
        "%S",
        "%x",
        "%y",
        "%a",
        "%b",
        "%is",
        "%c",
    ):
        if key not in raw:
            raise CalibrationError(
                "missing key (truncated file?)",
                path=path,
                camera=camera,
                field="%M" if key == "R" else key,
            )
    return raw


def camera_from_tka(
    path: str | PathLike[str], resize_factor: int = 1, official_resize: bool = False
) -> tuple[Camera, dict]:
    """One camera from a ``.tka`` file and the raw Tsai values kept as metadata.

    Returns
    -------
    (Camera, dict)
        The camera (world mm) at ``1 / resize_factor`` resolution and ``{"f_mm", "kappa1",
        "kappa2", "S", "c", "pixel_size", "resize_factor", "official_resize"}``.
    """
    path = Path(path)
    if not isinstance(resize_factor, int) or resize_factor < 1:
        raise CalibrationError(
            f"resize_factor must be a positive int, got {resize_factor!r}", path=path
        )
    raw = parse_tka(path)
    r = resize_factor if official_resize else 1
    width, height = raw["%is"][0] // r, raw["%is"][1] // r
    f = raw["%f"] / r
    fx, fy = f / raw["%x"], f / raw["%y"]
    K = np.array([[fx, 0.0, raw["%a"] / r], [0.0, fy, raw["%b"] / r], [0.0, 0.0, 1.0]])
    k12 = tsai_to_opencv(raw["%K"], raw["%K2"], f, width, height, fx, fy)
    R = raw["R"]
    C = np.array([raw["%X"], raw["%Y"], raw["%Z"]])
    cam = Camera(path.stem, width, height, K, [k12[0], k12[1], 0.0, 0.0, 0.0], R, -R @ C)
    if not official_resize and resize_factor != 1:
        cam = cam.scaled(resize_factor)
    meta = {
        "f_mm": raw["%f"],
        "kappa1": raw["%K"],
        "kappa2": raw["%K2"],
        "S": raw["%S"],
        "c": raw["%c"],
        "pixel_size": (raw["%x"], raw["%y"]),
        "resize_factor": resize_factor,
        "official_resize": official_resize,
    }
    return cam, meta


def tka_files(path: str | PathLike[str]) -> list[Path]:
    """The ``.tka`` files of a rig: a folder's, sorted by name, or the single file given."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".tka")
        if not files:
            raise CalibrationError("folder holds no .tka files", path=path)
        return files
    if not path.is_file():
        raise CalibrationError("no such file or folder", path=path)
    return [path]


def read_rig_tka(
    path: str | PathLike[str],
    resize_factor: int = 1,
    official_resize: bool = False,
    units: str | None = None,
) -> Rig:
    """Read a folder of ``.tka`` files (or one file) as a validated rig in millimetres.

    ``.tka`` files are in mm; ``units`` may override that for files made otherwise.
    ``rig.metadata["tka"]`` maps camera name to the raw Tsai values.
    """
    path = Path(path)
    files = tka_files(path)
    pairs = [camera_from_tka(p, resize_factor, official_resize) for p in files]
    rig = Rig(
        tuple(c for c, _ in pairs),
        path.stem if path.is_file() else path.resolve().name,
        {"tka": {c.name: m for c, m in pairs}},
    )
    rig = scale_rig(rig, unit_scale(resolve_units(None, units, path) or "mm", path))
    validate_rig(rig, path)
    log.debug("read %d .tka cameras from %s", len(rig), path)
    return rig


def _fmt(value: float) -> str:
    return repr(float(value))


def tka_text(cam: Camera, meta: dict | None = None) -> str:
    """The ``.tka`` text of ``cam`` (see the module docstring for how κ is chosen)."""
    if np.any(cam.dist[2:] != 0.0) or cam.K[0, 1] != 0.0:
        raise CalibrationError(
            ".tka cannot hold tangential distortion, k3 or skew (must be 0)",
            camera=cam.name,
            field="dist" if np.any(cam.dist[2:] != 0.0) else "K",
        )
    fx, fy = cam.K[0, 0], cam.K[1, 1]
    usable = meta is not None and meta.get("resize_factor", 1) == 1
    f_mm = meta["f_mm"] if usable else DEFAULT_PIXEL_SIZE_MM * fx
    px, py = f_mm / fx, f_mm / fy
    if usable:
        kappa = (meta["kappa1"], meta["kappa2"])
        k_back = tsai_to_opencv(*kappa, f_mm, cam.width, cam.height, fx, fy)
        if not np.allclose(k_back, cam.dist[:2], rtol=1e-14, atol=0.0):
            kappa = opencv_to_tsai(cam.dist[:2], f_mm, cam.width, cam.height, fx, fy)
    else:
        kappa = opencv_to_tsai(cam.dist[:2], f_mm, cam.width, cam.height, fx, fy)
    # Solve R C = -t rather than C = -Rᵀ t: file rotations are orthonormal only to ~1e-10,
    # and reading back computes t = -R C.
    C = np.linalg.solve(cam.R, -cam.t)
    rows = [" ".join(_fmt(v) for v in row) + " " for row in cam.R]
    lines = [
        "%M",
        *rows,
        f"%X {_fmt(C[0])}",
        f"%Y {_fmt(C[1])}",
        f"%Z {_fmt(C[2])}",
        f"%f {_fmt(f_mm)}",
        f"%K {_fmt(kappa[0])}",
        f"%K2 {_fmt(kappa[1])}",
        f"%S {_fmt(meta.get('S', 1.0) if meta else 1.0)}",
        f"%x {_fmt(px)}",
        f"%y {_fmt(py)}",
        f"%a {_fmt(cam.K[0, 2])}",
        f"%b {_fmt(cam.K[1, 2])}",
        f"%is {int(cam.width)} {int(cam.height)}",
        f"%c {_fmt(meta.get('c', 0.0) if meta else 0.0)}",
    ]
    return "\n".join(lines) + "\n"


def write_rig_tka(rig: Rig, path: str | PathLike[str]) -> None:
    """Write ``rig`` as a folder of ``<camera name>.tka`` files (created if needed).

    View order is not stored: it comes back as the sorted camera names.
    """
    path = Path(path)
    validate_rig(rig, path)
    meta = rig.metadata.get("tka", {})
    texts = {}
    for cam in rig:
        try:
            texts[cam.name] = tka_text(cam, meta.get(cam.name))
        except CalibrationError as exc:
            raise CalibrationError(
                exc.reason, path=path, camera=exc.camera, field=exc.field
            ) from exc
    try:
        path.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            write_text_atomically(path / f"{name}.tka", text, encoding="ascii")
    except OSError as exc:
        raise CalibrationError(f"cannot write .tka files: {exc}", path=path) from exc
    log.debug("wrote %d .tka files to %s", len(rig), path)
