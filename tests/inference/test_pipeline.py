"""The inference worker: live skipping, offline order, gaps, rig checks, model loading."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from capture.camera import Rig
from capture.default_rigs import load_shipped_rig
from capture.errors import CaptureError, CheckpointError, ConfigError
from capture.frames import Frame, FrameSet
from inference.network.model import TempehModel
from inference.network.presets import LITE
from inference.pipeline import (
    UNTRAINED_LABEL,
    HeadResult,
    InferenceWorker,
    LoadedModel,
    WorkerState,
    load_pipeline_model,
)
from inference.temporal_filter import OneEuroFilter


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_shipped_rig("test4")


@pytest.fixture
def loaded(synthetic_head) -> LoadedModel:
    """The lite network (random weights) on a 300-vertex synthetic head: fast on CPU."""
    template = synthetic_head.template
    torch.manual_seed(0)
    model = TempehModel(LITE, template).eval()
    return LoadedModel(model, template, "tiny", True, None, torch.device("cpu"))


def frame_set(rig: Rig, seq: int, missing: tuple[int, ...] = (), colour: tuple[int, ...] = ()):
    rng = np.random.default_rng(seq)
    now = time.monotonic_ns()
    frames = []
    for i, cam in enumerate(rig.cameras):
        if i in missing:
            frames.append(None)
            continue
        shape = (cam.height, cam.width, 3) if i in colour else (cam.height, cam.width)
        img = rng.integers(0, 255, shape, dtype=np.uint8)
        frames.append(Frame(img, i, cam.name, seq, now))
    return FrameSet(seq, tuple(frames), rig)


def test_reconstruct_gives_a_result_with_timings(loaded, rig):
    worker = InferenceWorker(loaded, rig, mode="offline")
    result = worker.reconstruct(frame_set(rig, 3, colour=(1,)))
    assert isinstance(result, HeadResult)
    assert result.sequence == 3
    assert result.vertices.shape == (loaded.template.num_vertices, 3)
    assert result.vertices.dtype == np.float32 and result.coarse.shape == result.vertices.shape
    assert np.isfinite(result.vertices).all()
    assert set(result.timings_ms) == {"preprocess", "coarse", "refine", "total"}
    assert result.views_used == (0, 1, 2, 3)
    assert result.latency_ms > 0
    assert worker.latest() is result and worker.status().processed == 1


def test_missing_camera_is_masked_and_too_few_views_are_refused(loaded, rig):
    worker = InferenceWorker(loaded, rig, mode="offline")
    result = worker.reconstruct(frame_set(rig, 0, missing=(2,)))
    assert result.views_used == (0, 1, 3)
    batch, _views = worker._stack(frame_set(rig, 0, missing=(2,)))
    assert batch.view_mask.tolist() == [[True, True, False, True]]
    with pytest.raises(CaptureError, match="1 of 4 views"):
        worker.reconstruct(frame_set(rig, 1, missing=(0, 1, 2)))
    assert worker.status().errors == 1


def test_frames_are_shrunk_on_the_host_to_the_refinement_size(loaded, rig):
    worker = InferenceWorker(loaded, rig, mode="offline")
    fs = frame_set(rig, 5, colour=(2,))
    batch, _views = worker._stack(fs)
    w, h = rig.cameras[0].image_size  # 64 x 48; lite refines at 1/8
    assert tuple(batch.images.shape) == (1, 4, 3, h // 8, w // 8)
    assert batch.full_size == (h, w)
    # the same frames shrunk beforehand (as a take recorded small would arrive) give the same head
    small = FrameSet(
        fs.sequence,
        tuple(
            dataclasses.replace(
                f, image=cv2.resize(f.image, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
            )
            for f in fs.frames
        ),
        rig,
    )
    assert np.array_equal(worker._stack(small)[0].images, batch.images)
    full = worker.reconstruct(fs).vertices
    np.testing.assert_array_equal(worker.reconstruct(small).vertices, full)
    # compat mode resizes the full frames per stage, as the official code does
    config = dataclasses.replace(LITE, compat=True)
    model = TempehModel(config, loaded.template).eval()
    compat = LoadedModel(model, loaded.template, "compat", True, None, torch.device("cpu"))
    batch, _views = InferenceWorker(compat, rig)._stack(fs)
    assert tuple(batch.images.shape) == (1, 4, 3, h, w)


def test_rig_the_model_cannot_use_is_refused(loaded, rig):
    one = Rig(rig.cameras[:1], "one")
    with pytest.raises(ConfigError, match="at least 2 views"):
        InferenceWorker(loaded, one)
    tiny = rig.resized(8, 6)  # the lite coarse stage resizes by 1/16
    with pytest.raises(ConfigError, match="too small for the coarse stage"):
        InferenceWorker(loaded, tiny)
    # another camera count and resolution than training is fine
    InferenceWorker(loaded, Rig(rig.cameras[:3], "three").resized(96, 72))


def test_offline_processes_every_set_in_order(loaded, rig):
    seen: list[int] = []
    worker = InferenceWorker(
        loaded, rig, mode="offline", on_result=lambda r: seen.append(r.sequence)
    )
    worker.start()
    for seq in range(12):
        worker.submit(frame_set(rig, seq))
    assert worker.drain(60.0)
    status = worker.stop()
    assert seen == list(range(12))
    assert status.processed == 12 and status.skipped == 0
    assert status.state is WorkerState.STOPPED


def test_live_keeps_the_newest_and_counts_the_skipped(loaded, rig):
    results: list[HeadResult] = []
    worker = InferenceWorker(loaded, rig, mode="live", on_result=results.append)
    worker.start()
    sets = [frame_set(rig, seq) for seq in range(30)]
    t0 = time.monotonic()
    for fs in sets:
        worker.submit(fs)  # never blocks
    assert time.monotonic() - t0 < 0.5
    assert worker.drain(60.0)
    status = worker.stop()
    assert status.skipped > 0
    assert status.processed + status.skipped == len(sets)
    assert results[-1].sequence == 29
    assert sum(r.skipped_before for r in results) == status.skipped
    assert [r.sequence for r in results] == sorted(r.sequence for r in results)


def test_errors_reach_on_error_and_the_worker_goes_on(loaded, rig):
    errors: list[BaseException] = []
    worker = InferenceWorker(loaded, rig, mode="offline", on_error=errors.append)
    worker.start()
    worker.submit(frame_set(rig, 0, missing=(0, 1, 2)))
    worker.submit(frame_set(rig, 1))
    assert worker.drain(60.0)
    status = worker.stop()
    assert len(errors) == 1 and isinstance(errors[0], CaptureError)
    assert status.errors == 1 and status.processed == 1
    assert "views arrived" in status.last_error


def test_a_set_cut_off_by_the_stop_is_let_go_without_an_error(loaded, rig, caplog):
    """The session's stop flushes sets still waiting for views; one that got too few views is
    not the cameras' fault, while a cut-off set with enough views is still reconstructed."""
    errors: list[BaseException] = []
    seen: list[int] = []
    worker = InferenceWorker(
        loaded,
        rig,
        mode="offline",
        on_error=errors.append,
        on_result=lambda r: seen.append(r.sequence),
    )
    worker.start()
    worker.submit(frame_set(rig, 0))
    worker.submit(dataclasses.replace(frame_set(rig, 1, missing=(1,)), cut_off=True))
    with caplog.at_level(logging.INFO, logger="inference.pipeline"):
        worker.submit(dataclasses.replace(frame_set(rig, 2, missing=(0, 1, 2)), cut_off=True))
    assert worker.drain(60.0)
    status = worker.stop()
    assert errors == [] and status.errors == 0
    assert seen == [0, 1] and status.processed == 2
    assert "set 2 not reconstructed: the stop cut it off after 1 of 4 views" in caplog.text


