"""Fixtures for the inference tests: a small synthetic head model and a FLAME stand-in file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.flame_standin import write_flame_standin
from inference.head_data import HeadModelData, HeadTemplate

JAW = 2


def make_synthetic_head(num_vertices: int = 300, seed: int = 0) -> HeadModelData:
    """A random 5-joint LBS model in mm; vertices ``0::2`` have zero jaw weight.

    Their jaw pose-corrective entries are zero too, so a jaw rotation cannot move them.
    """
    rng = np.random.default_rng(seed)
    n, j = num_vertices, 5
    verts = rng.normal(0.0, 80.0, (n, 3))
    faces = rng.integers(0, n, (2 * n, 3))
    weights = rng.random((n, j))
    weights[0::2, JAW] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    posedirs = rng.normal(0.0, 0.5, (n, 3, 9 * (j - 1)))
    posedirs[0::2, :, 9 * (JAW - 1) : 9 * JAW] = 0.0
    J_regressor = rng.random((j, n))
    J_regressor /= J_regressor.sum(axis=1, keepdims=True)
    return HeadModelData(
        template=HeadTemplate(verts, faces, name="synthetic"),
        shapedirs=rng.normal(0.0, 2.0, (n, 3, 8)),
        exprdirs=rng.normal(0.0, 2.0, (n, 3, 6)),
        posedirs=posedirs,
        J_regressor=J_regressor,
        weights=weights,
        parents=np.array([-1, 0, 1, 1, 1]),
        kind="synthetic",
        version="test",
    )


@pytest.fixture
def make_head():
    """The :func:`make_synthetic_head` factory (for other sizes and seeds)."""
    return make_synthetic_head


@pytest.fixture
def synthetic_head() -> HeadModelData:
    """300 vertices, 8 shape and 6 expression components, half the vertices off the jaw."""
    return make_synthetic_head()


@pytest.fixture(scope="session")
def flame_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ``generic_model.pkl`` in the exact FLAME layout (chumpy-pickled arrays)."""
    return write_flame_standin(tmp_path_factory.mktemp("flame") / "generic_model.pkl")
