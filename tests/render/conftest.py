"""Fixtures for the GL tests: one headless EGL context per module, or a skip saying why."""

from __future__ import annotations

from collections.abc import Iterator

import moderngl
import pytest

from capture.errors import RenderError
from render.context import create_headless_context


@pytest.fixture(scope="module")
def ctx() -> Iterator[moderngl.Context]:
    try:
        context = create_headless_context()
    except RenderError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")
    yield context
    context.release()
