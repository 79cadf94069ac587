"""Bridges from worker threads to the GUI thread: errors, engine events and log records.

Core code reports through plain callbacks on its own threads; these QObjects re-emit them as
Qt signals, delivered to GUI-thread slots through queued connections.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from PySide6.QtCore import QObject, Signal


class EngineBridge(QObject):
    """``error(where, exception)`` and ``event(name, value)`` from any thread."""

    error = Signal(str, object)
    event = Signal(str, object)

    def report_error(self, where: str, exc: BaseException) -> None:
        """Callable from any thread; silent once the window (and this bridge) is gone."""
        # RuntimeError: a worker finishing after the window closed; nothing left to show it.
        with contextlib.suppress(RuntimeError):
            self.error.emit(where, exc)

    def report_event(self, name: str, value: Any) -> None:
        """Callable from any thread; silent once the window (and this bridge) is gone."""
        with contextlib.suppress(RuntimeError):
            self.event.emit(name, value)


class _LogEmitter(QObject):
    record = Signal(str, int)


class QtLogHandler(logging.Handler):
    """A logging handler whose records reach the GUI as ``emitter.record(text, levelno)``."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _LogEmitter()

    def format(self, record: logging.LogRecord) -> str:
        """One line: time, level, logger and message (tracebacks stay in the console log)."""
        stamp = logging.Formatter("%(asctime)s", "%H:%M:%S").format(record)
        return f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"

    def emit(self, record: logging.LogRecord) -> None:
        # RuntimeError: the emitter was deleted with the window; nothing left to show it.
        with contextlib.suppress(RuntimeError):
            self.emitter.record.emit(self.format(record), record.levelno)
