"""A One-Euro filter on mesh vertices, to steady the live display (never for recording).

Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for Noisy Input
in Interactive Systems" (CHI 2012): an exponential smoother whose cut-off frequency rises
with the speed of the signal, so slow jitter is smoothed and fast motion is followed with
little lag. Here it runs per vertex coordinate, with the speed of each vertex.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """Filters successive (N, 3) vertex arrays (mm) given their timestamps.

    Parameters
    ----------
    min_cutoff_hz : float
        Cut-off frequency at rest, Hz (lower: smoother, more lag).
    beta : float
        Speed coefficient, Hz per mm/s: the cut-off grows by ``beta × speed``.
    derivative_cutoff_hz : float
        Cut-off of the speed estimate, Hz.

    Notes
    -----
    Not thread-safe: owned by the thread that produces the results (the inference worker).
    """

    def __init__(
        self, min_cutoff_hz: float, beta: float = 0.02, derivative_cutoff_hz: float = 1.0
    ) -> None:
        if min_cutoff_hz <= 0:
            raise ValueError(f"min_cutoff_hz must be positive, got {min_cutoff_hz}")
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.derivative_cutoff_hz = float(derivative_cutoff_hz)
        self.reset()

    def reset(self) -> None:
        """Forget the history (the next sample passes through unchanged)."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, vertices: np.ndarray, t_s: float) -> np.ndarray:
        """The filtered (N, 3) float32 vertices for the sample at time ``t_s`` (seconds)."""
        x = np.asarray(vertices, dtype=np.float32)
        if self._x is None or self._t is None or self._x.shape != x.shape or t_s <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        dx = (x - self._x) / dt
        a_d = _alpha(self.derivative_cutoff_hz, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        a = _alpha(self.min_cutoff_hz + self.beta * speed, dt)
        self._x = (a * x + (1.0 - a) * self._x).astype(np.float32)
        self._t = t_s
        return self._x.copy()
