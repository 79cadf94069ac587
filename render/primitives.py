"""Small procedural meshes (numpy only): used by the procedural head, tests and previews."""

from __future__ import annotations

import numpy as np


def icosphere(
    subdivisions: int, radius: float = 1.0, center=(0.0, 0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Icosphere: (V, 3) float64 vertices (``radius`` around ``center``) and (F, 3) int64 faces.

    Faces are counter-clockwise seen from outside (outward normals). Subdivision ``s`` gives
    ``10·4^s + 2`` vertices.
    """
    g = (1.0 + 5.0**0.5) / 2.0
    verts = [
        (-1, g, 0), (1, g, 0), (-1, -g, 0), (1, -g, 0),
        (0, -1, g), (0, 1, g), (0, -1, -g), (0, 1, -g),
        (g, 0, -1), (g, 0, 1), (-g, 0, -1), (-g, 0, 1),
    ]  # fmt: skip
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
        (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
        (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
        (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    v = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in verts]
    f = list(faces)
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def midpoint(i: int, j: int, cache: dict[tuple[int, int], int] = cache) -> int:
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = v[i] + v[j]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        new = []
        for a, b, c in f:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = new
    unit = np.array(v)
    if radius == 1.0 and not np.any(center):
        return unit, np.array(f, dtype=np.int64)
    return unit * radius + np.asarray(center, dtype=np.float64), np.array(f, dtype=np.int64)
