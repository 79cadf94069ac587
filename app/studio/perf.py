"""A rolling minute of performance samples for the performance panel (no Qt)."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

WINDOW_S = 60.0
STAGES = ("preprocess", "coarse", "refine", "total")


@dataclass(frozen=True)
class PerfSample:
    """One sample of the studio's counters.

    Attributes
    ----------
    t : float
        Monotonic seconds.
    capture_fps, inference_fps : float
        Sets per second captured / reconstructed.
    latency_ms : dict[str, float]
        Per stage of the latest result (:data:`STAGES`), nan when none.
    skipped, incomplete : int
        Cumulative sets skipped by live inference / incomplete sets captured.
    """

    t: float
    capture_fps: float
    inference_fps: float
    latency_ms: dict[str, float]
    skipped: int
    incomplete: int


class PerfHistory:
    """Samples of the last ``window_s`` seconds, as arrays for plotting.

    Cumulative counters become per-second rates between successive samples (a counter that
    goes down, as after a restart, counts from zero again).
    """

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: collections.deque[PerfSample] = collections.deque()

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: PerfSample) -> None:
        """Append a sample and forget those older than the window."""
        self._samples.append(sample)
        while self._samples and sample.t - self._samples[0].t > self.window_s:
            self._samples.popleft()

    def arrays(self) -> dict[str, np.ndarray]:
        """``t`` (seconds relative to the newest sample, ≤ 0), ``capture_fps``,
        ``inference_fps``, one array per stage in :data:`STAGES`, and ``skipped_per_s`` and
        ``incomplete_per_s``, each (S,) float64."""
        s = list(self._samples)
        if not s:
            empty = np.zeros(0)
            out = {k: empty for k in ("t", "capture_fps", "inference_fps")}
            out.update({k: empty for k in STAGES})
            out.update(skipped_per_s=empty, incomplete_per_s=empty)
            return out
        t = np.array([x.t for x in s])
        out = {
            "t": t - t[-1],
            "capture_fps": np.array([x.capture_fps for x in s]),
            "inference_fps": np.array([x.inference_fps for x in s]),
        }
        for stage in STAGES:
            out[stage] = np.array([x.latency_ms.get(stage, math.nan) for x in s], dtype=float)
        for name, attr in (("skipped_per_s", "skipped"), ("incomplete_per_s", "incomplete")):
            counts = np.array([getattr(x, attr) for x in s], dtype=float)
            d = np.diff(counts, prepend=counts[0])
            d = np.where(d < 0, counts, d)  # counter reset
            dt = np.diff(t, prepend=t[0])
            out[name] = np.where(dt > 0, d / np.where(dt > 0, dt, 1.0), 0.0)
        return out
