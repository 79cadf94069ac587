"""The studio engine without Qt: live capture, recording, replay and shutdown with fakes.

A fake source (threaded test frames) and a fake inference worker (the template, instantly)
stand in for the cameras and the network, so the control flow, the result caches and the
thread clean-up are tested in a second or two.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from app.studio.config import StudioConfig
from app.studio.engine import Activity, StudioEngine
from capture.default_rigs import load_shipped_rig
from capture.frames import Frame
from capture.take import TakeReader
from inference.procedural_head import load_procedural_head


class FakeSource:
    """Test frames for every camera of ``rig`` at ``fps``, on a thread."""

    def __init__(self, rig, fps: float = 50.0) -> None:
        self.rig, self.nominal_fps, self.finished = rig, fps, False
        self.cameras = tuple(rig.names)
        self._stop = threading.Event()
        self._thread = None

    def start(self, sink, on_error) -> None:
        def run() -> None:
            k = 0
            while not self._stop.wait(1.0 / self.nominal_fps):
                now = time.monotonic_ns()
                for i, cam in enumerate(self.rig.cameras):
                    img = np.full((cam.height, cam.width), (k * 7 + i) % 256, np.uint8)
                    sink(Frame(img, i, cam.name, k, now, trigger_id=k))
                k += 1

        self._thread = threading.Thread(target=run, name="fake-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


class FakeWorker:
    """Returns the template (shifted by the set's sequence) for every set, synchronously."""

    def __init__(self, loaded, rig, mode, on_result, on_error) -> None:
        self.loaded, self.rig, self.on_result = loaded, rig, on_result
        self._latest, self._processed, self._session = None, 0, None

    def start(self) -> None:
        pass

    def attach(self, session) -> None:
        self._session = session
        session.set_ready.connect(self.submit)

    def submit(self, fs) -> None:
        result = self.reconstruct(fs)
        if self.on_result is not None:
            self.on_result(result)

    def reconstruct(self, fs):
        v = self.loaded.template.vertices.astype(np.float32) + fs.sequence
        self._latest = SimpleNamespace(
            sequence=fs.sequence, vertices=v, coarse=v, timings_ms={"total": 1.0}
        )
        self._processed += 1
        return self._latest

    def latest(self):
        return self._latest

    def status(self):
        return SimpleNamespace(fps=10.0, processed=self._processed, skipped=0, errors=0)

    def stop(self, timeout: float = 2.0):
        if self._session is not None:
            self._session.set_ready.disconnect(self.submit)
        return self.status()


@pytest.fixture()
def engine(tmp_path, monkeypatch):
    template = load_procedural_head().template
    loaded = SimpleNamespace(template=template, label="fake", trained=True, device="cpu")
    errors, events = [], []
    config = StudioConfig(rig="test4", size="", takes_dir=str(tmp_path / "takes"), codec="png")
    eng = StudioEngine(
        config,
        lambda where, exc: errors.append((where, exc)),
        lambda name, value: events.append((name, value)),
        worker_factory=FakeWorker,
        model_loader=lambda cfg: loaded,
    )
    monkeypatch.setattr(eng, "_build_source", lambda: FakeSource(load_shipped_rig("test4")))
    eng.test_errors, eng.test_events = errors, events
    before = set(threading.enumerate())
    yield eng
    assert eng.shutdown(2.0)
    time.sleep(0.05)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], left


def wait(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_live_record_replay_and_shutdown(engine) -> None:
    engine.start_live().result(10)
    assert engine.activity is Activity.LIVE
    wait(lambda: engine.latest_result() is not None and engine.latest_frameset() is not None)
    assert engine.status().capture_fps > 0 or engine.status().sets_complete > 0
    take = engine.start_recording().result(5)
    assert engine.activity is Activity.RECORDING
    time.sleep(0.5)
    assert engine.stop_recording().result(10) == take
    assert engine.activity is Activity.LIVE
    records = TakeReader(take).records
    assert len(records) >= 10
    # every recorded set got its live mesh (matched by session sequence)
    assert engine.take_mesh_count() == len(records)
    assert ("recorded", take) in engine.test_events
    player = engine.open_take(take).result(10)
    assert engine.activity is Activity.REPLAY and engine.status().take == str(take)
    wait(lambda: engine.latest_frameset() is not None and engine.latest_result() is not None)
    assert engine.latest_frameset().sequence == 0  # replay sets are numbered by position
    assert engine.take_mesh_count() == len(records)  # the live meshes stay with the take
    player.seek(3)
    wait(lambda: engine.latest_result().sequence == 3)
    reader = TakeReader(take)
    v = engine.reconstruct_take_position(reader, 2)
    assert v.shape == (load_procedural_head().template.num_vertices, 3)
    engine.stop().result(5)
    assert engine.activity is Activity.IDLE
    assert engine.test_errors == []


def test_errors_of_control_steps_reach_the_callback(engine) -> None:
    with pytest.raises(Exception, match="start live capture before recording"):
        engine.start_recording().result(5)
    assert engine.test_errors[-1][0] == "starting a recording"
    with pytest.raises(Exception, match="not a take"):
        engine.open_take("/nonexistent/take").result(5)
    assert engine.test_errors[-1][0] == "opening the take"
    engine.start_live().result(10)  # the engine keeps working after errors
    assert engine.activity is Activity.LIVE


def test_reference_meshes_of_the_emulated_performer(engine) -> None:
    refs = [np.full((3, 3), k, np.float32) for k in range(4)]
    engine._references = refs
    engine._on_set(SimpleNamespace(sequence=10, key=6))
    assert engine.reference_for(10) is refs[2]
    assert engine.reference_for(11) is None
