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


@pytest.fixture
def torchrun():
    """``torchrun(nproc, *args)``: the command line of ``torch.distributed.run`` on a free port."""
    import socket
    import sys

    def command(nproc: int, *args: str) -> list[str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_port",
            str(port),
            *args,
        ]

    return command
