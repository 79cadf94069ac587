"""Load MPI-IS FLAME files (``generic_model.pkl`` 2017–2020, ``flame2023.pkl``) without chumpy.

The pickle is read with :class:`inference.flame_pickle.FlameUnpickler` (an allow-list; nothing
else is executed). Metres are converted to millimetres. ``shapedirs`` holds identity
components 0–299 and expression components 300 onwards.

Version heuristic (FLAME files carry no version field): a file name starting with
``flame2023`` (``flame2023.pkl``, ``flame2023_no_jaw.pkl``) is FLAME 2023; otherwise a year
token 2017/2019/2020/2023 in the file name or its folder name (e.g. ``FLAME2020/``) names the
version; otherwise it is reported as ``"FLAME 2017-2020 (generic_model)"``. FLAME 2020 and
2023 parameters are not interchangeable, so the version is logged and stored in the data.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from capture.errors import HeadModelError
from inference.flame_pickle import FlameUnpickler, to_array
from inference.head_data import HeadModelData, HeadTemplate

log = logging.getLogger(__name__)

FLAME_HELP = (
    "FLAME is the MPI-IS FLAME head model (https://flame.is.tue.mpg.de); it is not shipped "
    "with tempeh-studio. Download it there after accepting its license (FLAME 2020: "
    "generic_model.pkl, FLAME 2023: flame2023.pkl) and pass the path of the .pkl file"
)
NUM_IDENTITY = 300
"""FLAME's identity components come first in ``shapedirs``; the rest are expression."""
NUM_VERTICES = 5023
NUM_FACES = 9976
NUM_JOINTS = 5
_ROOT_PARENT = (-1, 2**32 - 1)


def flame_version(path: str | Path) -> str:
    """The FLAME release a file belongs to, from its name (see the module docstring)."""
    path = Path(path)
    if path.name.lower().startswith("flame2023"):
        return "FLAME 2023"
    for text in (path.name, path.parent.name):
        match = re.search(r"(2017|2019|2020|2023)", text)
        if match:
            return f"FLAME {match.group(1)}"
    return "FLAME 2017-2020 (generic_model)"


def read_flame_pickle(path: str | Path) -> dict[str, Any]:
    """The raw FLAME dict (values are arrays or stubs), read with the restricted unpickler.

    Raises
    ------
    HeadModelError
        If the file is missing, not a pickle, not a dict, or references a forbidden global.
    """
    path = Path(path)
    if not path.is_file():
        raise HeadModelError(f"file not found. {FLAME_HELP}", path=path)
    try:
        with path.open("rb") as fh:
            raw = FlameUnpickler(fh, path=str(path)).load()
    except HeadModelError as exc:
        raise HeadModelError(f"{exc.reason}. {FLAME_HELP}", path=path) from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        UnicodeDecodeError,
        OSError,
    ) as exc:
        raise HeadModelError(
            f"not a FLAME model pickle ({type(exc).__name__}: {exc}). {FLAME_HELP}", path=path
        ) from exc
    if not isinstance(raw, dict):
        raise HeadModelError(
            f"expected a pickled dict, got {type(raw).__name__}. {FLAME_HELP}", path=path
        )
    return raw


def _array(raw: dict[str, Any], key: str, shape: tuple[int | None, ...], path: str) -> np.ndarray:
    if key not in raw:
        raise HeadModelError(
            f"missing key {key!r} (has: {sorted(map(str, raw))}). {FLAME_HELP}",
            path=path,
            field=key,
        )
    arr = to_array(raw[key], key, path)
    ok = arr.ndim == len(shape) and all(
        s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
    )
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise HeadModelError(
            f"expected shape ({want}), got {arr.shape}. {FLAME_HELP}", path=path, field=key
        )
    return arr


