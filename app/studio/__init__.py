"""The studio: the PySide6 main window and its widgets (the only Qt code besides ``app/``).

Modules that do not import Qt (:mod:`app.studio.orbit`, :mod:`app.studio.coloring`,
:mod:`app.studio.engine`, :mod:`app.studio.player`, :mod:`app.studio.perf`) hold the logic and
are tested without a display; the widgets get them in their constructors.
"""
