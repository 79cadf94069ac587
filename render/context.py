"""Headless OpenGL contexts (Mesa EGL) and what they report about themselves.

Threads: an OpenGL context is current on the thread that created it. Every ModernGL object
made from it (buffers, programs, framebuffers) must be created, used and released on that same
thread. A worker thread that renders creates its own context; a Qt viewport uses the context
Qt made current in ``paintGL`` (``moderngl.create_context()`` plus ``ctx.detect_framebuffer()``),
never one from this module.
"""

from __future__ import annotations

import logging

import moderngl

from capture.errors import RenderError

log = logging.getLogger(__name__)

REQUIRED_GL_VERSION = 330
MESA_PACKAGES = "libegl1 libegl-mesa0 libgl1 libglx-mesa0 libgl1-mesa-dri libgbm1"


def create_headless_context() -> moderngl.Context:
    """Create a standalone OpenGL ≥ 3.3 core context through EGL (no X server needed).

    Always EGL: creating an EGL context and then a GLX one in one process crashed with
    BadAccess (platform.md), so this module never tries GLX.

    Returns
    -------
    moderngl.Context
        A context current on the **calling thread**; use and release it on that thread only.

    Raises
    ------
    RenderError
        When EGL or an OpenGL 3.3 driver is missing; the message names the Mesa packages.
    """
    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=REQUIRED_GL_VERSION)
    except Exception as exc:  # glcontext raises plain Exception/OSError/ImportError types
        raise RenderError(
            f"could not create a headless OpenGL {REQUIRED_GL_VERSION // 100}."
            f"{REQUIRED_GL_VERSION % 100 // 10} context through EGL ({exc}). Install Mesa's EGL "
            f"and software drivers, e.g. `apt-get install -y --no-install-recommends "
            f"{MESA_PACKAGES}`, or run on a machine with a GPU driver that provides EGL"
        ) from exc
    info = gl_info(ctx)
    log.debug("headless GL context: %s | %s", info["renderer"], info["version"])
    return ctx


def gl_info(ctx: moderngl.Context) -> dict[str, object]:
    """Identify the driver behind ``ctx`` (call on the context's thread).

    Returns
    -------
    dict
        ``renderer``, ``vendor``, ``version`` (the GL_RENDERER, GL_VENDOR, GL_VERSION strings),
        ``version_code`` (int, e.g. 450), ``max_samples`` (MSAA limit, int) and
        ``max_texture_size`` (int, pixels).
    """
    info = ctx.info
    return {
        "renderer": str(info.get("GL_RENDERER", "")),
        "vendor": str(info.get("GL_VENDOR", "")),
        "version": str(info.get("GL_VERSION", "")),
        "version_code": int(ctx.version_code),
        "max_samples": int(info.get("GL_MAX_SAMPLES", 0)),
        "max_texture_size": int(info.get("GL_MAX_TEXTURE_SIZE", 0)),
    }
