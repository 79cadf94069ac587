"""The procedural head: the product's built-in, deterministic stand-in for FLAME.

A FLAME-layout linear-blend-skinned head in millimetres (``y`` up, ``z`` forward, ``x`` to the
head's left) generated entirely by our own code: a sculpted skin surface with a mouth slit,
two separate eyeball meshes, named identity and expression bases, smooth skinning weights for
FLAME's five joints, a joint regressor and TEMPEH-named region masks. ``posedirs`` are zeros
(no pose correctives).

The model is cached in ``resources/procedural_head.npz`` (plain arrays, no pickles); run
``python -m inference.procedural_head`` to regenerate it byte for byte.
"""

from __future__ import annotations

import io
import logging
import sys
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np

from capture.errors import HeadModelError
from inference.head_data import REGION_NAMES, HeadModelData, HeadTemplate
from inference.procedural.bases import expression_basis, identity_basis
from inference.procedural.rigging import PARENTS, joint_regressor, region_masks, skinning_weights
from inference.procedural.surface import build_surface
from resources import resource_path

log = logging.getLogger(__name__)

KIND = "procedural"
VERSION = "procedural v1"
CACHE_NAME = "procedural_head.npz"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_REGION_PREFIX = "region_"
_BASIS_DTYPE = np.float32
"""Blend shapes are stored (and built) at float32 precision to keep the file small."""


def _as_stored(basis: np.ndarray) -> np.ndarray:
    return basis.astype(_BASIS_DTYPE).astype(np.float64)


def build_procedural_head() -> HeadModelData:
    """Generate the procedural head (deterministic: the same arrays every run).

    Returns
    -------
    HeadModelData
        ``kind="procedural"``, ``version="procedural v1"``, lengths in mm, with
        ``shape_names`` and ``expression_names``; ``posedirs`` are zeros.
    """
    surface = build_surface()
    shapedirs, shape_names = identity_basis(surface)
    exprdirs, expression_names = expression_basis(surface)
    n = len(surface.vertices)
    template = HeadTemplate(
        vertices=surface.vertices,
        faces=surface.faces,
        regions=region_masks(surface),
        name=KIND,
    )
    return HeadModelData(
        template=template,
        shapedirs=_as_stored(shapedirs),
        exprdirs=_as_stored(exprdirs),
        posedirs=np.zeros((n, 3, 9 * (len(PARENTS) - 1))),
        J_regressor=joint_regressor(surface),
        weights=skinning_weights(surface),
        parents=PARENTS,
        kind=KIND,
        version=VERSION,
        shape_names=shape_names,
        expression_names=expression_names,
    )


def _arrays(data: HeadModelData) -> dict[str, np.ndarray]:
    """The npz members of a head model, in a fixed order."""
    arrays = {
        "v_template": data.template.vertices,
        "f": data.template.faces,
        "shapedirs": data.shapedirs.astype(_BASIS_DTYPE),
        "exprdirs": data.exprdirs.astype(_BASIS_DTYPE),
        "posedirs": data.posedirs.astype(_BASIS_DTYPE),
        "J_regressor": data.J_regressor,
        "weights": data.weights,
        "parents": data.parents,
        "shape_names": np.array(data.shape_names, dtype=str),
        "expression_names": np.array(data.expression_names, dtype=str),
        "kind": np.array(data.kind),
        "version": np.array(data.version),
    }
    for name in sorted(data.template.regions):
        arrays[_REGION_PREFIX + name] = data.template.regions[name]
    return arrays


def write_procedural_head(path: str | PathLike[str], data: HeadModelData | None = None) -> Path:
    """Write the procedural head as a reproducible npz (fixed zip dates, fixed member order).

    Parameters
    ----------
    path : str or PathLike
        Destination ``.npz``.
    data : HeadModelData, optional
        The model to write; default a fresh :func:`build_procedural_head`.

    Returns
    -------
    Path
        ``path``. Writing the same data twice gives identical bytes.
    """
    data = build_procedural_head() if data is None else data
    path = Path(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in _arrays(data).items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    path.write_bytes(buffer.getvalue())
    log.info("wrote %s (%d bytes)", path, len(buffer.getvalue()))
    return path


def read_procedural_head(path: str | PathLike[str]) -> HeadModelData:
    """Read a head written by :func:`write_procedural_head`.

    Raises
    ------
    HeadModelError
        If the file is missing, not an npz or lacks a member.
    """
    path = Path(path)
    if not path.is_file():
        raise HeadModelError(
            "procedural head file is missing; run `python -m inference.procedural_head`",
            path=path,
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise HeadModelError(f"not a readable npz: {exc}", path=path) from exc
    required = ("v_template", "f", "shapedirs", "exprdirs", "posedirs", "J_regressor")
    required += ("weights", "parents", "shape_names", "expression_names", "kind", "version")
    for key in required:
        if key not in arrays:
            raise HeadModelError("member missing", path=path, field=key)
    regions = {
        key[len(_REGION_PREFIX) :]: value
        for key, value in arrays.items()
        if key.startswith(_REGION_PREFIX)
    }
    missing = [name for name in REGION_NAMES if name not in regions]
    if missing:
        raise HeadModelError(f"region masks missing: {missing}", path=path, field="regions")
    try:
        return HeadModelData(
            template=HeadTemplate(arrays["v_template"], arrays["f"], regions, name=KIND),
            shapedirs=arrays["shapedirs"].astype(np.float64),
            exprdirs=arrays["exprdirs"].astype(np.float64),
            posedirs=arrays["posedirs"].astype(np.float64),
            J_regressor=arrays["J_regressor"],
            weights=arrays["weights"],
            parents=arrays["parents"],
            kind=str(arrays["kind"].item()),
            version=str(arrays["version"].item()),
            shape_names=tuple(arrays["shape_names"].tolist()),
            expression_names=tuple(arrays["expression_names"].tolist()),
        )
    except HeadModelError as exc:
        raise HeadModelError(exc.reason, path=path, field=exc.field) from exc


def load_procedural_head() -> HeadModelData:
    """The procedural head from the shipped cache ``resources/procedural_head.npz``."""
    return read_procedural_head(resource_path(CACHE_NAME))


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``resources/procedural_head.npz`` (or the path given as the one argument)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else resource_path(CACHE_NAME)
    write_procedural_head(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
