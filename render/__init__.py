"""Qt-free OpenGL rendering with ModernGL: headless contexts and mesh renderers (no torch)."""
