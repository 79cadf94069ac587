"""Shared fixtures: small rigs and head models made in code, and paths to optional data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TEMPEH = REPO_ROOT.parent / "shared" / "tempeh"


@pytest.fixture(scope="session")
def shared_tempeh() -> Path:
    """The official TEMPEH checkpoint listing beside the checkout; skip where it is absent."""
    if not (SHARED_TEMPEH / "official_state_dict_keys.json").is_file():
        pytest.skip(
            f"official TEMPEH listing not found at {SHARED_TEMPEH} (shared/ is not beside the repo)"
        )
    return SHARED_TEMPEH


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    """The official TEMPEH test vectors beside the checkout; skip where they are absent."""
    path = SHARED_TEMPEH / "vectors"
    if not path.is_dir():
        pytest.skip(f"official TEMPEH vectors not found at {path} (shared/ is not beside the repo)")
    return path