def test_stop_is_prompt_and_idempotent(loaded, rig):
    worker = InferenceWorker(loaded, rig, mode="live")
    worker.start()
    worker.submit(frame_set(rig, 0))
    t0 = time.monotonic()
    status = worker.stop(timeout=2.0)
    assert time.monotonic() - t0 < 2.5
    assert status.state in (WorkerState.STOPPED, WorkerState.STOPPING)
    assert worker.stop().state in (WorkerState.STOPPED, WorkerState.STOPPING)
    with pytest.raises(ConfigError):
        worker.submit(frame_set(rig, 1))
    assert not any(
        t.name == "inference-worker" and t.is_alive() for t in threading.enumerate()
    ) or (status.state is WorkerState.STOPPING)


def test_temporal_filter_smooths_jitter():
    f = OneEuroFilter(1.0, beta=0.0)
    rng = np.random.default_rng(0)
    base = np.zeros((50, 3), np.float32)
    out = [f(base + rng.normal(0, 1, base.shape).astype(np.float32), t / 30) for t in range(60)]
    assert np.std(out[-1]) < 0.5


def test_temporal_filter_is_for_live_only(loaded, rig):
    with pytest.raises(ConfigError, match="live"):
        InferenceWorker(loaded, rig, mode="offline", temporal_filter=1.0)
    worker = InferenceWorker(loaded, rig, mode="live", temporal_filter=2.0)
    assert worker.reconstruct(frame_set(rig, 0)).vertices.shape[1] == 3


def test_default_model_loads(rig):
    loaded = load_pipeline_model(None)
    assert loaded.device == torch.device("cpu")
    if loaded.trained:
        assert loaded.path is not None and loaded.path.is_file()
    else:
        assert loaded.label == UNTRAINED_LABEL and loaded.path is None
    assert loaded.template.num_vertices == loaded.model.coarse.num_vertices


def test_missing_or_corrupted_model_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt"):
        load_pipeline_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_pipeline_model(bad)


@pytest.mark.gpu
def test_cuda_mixed_precision_matches_fp32(rig, synthetic_head):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    template = synthetic_head.template
    torch.manual_seed(0)
    model = TempehModel(LITE, template).eval().cuda()
    fs = frame_set(rig, 0)
    ref = LoadedModel(model, template, "t", True, None, torch.device("cuda"))
    fp32 = InferenceWorker(ref, rig, mode="offline", precision="fp32").reconstruct(fs)
    torch.manual_seed(0)
    model2 = TempehModel(LITE, template).eval().cuda()
    amp = LoadedModel(model2, template, "t", True, None, torch.device("cuda"))
    mixed = InferenceWorker(amp, rig, mode="offline").reconstruct(fs)
    assert np.abs(mixed.vertices - fp32.vertices).max() < 5.0  # mm, random weights
