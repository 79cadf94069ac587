"""Atomic writes: a file is either complete or absent, whatever the writer does."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture.atomic import write_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "frame.ply"
    seen: list[Path] = []

    def write(p: Path) -> None:
        seen.append(p)
        p.write_text("new")

    assert write_atomically(target, write) == target
    assert target.read_text() == "new"
    assert seen[0].suffix == ".ply" and seen[0].parent == target.parent and seen[0] != target

    def half_then_fail(p: Path) -> None:
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["frame.ply"]