def _parents(kintree: np.ndarray, path: str) -> np.ndarray:
    """Row 0 of ``kintree_table`` as parent column indices, root ``-1``."""
    ids = [int(i) for i in kintree[1]]
    col = {joint_id: c for c, joint_id in enumerate(ids)}
    parents = [-1]
    if int(kintree[0, 0]) not in _ROOT_PARENT:
        raise HeadModelError(
            f"root parent must be -1 or 4294967295, got {int(kintree[0, 0])}",
            path=path,
            field="kintree_table",
        )
    for c in range(1, kintree.shape[1]):
        parent_id = int(kintree[0, c])
        if parent_id not in col:
            raise HeadModelError(
                f"joint {ids[c]} has unknown parent {parent_id}", path=path, field="kintree_table"
            )
        parents.append(col[parent_id])
    return np.asarray(parents, dtype=np.int64)


def load_masks(masks_path: str | Path, num_vertices: int) -> dict[str, np.ndarray]:
    """Vertex region masks from TEMPEH's ``vertex_masks2.npz`` (int index arrays per region).

    Raises
    ------
    HeadModelError
        If the file is missing, not an npz of integer arrays, or indices are out of range.
    """
    masks_path = Path(masks_path)
    if not masks_path.is_file():
        raise HeadModelError("region mask file not found", path=masks_path)
    try:
        with np.load(masks_path, allow_pickle=False) as npz:
            regions = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise HeadModelError(f"not a .npz of index arrays ({exc})", path=masks_path) from exc
    for key, idx in regions.items():
        if not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise HeadModelError(
                f"expected a 1-D integer index array, got {idx.dtype} {idx.shape}",
                path=masks_path,
                field=key,
            )
        if idx.size and (idx.min() < 0 or idx.max() >= num_vertices):
            raise HeadModelError(
                f"indices must lie in [0, {num_vertices})", path=masks_path, field=key
            )
    return {key: idx.astype(np.int64) for key, idx in regions.items()}


def load_flame(path: str | Path, masks_path: str | Path | None = None) -> HeadModelData:
    """Load a FLAME pickle as :class:`HeadModelData` in millimetres.

    Parameters
    ----------
    path : str or Path
        ``generic_model.pkl`` (FLAME 2017–2020) or ``flame2023.pkl``.
    masks_path : str or Path, optional
        TEMPEH's ``vertex_masks2.npz`` to fill ``template.regions`` (FLAME files have none).

    Returns
    -------
    HeadModelData
        ``kind="flame"``, ``version`` from :func:`flame_version`, 5023 vertices, 5 joints,
        identity components ``shapedirs[..., :300]`` and expression ``shapedirs[..., 300:]``.

    Raises
    ------
    HeadModelError
        Missing file, not a pickle, forbidden global, missing key or wrong shape; the message
        names the file and key and says where to download FLAME.
    """
    path = Path(path)
    p = str(path)
    raw = read_flame_pickle(path)
    n, j = NUM_VERTICES, NUM_JOINTS
    v_template = _array(raw, "v_template", (n, 3), p) * 1000.0
    faces = _array(raw, "f", (NUM_FACES, 3), p).astype(np.int64)
    shapedirs = _array(raw, "shapedirs", (n, 3, None), p) * 1000.0
    posedirs = _array(raw, "posedirs", (n, 3, 9 * (j - 1)), p) * 1000.0
    J_regressor = _array(raw, "J_regressor", (j, n), p)
    weights = _array(raw, "weights", (n, j), p)
    parents = _parents(_array(raw, "kintree_table", (2, j), p), p)
    total = shapedirs.shape[2]
    split = NUM_IDENTITY if total > NUM_IDENTITY else total
    regions = {} if masks_path is None else load_masks(masks_path, n)
    version = flame_version(path)
    try:
        data = HeadModelData(
            template=HeadTemplate(v_template, faces, regions=regions, name="flame"),
            shapedirs=shapedirs[..., :split],
            exprdirs=shapedirs[..., split:],
            posedirs=posedirs,
            J_regressor=J_regressor,
            weights=weights,
            parents=parents,
            kind="flame",
            version=version,
        )
    except HeadModelError as exc:
        raise HeadModelError(f"{exc}. {FLAME_HELP}", path=path) from exc
    log.info(
        "loaded %s from %s: %d shape, %d expression components, %d regions",
        version,
        path,
        data.num_shape,
        data.num_expression,
        len(regions),
    )
    return data
