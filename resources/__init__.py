"""Shipped data, read through :mod:`importlib.resources`."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("rigs", "default16.json")``."""
    return Path(str(files(__name__).joinpath(*parts)))
