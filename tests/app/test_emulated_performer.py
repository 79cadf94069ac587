"""The default emulated rig: the rendered performer played through pylon's camera emulator."""

from __future__ import annotations

import numpy as np
import pytest

from app.cli import main
from capture.take import TakeReader

pytestmark = [pytest.mark.camera, pytest.mark.gl]


def test_emulated_record_shows_the_rendered_head(tmp_path, capsys) -> None:
    pytest.importorskip("pypylon", reason="pypylon cannot load")
    take = tmp_path / "take"
    args = ["record", "--source", "emulated", "--rig", "test4", "--size", "160x120"]
    assert main([*args, "--seconds", "2", "--fps", "15", "--out", str(take)]) == 0
    reader = TakeReader(take)
    summary = reader.summary()
    assert summary["cameras"] == 4
    assert summary["sets"] >= 10 and summary["lost"] == 0
    images, errors = reader.read_set(len(reader.records) // 2)
    assert errors == []
    for image in images:
        gray = np.atleast_3d(image)[..., 0].astype(np.int16)
        background = np.median(gray[:4, :].ravel())  # top rows: background
        head = np.abs(gray - background) > 12
        # the head covers a plausible part of each view and carries texture
        assert 0.05 < head.mean() < 0.9, head.mean()
        assert gray[head].std() > 8.0
