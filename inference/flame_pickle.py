"""A restricted unpickler for FLAME model files: chumpy stubs, numpy and scipy.sparse only.

FLAME pickles store arrays as chumpy objects. chumpy does not work with current numpy, and a
pickle can run arbitrary code, so :class:`FlameUnpickler` resolves only an allow-list of
globals: every ``chumpy.*`` class becomes :class:`ChumpyStub` (which keeps the ``'x'`` array),
numpy array/dtype/scalar reconstruction, scipy sparse matrices (as :class:`SparseStub`,
rebuilt by :func:`to_array`), ``object``/``set``/``frozenset``, and two reconstruction
helpers replaced by checked equivalents.
Anything else is refused before it is looked up, let alone called.
"""

from __future__ import annotations

import codecs
import pickle
from typing import Any

import numpy as np
import scipy.sparse

from capture.errors import HeadModelError

_NP_RECONSTRUCT = np.array(0).__reduce__()[0]
_NP_SCALAR = np.float64(0).__reduce__()[0]
_NP_FROMBUFFER = np.arange(1.0).__reduce_ex__(5)[0]  # protocol-5 pickles of re-saved files

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy._core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _NP_FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _NP_FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_SPARSE_MODULES = (
    "scipy.sparse.csc",
    "scipy.sparse._csc",
    "scipy.sparse.csr",
    "scipy.sparse._csr",
    "scipy.sparse.coo",
    "scipy.sparse._coo",
)
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "coo_matrix")
_SAFE_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}
"""Builtins protocol-2 pickles may name: ``object`` (copyreg base) and the set types that
chumpy object state can hold; none of them can run code."""


class ChumpyStub:
    """Stand-in for any chumpy class: keeps the unpickled state, exposes ``x``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}

    @property
    def x(self) -> Any:
        """The stored value, or ``None`` for chumpy expressions without one."""
        return self.state.get("x")


class SparseStub:
    """Stand-in for a pickled scipy sparse matrix; :func:`to_array` rebuilds it."""

    format = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


def _sparse_stub(name: str) -> type[SparseStub]:
    return type(name, (SparseStub,), {"format": name[:3]})


_SPARSE_STUBS = {name: _sparse_stub(name) for name in _SPARSE_NAMES}


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes (latin1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` limited to the stub classes (protocol 0/1 pickles)."""
    if not (isinstance(cls, type) and issubclass(cls, ChumpyStub | SparseStub)) or base is not (
        object
    ):
        raise pickle.UnpicklingError(f"refusing copyreg._reconstructor for {cls!r}")
    return cls.__new__(cls)


class FlameUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a FLAME file needs.

    Raises
    ------
    HeadModelError
        From :meth:`find_class` for any other global (nothing is imported or executed).
    """

    def __init__(self, file: Any, *, path: str = "") -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        """Map an allowed global to its safe implementation; refuse every other one."""
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStub
        if module in _SPARSE_MODULES and name in _SPARSE_STUBS:
            return _SPARSE_STUBS[name]
        if module in ("scipy.sparse",) and name in _SPARSE_STUBS:
            return _SPARSE_STUBS[name]
        if (module, name) == ("_codecs", "encode"):
            return _codecs_encode
        if (module, name) in (("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")):
            return _reconstructor
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        raise HeadModelError(
            f"refusing to load: the pickle references the global '{module}.{name}', which a "
            "FLAME model file never contains (a pickle can execute code, so it was not run)",
            path=self._path or None,
        )


def to_array(value: Any, key: str, path: str) -> np.ndarray:
    """A dense numpy array from an unpickled FLAME value (array, chumpy stub or sparse stub).

    Raises
    ------
    HeadModelError
        If the value is a chumpy expression without stored data or an invalid sparse matrix.
    """
    if isinstance(value, ChumpyStub):
        if value.x is None:
            raise HeadModelError(
                "chumpy object without a stored 'x' array (an unevaluated expression)",
                path=path,
                field=key,
            )
        return to_array(value.x, key, path)
    if isinstance(value, SparseStub):
        return _sparse_to_dense(value, key, path)
    if scipy.sparse.issparse(value):
        return value.toarray()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise HeadModelError(f"not an array ({exc})", path=path, field=key) from exc


def _sparse_to_dense(stub: SparseStub, key: str, path: str) -> np.ndarray:
    state = stub.state
    shape = state.get("_shape", state.get("shape"))
    try:
        shape = tuple(int(s) for s in shape)
        if stub.format == "coo":
            row = state["row"] if "row" in state else state["coords"][0]
            col = state["col"] if "col" in state else state["coords"][1]
            mat = scipy.sparse.coo_matrix((state["data"], (row, col)), shape=shape)
        else:
            cls = scipy.sparse.csc_matrix if stub.format == "csc" else scipy.sparse.csr_matrix
            mat = cls((state["data"], state["indices"], state["indptr"]), shape=shape)
        return mat.toarray()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HeadModelError(
            f"invalid sparse {stub.format} matrix ({exc!r})", path=path, field=key
        ) from exc
