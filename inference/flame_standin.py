"""Write a random stand-in for a FLAME pickle in the exact FLAME layout (tests only).

The file is a protocol-2 pickle of a dict whose arrays are objects pickled under the global
name ``chumpy.ch.Ch`` (state ``{'x': array}``), with a scipy CSC ``J_regressor`` and
``kintree_table`` root parent 4294967295, as in ``generic_model.pkl``. Values are random
(seeded); the geometry means nothing. chumpy itself is never imported.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse

from inference.flame import NUM_FACES, NUM_JOINTS, NUM_VERTICES


class _Ch:
    """Pickles as ``chumpy.ch.Ch`` with state ``{'x': array}`` (NEWOBJ + BUILD, like chumpy)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x


_Ch.__module__ = "chumpy.ch"
_Ch.__qualname__ = "Ch"
_Ch.__name__ = "Ch"


@contextmanager
def _fake_chumpy() -> Iterator[None]:
    """Register ``chumpy`` and ``chumpy.ch`` in ``sys.modules`` only while pickling."""
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    package = types.ModuleType("chumpy")
    module = types.ModuleType("chumpy.ch")
    module.Ch = _Ch
    package.ch = module
    sys.modules["chumpy"] = package
    sys.modules["chumpy.ch"] = module
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def flame_standin_dict(seed: int = 0, num_components: int = 400) -> dict[str, object]:
    """The FLAME dict with random values (metres) and chumpy-pickling arrays."""
    rng = np.random.default_rng(seed)
    n, j = NUM_VERTICES, NUM_JOINTS
    v_template = rng.normal(0.0, 0.1, (n, 3))
    faces = rng.integers(0, n, (NUM_FACES, 3)).astype(np.uint32)
    weights = rng.random((n, j))
    weights /= weights.sum(axis=1, keepdims=True)
    J_dense = np.zeros((j, n))
    for row in range(j):
        idx = rng.choice(n, size=20, replace=False)
        J_dense[row, idx] = rng.random(20)
        J_dense[row] /= J_dense[row].sum()
    J_regressor = scipy.sparse.csc_matrix(J_dense)
    return {
        "v_template": _Ch(v_template),
        "f": faces,
        "shapedirs": _Ch(rng.normal(0.0, 1e-3, (n, 3, num_components))),
        "posedirs": rng.normal(0.0, 1e-3, (n, 3, 9 * (j - 1))),
        "J_regressor": J_regressor,
        "weights": _Ch(weights),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "J": _Ch(J_dense @ v_template),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def chumpy_array(x: np.ndarray) -> object:
    """An object that pickles as ``chumpy.ch.Ch`` with state ``{'x': x}``."""
    return _Ch(np.asarray(x))


def dumps_with_chumpy(obj: object, protocol: int = 2) -> bytes:
    """Pickle ``obj`` (which may hold :func:`chumpy_array` objects) to bytes."""
    with _fake_chumpy():
        return pickle.dumps(obj, protocol=protocol)


def write_flame_standin(path: str | Path, seed: int = 0, num_components: int = 400) -> Path:
    """Write the stand-in pickle (protocol 2, like the released files) and return its path."""
    path = Path(path)
    data = flame_standin_dict(seed, num_components)
    path.write_bytes(dumps_with_chumpy(data, protocol=2))
    return path
