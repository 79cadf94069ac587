"""Files that are either complete or absent: write beside, then move into place.

Every writer whose output a reader or a resumed run may look at (takes' session file, synthetic
frames with their calibrations, rig files and lists, mesh exports, training checkpoints) goes
through :func:`write_atomically`, so a crash or a kill never leaves a half-written file under
the real name, and a reader never sees one while a resumed run rewrites it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name beside ``path`` with the same suffix (writers that pick the
    format from the suffix see the right one)."""
    return path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a :func:`temporary_sibling` of ``path``, then move it onto
    ``path`` in one step (``os.replace``). Parent folders are created.

    Raises
    ------
    Exception
        Whatever ``write`` or the move raised; the temporary file is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`write_atomically` for a text file."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding=encoding))


__all__ = ["temporary_sibling", "write_atomically", "write_text_atomically"]
