"""The application layer: the ``tempeh`` command line and (later) the PySide6 studio.

The only package allowed to import PySide6. Headless commands never import Qt.
"""
