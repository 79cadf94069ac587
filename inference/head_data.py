"""Records describing a parametric head model and its template mesh (numpy, no torch).

Both the FLAME loader and the procedural head produce a :class:`HeadModelData`; the torch
:class:`inference.head_model.HeadModel` consumes it. Lengths are **millimetres** here (FLAME
files store metres; the loader converts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from capture.errors import HeadModelError

JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
"""The five joints of FLAME and of the procedural head, in kinematic-tree order."""

REGION_NAMES = (
    "face",
    "scalp",
    "neck",
    "left_ear",
    "right_ear",
    "left_eyeball",
    "right_eyeball",
    "left_eye_region",
    "right_eye_region",
    "lips",
    "nostrils",
    "boundary",
)
"""Region masks named as TEMPEH's ``vertex_masks2.npz`` keys."""


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) int64 unique undirected edges ``(a, b)`` with ``a < b`` of a triangle list, sorted."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=0)
    e.sort(axis=1)
    return np.unique(e, axis=0)


@dataclass(frozen=True, eq=False)
class HeadTemplate:
    """A template mesh in its canonical pose: the topology every output mesh shares.

    Attributes
    ----------
    vertices : np.ndarray
        (N, 3) float64 canonical vertex positions, mm.
    faces : np.ndarray
        (F, 3) int64 triangles, counter-clockwise seen from outside (normals point outwards).
    regions : dict[str, np.ndarray]
        Named int64 vertex index arrays (see :data:`REGION_NAMES`); a model may have fewer.
    name : str
        ``"flame"`` or ``"procedural"`` (or a user label).
    """

    vertices: np.ndarray
    faces: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "template"

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices, dtype=np.float64)
        f = np.asarray(self.faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3:
            raise HeadModelError(f"vertices must be (N, 3), got {v.shape}", field="vertices")
        if f.ndim != 2 or f.shape[1] != 3:
            raise HeadModelError(f"faces must be (F, 3), got {f.shape}", field="faces")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise HeadModelError(
                f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]",
                field="faces",
            )
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)
        regions = {}
        for key, idx in self.regions.items():
            idx = np.asarray(idx, dtype=np.int64)
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(v))):
                raise HeadModelError("region indices out of range", field=f"regions.{key}")
            regions[key] = idx
        object.__setattr__(self, "regions", regions)

    @property
    def num_vertices(self) -> int:
        """N."""
        return len(self.vertices)

    @property
    def edges(self) -> np.ndarray:
        """(E, 2) int64 unique edges, ``a < b``."""
        return unique_edges(self.faces)

    def region_mask(self, name: str) -> np.ndarray:
        """(N,) bool mask of a named region; :class:`HeadModelError` if the model has none."""
        if name not in self.regions:
            raise HeadModelError(
                f"template {self.name!r} has no region {name!r} (has: {sorted(self.regions)})",
                field="regions",
            )
        mask = np.zeros(self.num_vertices, dtype=bool)
        mask[self.regions[name]] = True
        return mask


@dataclass(frozen=True, eq=False)
class HeadModelData:
    """Everything a linear-blend-skinned head model needs, in FLAME's layout, in mm.

    Attributes
    ----------
    template : HeadTemplate
        Canonical mesh (``v_template`` and ``f``) with region masks.
    shapedirs : np.ndarray
        (N, 3, S) identity basis, mm per unit coefficient.
    exprdirs : np.ndarray
        (N, 3, E) expression basis, mm per unit coefficient.
    posedirs : np.ndarray
        (N, 3, 9 * (J - 1)) pose-corrective basis, mm per unit of ``(R - I)`` entries.
    J_regressor : np.ndarray
        (J, N) dense joint regressor (rows sum to 1).
    weights : np.ndarray
        (N, J) skinning weights (rows sum to 1).
    parents : np.ndarray
        (J,) int64 kinematic tree, ``parents[0] == -1``.
    kind : str
        ``"flame"`` or ``"procedural"``.
    version : str
        E.g. ``"FLAME 2020"``, ``"FLAME 2023"`` or ``"procedural v1"``.
    shape_names, expression_names : tuple[str, ...]
        Optional labels of the identity and expression components (empty for FLAME).
    """

    template: HeadTemplate
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    kind: str = "procedural"
    version: str = ""
    shape_names: tuple[str, ...] = ()
    expression_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.template.num_vertices
        j = len(np.asarray(self.parents))
        expect = {
            "shapedirs": (n, 3, None),
            "exprdirs": (n, 3, None),
            "posedirs": (n, 3, 9 * (j - 1)),
            "J_regressor": (j, n),
            "weights": (n, j),
        }
        for attr, shape in expect.items():
            arr = np.asarray(getattr(self, attr), dtype=np.float64)
            ok = arr.ndim == len(shape) and all(
                s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
            )
            if not ok:
                raise HeadModelError(
                    f"expected shape {tuple('*' if s is None else s for s in shape)}, "
                    f"got {arr.shape}",
                    field=attr,
                )
            if not np.all(np.isfinite(arr)):
                raise HeadModelError("contains NaN or infinite values", field=attr)
            object.__setattr__(self, attr, arr)
        parents = np.asarray(self.parents, dtype=np.int64)
        if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, j)):
            raise HeadModelError(
                f"kinematic tree must start at a root (-1) and list parents before children, "
                f"got {parents.tolist()}",
                field="parents",
            )
        object.__setattr__(self, "parents", parents)
        for attr, count in (
            ("shape_names", self.num_shape),
            ("expression_names", self.num_expression),
        ):
            names = tuple(str(n) for n in getattr(self, attr))
            if names and len(names) != count:
                raise HeadModelError(f"expected {count} names, got {len(names)}", field=attr)
            object.__setattr__(self, attr, names)

    @property
    def num_shape(self) -> int:
        """S, the number of identity components."""
        return self.shapedirs.shape[2]

    @property
    def num_expression(self) -> int:
        """E, the number of expression components."""
        return self.exprdirs.shape[2]

    @property
    def num_joints(self) -> int:
        """J (5 for FLAME and the procedural head)."""
        return len(self.parents)
