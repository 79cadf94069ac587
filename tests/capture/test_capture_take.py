"""Take streams without cameras: codec round trips, torn index lines, corrupt frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capture.errors import TakeError
from capture.pattern import find_disc, pattern_pixels, pattern_provider, ring_rig
from capture.take import StreamReader, StreamWriter, read_timestamps


@pytest.fixture
def frames():
    rig = ring_rig(1, 96, 64)
    provide = pattern_provider(rig)
    return rig, [provide(k)[0] for k in range(12)]


@pytest.mark.parametrize("codec", ["h264", "ffv1", "png"])
def test_stream_round_trip_and_seek(tmp_path, frames, codec) -> None:
    rig, images = frames
    path = tmp_path / ("cam" + {"h264": ".h264", "ffv1": ".ffv1", "png": ""}[codec])
    writer = StreamWriter(path, codec, 96, 64, color=False, fps=20, gop=4)
    entries = [writer.write(img) for img in images]
    writer.close()
    reader = StreamReader(path, codec, "cam00", False, entries, (96, 64))
    for k in [*range(12), 9, 2, 11]:  # sequential, then seeks backwards and forwards
        img = reader.frame(k)
        assert img.shape == (64, 96) and img.dtype == np.uint8
        if codec == "h264":
            u, v = find_disc(img)
            eu, ev = pattern_pixels(rig, k)[0]
            assert abs(u - eu) < 1.0 and abs(v - ev) < 1.0
        else:
            np.testing.assert_array_equal(img, images[k])  # lossless


def test_corrupt_frame_is_reported_and_later_keyframes_decode(tmp_path, frames) -> None:
    _, images = frames
    path = tmp_path / "cam.h264"
    writer = StreamWriter(path, "h264", 96, 64, color=False, gop=4)
    entries = [writer.write(img) for img in images]
    writer.close()
    data = bytearray(path.read_bytes())
    _, offset, size, _, _ = entries[5]
    data[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = StreamReader(path, "h264", "cam03", False, entries)
    with pytest.raises(TakeError, match=r"camera 'cam03': frame 5 .*corrupt"):
        reader.frame(5)
    assert reader.frame(8).shape == (64, 96)  # next keyframe: replay goes on


def test_a_torn_last_index_line_is_ignored(tmp_path) -> None:
    line = {
        "seq": 0,
        "key": 0,
        "spread_ns": 0,
        "host_ns": [1],
        "device_ns": [None],
        "frame_id": [0],
        "video": [[0, 0, 10, 0, 1]],
    }
    text = json.dumps(line) + "\n"
    path = tmp_path / "timestamps.jsonl"
    path.write_text(text + text.replace('"seq": 0', '"seq": 1') + text[:25])
    assert [r.sequence for r in read_timestamps(path)] == [0, 1]
    path.write_text(text + "{broken\n" + text)
    with pytest.raises(TakeError, match="line 2"):
        read_timestamps(path)
