"""The frame grouper, deterministically: no threads, explicit timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from capture.errors import CaptureError
from capture.frames import Frame, FrameSet
from capture.grouping import FrameGrouper, GroupingMode
from capture.pattern import ring_rig

MS = 1_000_000


@pytest.fixture
def rig():
    return ring_rig(3, 16, 12)


def frame(cam: int, key: int, t_ms: float, device_ms: float | None = None) -> Frame:
    return Frame(
        np.zeros((12, 16), np.uint8),
        cam,
        f"cam{cam:02d}",
        frame_id=key,
        host_timestamp_ns=int(t_ms * MS),
        device_timestamp_ns=None if device_ms is None else int(device_ms * MS),
        trigger_id=key,
    )


def feed(g: FrameGrouper, frames: list[Frame]) -> list[FrameSet]:
    out = []
    for f in frames:
        out += g.add(f)
    return out


def test_complete_sets_are_emitted_in_order_with_spread(rig) -> None:
    g = FrameGrouper(rig)
    sets = feed(g, [frame(c, k, 50 * k + c) for k in range(3) for c in range(3)])
    assert [s.sequence for s in sets] == [0, 1, 2]
    assert [s.key for s in sets] == [0, 1, 2]
    assert all(s.complete and s.missing == () for s in sets)
    assert sets[0].spread_ns == 2 * MS
    assert g.stats.complete == 3 and g.stats.incomplete == 0


def test_missing_view_is_delivered_when_a_newer_set_completes(rig) -> None:
    g = FrameGrouper(rig)
    sets = feed(g, [frame(0, 0, 0), frame(1, 0, 1)])  # camera 2 never delivers set 0
    assert sets == []
    sets = feed(g, [frame(c, 1, 50) for c in range(3)])
    assert [s.key for s in sets] == [0, 1]
    assert sets[0].missing == (2,) and sets[0].frames[2] is None and not sets[0].complete
    assert g.stats.incomplete == 1 and g.stats.missing_views == (0, 0, 1)


def test_timeout_releases_an_incomplete_set(rig) -> None:
    g = FrameGrouper(rig, timeout_ns=100 * MS)
    assert g.add(frame(0, 0, 0)) == []
    assert g.poll(99 * MS) == []
    sets = g.poll(100 * MS)
    assert len(sets) == 1 and sets[0].missing == (1, 2)
    assert g.pending == 0


def test_late_duplicate_and_dropped_are_counted(rig) -> None:
    g = FrameGrouper(rig, timeout_ns=100 * MS)
    feed(g, [frame(0, 0, 0), frame(1, 0, 0)])
    g.poll(200 * MS)  # set 0 goes out without camera 2
    assert g.add(frame(2, 0, 201)) == []  # camera 2 arrives too late
    feed(g, [frame(0, 3, 210), frame(0, 3, 211)])  # duplicate
    sets = feed(g, [frame(1, 3, 212), frame(2, 3, 213)])
    assert [s.key for s in sets] == [3]
    st = g.stats
    assert (st.late, st.duplicates, st.dropped) == (1, 1, 2)  # keys 1 and 2 never arrived
    assert st.complete == 1 and st.incomplete == 1


def test_max_pending_forces_out_the_oldest(rig) -> None:
    g = FrameGrouper(rig, max_pending=2, timeout_ns=10**12)
    sets = feed(g, [frame(0, k, k) for k in range(4)])
    assert [s.key for s in sets] == [0, 1]
    assert [s.key for s in g.flush()] == [2, 3]


def test_flush_marks_the_sets_a_stop_cut_off(rig) -> None:
    g = FrameGrouper(rig, timeout_ns=10**12)
    feed(g, [frame(0, 0, 0), frame(1, 0, 1)])
    assert [(s.key, s.cut_off) for s in g.flush()] == [(0, False)]  # the source ran dry
    feed(g, [frame(0, 1, 50)])
    (fs,) = g.flush(cut_off=True)  # a stop came while set 1 waited for two views
    assert (fs.key, fs.missing, fs.cut_off) == (1, (1, 2), True)
    # counted as cut off: neither incomplete nor against the cameras that had not yet delivered
    st = g.stats
    assert (st.incomplete, st.cut_off, st.emitted, st.missing_views) == (1, 1, 2, (0, 0, 1))
    assert g.pending == 0


def test_out_of_order_keys_still_emit_in_key_order(rig) -> None:
    g = FrameGrouper(rig)
    out = feed(g, [frame(c, 1, 5) for c in range(3)] + [frame(c, 0, 6) for c in range(3)])
    assert [s.key for s in out] == [1]  # key 0 arrived after 1 was emitted: late
    assert g.stats.late == 3


def test_timestamp_mode_groups_within_half_a_period(rig) -> None:
    g = FrameGrouper(rig, GroupingMode.TIMESTAMP, frame_period_ns=50 * MS, timeout_ns=10**12)
    jitter = [0.0, 3.0, -4.0]
    frames = [
        frame(c, 0, 0, device_ms=50 * k + jitter[c] + 1000) for k in range(3) for c in range(3)
    ]
    # counters are useless here (all 0): grouping must use the device timestamps
    sets = feed(g, frames)
    assert len(sets) == 3 and all(s.complete for s in sets)
    assert sets[0].spread_ns == 7 * MS
    # a frame 2 periods later leaves a gap: one dropped set
    sets = feed(g, [frame(c, 0, 0, device_ms=1200 + c) for c in range(3)])
    assert len(sets) == 1 and g.stats.dropped == 1
    # a frame within half a period of an emitted set is late
    assert g.add(frame(0, 0, 0, device_ms=1201)) == [] and g.stats.late == 1


def test_bad_input_is_refused(rig) -> None:
    with pytest.raises(CaptureError, match="frame period"):
        FrameGrouper(rig, GroupingMode.TIMESTAMP)
    with pytest.raises(CaptureError, match="camera index 5"):
        FrameGrouper(rig).add(frame(5, 0, 0))
    with pytest.raises(CaptureError, match="uint8"):
        Frame(np.zeros((2, 2), np.float32), 0, "a", 0, 0)
    with pytest.raises(CaptureError, match="slots"):
        FrameSet(0, (None,), rig)
