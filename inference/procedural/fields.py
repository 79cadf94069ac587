"""Small smooth-field helpers shared by the procedural-head modules (pure numpy, mm)."""

from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """C1 ramp: 0 for ``x <= lo``, 1 for ``x >= hi`` (``lo > hi`` gives the falling ramp)."""
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, su: float, sv: float, power: float = 1.0
) -> np.ndarray:
    """Elliptical (super-)Gaussian ``exp(-q**power)``, ``q = ((u-cu)/su)**2 + ((v-cv)/sv)**2``.

    ``power > 1`` flattens the top and steepens the rim (a plateau with a soft edge).
    """
    q = ((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2
    return np.exp(-(q**power))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit area-weighted vertex normals of a counter-clockwise triangle mesh."""
    v = vertices[faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(norm, 1e-12)


def smooth_field(
    field: np.ndarray, edges: np.ndarray, iterations: int, rate: float = 0.5
) -> np.ndarray:
    """Laplacian-smooth a per-vertex field over mesh edges.

    Parameters
    ----------
    field : np.ndarray
        (N,) or (N, K) values.
    edges : np.ndarray
        (E, 2) int undirected edges.
    iterations : int
        Number of Jacobi steps; each moves a value ``rate`` of the way to its neighbours' mean.
    rate : float
        Step size in (0, 1].

    Returns
    -------
    np.ndarray
        Smoothed copy, same shape as ``field``. Vertices without edges keep their values.
    """
    f = np.array(field, dtype=np.float64)
    flat = f.reshape(len(f), -1)
    n = len(f)
    degree = np.bincount(edges.ravel(), minlength=n).astype(np.float64)
    has = degree > 0
    for _ in range(iterations):
        acc = np.zeros_like(flat)
        np.add.at(acc, edges[:, 0], flat[edges[:, 1]])
        np.add.at(acc, edges[:, 1], flat[edges[:, 0]])
        mean = acc[has] / degree[has, None]
        flat[has] += rate * (mean - flat[has])
    return flat.reshape(f.shape)
