"""A deterministic synthetic performer: a head model animated over time from a seed.

Identity is drawn once per subject (``subject_seed``); motion is drawn per sequence
(``seed``). Every signal is a sum of a few low-frequency sinusoids with random frequencies and
phases, so :meth:`Performer.frame` is a pure function of time: any frame can be produced
without simulating the ones before it (resumable dataset writing relies on this).

Signals (model frame: ``y`` up, the face looks along ``+z``, mm, radians):

* expressions: smooth, bounded activations; for a model with named components (the
  procedural head) non-negative activations in ``[0, expression_amplitude]``, for FLAME
  zero-mean values on the first ``flame_expressions`` components;
* talking: the jaw opens at syllable rate (about 4 Hz) inside a slower speech envelope;
* blinks: short closures of ``blink_left``/``blink_right`` every 2–6 s, only if the model
  names those components;
* head rotation: yaw within ``±max_yaw_deg`` (45°), pitch within ``±max_pitch_deg`` (25°),
  a little roll, applied as the global joint rotation;
* translation within ``±max_translation_mm`` (50 mm) per axis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from capture.errors import HeadModelError
from inference.head_data import HeadModelData
from inference.head_model import HeadModel

log = logging.getLogger(__name__)

BLINK_NAMES = ("blink_left", "blink_right")
SYLLABLE_HZ = 4.3


@dataclass(frozen=True, eq=False)
class PerformerPose:
    """The model parameters of one instant.

    Attributes
    ----------
    time : float
        Seconds since the start of the sequence.
    shape : np.ndarray
        (S,) float64 identity coefficients (unit variance).
    expression : np.ndarray
        (E,) float64 expression coefficients.
    global_pose, neck_pose, jaw_pose, left_eye_pose, right_eye_pose : np.ndarray
        (3,) float64 axis-angle rotations, radians.
    translation : np.ndarray
        (3,) float64 mm, model frame.
    yaw_deg, pitch_deg, roll_deg : float
        The head rotation that ``global_pose`` encodes (``R = Ry(yaw) Rx(pitch) Rz(roll)``).
    """

    time: float
    shape: np.ndarray
    expression: np.ndarray
    global_pose: np.ndarray
    neck_pose: np.ndarray
    jaw_pose: np.ndarray
    left_eye_pose: np.ndarray
    right_eye_pose: np.ndarray
    translation: np.ndarray
    yaw_deg: float
    pitch_deg: float
    roll_deg: float


@dataclass(frozen=True)
class PerformerConfig:
    """Ranges of the performer's motion.

    Attributes
    ----------
    max_yaw_deg, max_pitch_deg, max_roll_deg : float
        Bounds of the head rotation, degrees.
    max_translation_mm : float
        Bound of each translation component, mm.
    expression_amplitude : float
        Largest activation of a named expression component.
    flame_expressions : int
        Number of leading FLAME expression components animated (unnamed models).
    flame_expression_sigma : float
        Amplitude of the unnamed components.
    shape_sigma : float
        Standard deviation of the identity coefficients.
    max_jaw_deg : float
        Widest jaw opening, degrees.
    talk_fraction : float
        Mean fraction of the time spent talking.
    """

    max_yaw_deg: float = 45.0
    max_pitch_deg: float = 25.0
    max_roll_deg: float = 8.0
    max_translation_mm: float = 50.0
    expression_amplitude: float = 0.7
    flame_expressions: int = 20
    flame_expression_sigma: float = 1.5
    shape_sigma: float = 1.0
    max_jaw_deg: float = 14.0
    talk_fraction: float = 0.5


class _Wave:
    """A bounded smooth signal: ``sum_k a_k sin(2π f_k t + φ_k)`` with ``sum a_k = 1``.

    Values lie in ``[-1, 1]``; shape ``(C,)`` for ``channels`` independent signals.
    """

    def __init__(
        self, rng: np.random.Generator, channels: int, low_hz: float, high_hz: float, terms: int = 3
    ) -> None:
        self.freq = rng.uniform(low_hz, high_hz, (channels, terms))
        self.phase = rng.uniform(0.0, 2.0 * np.pi, (channels, terms))
        amp = rng.uniform(0.3, 1.0, (channels, terms))
        self.amp = amp / amp.sum(axis=1, keepdims=True)

    def __call__(self, t: float) -> np.ndarray:
        return (self.amp * np.sin(2.0 * np.pi * self.freq * t + self.phase)).sum(axis=1)


def euler_to_axis_angle(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3,) axis-angle of ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` (radians in, radians out)."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    Ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    Rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    R = Ry @ Rx @ Rz
    angle = np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-12:
        return np.zeros(3)
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return axis / (2.0 * np.sin(angle)) * angle


class Performer:
    """A subject performing one sequence.

    Parameters
    ----------
    model_data : HeadModelData
        The head model (procedural or FLAME), mm.
    seed : int
        Seed of the motion (one per sequence).
    subject_seed : int
        Seed of the identity (one per subject; the same subject looks the same in every
        sequence).
    config : PerformerConfig, optional
        Motion ranges.

    Notes
    -----
    Not thread-safe (it owns a torch module); create one per thread.
    """

    def __init__(
        self,
        model_data: HeadModelData,
        seed: int,
        subject_seed: int,
        config: PerformerConfig | None = None,
    ) -> None:
        self.data = model_data
        self.config = PerformerConfig() if config is None else config
        self.model = HeadModel(model_data)
        c = self.config
        id_rng = np.random.default_rng([int(subject_seed), 0x5EED])
        self.shape = id_rng.normal(0.0, c.shape_sigma, model_data.num_shape)
        rng = np.random.default_rng([int(seed), 0xA11CE])
        names = model_data.expression_names
        self._blink_idx = [names.index(n) for n in BLINK_NAMES if n in names]
        self._named = bool(names)
        count = (
            model_data.num_expression
            if self._named
            else min(c.flame_expressions, model_data.num_expression)
        )
        self._expr_idx = np.array(
            [i for i in range(count) if i not in self._blink_idx], dtype=np.int64
        )
        self._expr_wave = _Wave(rng, len(self._expr_idx), 0.05, 0.4)
        # Each named expression is active only part of the time (threshold on its wave).
        self._expr_bias = rng.uniform(-0.6, 0.1, len(self._expr_idx))
        self._rot_wave = _Wave(rng, 3, 0.03, 0.25)
        self._trans_wave = _Wave(rng, 3, 0.02, 0.2)
        self._eye_wave = _Wave(rng, 2, 0.1, 0.6)
        self._talk_env = _Wave(rng, 1, 0.05, 0.2)
        self._syllable_phase = float(rng.uniform(0.0, 2.0 * np.pi))
        self._blink_start = float(rng.uniform(0.0, 3.0))
        self._blink_gaps = rng.uniform(2.0, 6.0, 256)
        if model_data.num_expression and not self._blink_idx:
            log.debug("model has no blink expressions: blinks skipped")

    def _blink(self, t: float) -> float:
        """Eyelid closure in ``[0, 1]``: a 0.2 s raised-cosine pulse at each blink time."""
        times = self._blink_start + np.concatenate([[0.0], np.cumsum(self._blink_gaps[:-1])])
        period = self._blink_start + float(self._blink_gaps.sum())  # ~1000 s, then repeats
        d = np.abs(t % period - times)
        near = d[d < 0.1]
        return float(0.5 + 0.5 * np.cos(np.pi * near.min() / 0.1)) if near.size else 0.0

    def frame(self, t: float) -> PerformerPose:
        """The pose at time ``t`` (seconds); deterministic for a given seed pair."""
        c = self.config
        t = float(t)
        expression = np.zeros(self.data.num_expression)
        wave = self._expr_wave(t) if len(self._expr_idx) else np.zeros(0)
        if self._named:
            activation = np.clip((wave + self._expr_bias) / 0.6, 0.0, 1.0)
            expression[self._expr_idx] = c.expression_amplitude * activation
        else:
            expression[self._expr_idx] = c.flame_expression_sigma * wave
        blink = self._blink(t)
        expression[self._blink_idx] = blink
        envelope = float(self._talk_env(t)[0]) + 2.0 * c.talk_fraction - 1.0
        talking = float(np.clip(envelope * 3.0, 0.0, 1.0))
        syllable = 0.5 + 0.5 * np.sin(2.0 * np.pi * SYLLABLE_HZ * t + self._syllable_phase)
        jaw = np.deg2rad(c.max_jaw_deg) * (0.1 + 0.9 * talking * syllable)
        yaw, pitch, roll = self._rot_wave(t) * np.deg2rad(
            [c.max_yaw_deg, c.max_pitch_deg, c.max_roll_deg]
        )
        eye = self._eye_wave(t) * np.deg2rad([8.0, 15.0])
        eye_pose = np.array([eye[0], eye[1], 0.0])
        return PerformerPose(
            time=t,
            shape=self.shape.copy(),
            expression=expression,
            global_pose=euler_to_axis_angle(yaw, pitch, roll),
            neck_pose=np.zeros(3),
            jaw_pose=np.array([jaw, 0.0, 0.0]),
            left_eye_pose=eye_pose,
            right_eye_pose=eye_pose.copy(),
            translation=self._trans_wave(t) * c.max_translation_mm,
            yaw_deg=float(np.rad2deg(yaw)),
            pitch_deg=float(np.rad2deg(pitch)),
            roll_deg=float(np.rad2deg(roll)),
        )

    def pose_vertices(self, pose: PerformerPose) -> np.ndarray:
        """(N, 3) float64 vertices of ``pose``, mm, world frame (= model frame)."""

        def row(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), dtype=torch.float32)[None]

        with torch.no_grad():
            out = self.model(
                shape=row(pose.shape) if pose.shape.size else None,
                expression=row(pose.expression) if pose.expression.size else None,
                global_pose=row(pose.global_pose),
                neck_pose=row(pose.neck_pose),
                jaw_pose=row(pose.jaw_pose),
                left_eye_pose=row(pose.left_eye_pose),
                right_eye_pose=row(pose.right_eye_pose),
                translation=row(pose.translation),
            )
        v = out.vertices[0].double().numpy()
        if not np.all(np.isfinite(v)):
            raise HeadModelError(f"posed vertices are not finite at t={pose.time:g} s")
        return v

    def vertices(self, t: float) -> np.ndarray:
        """(N, 3) float64 vertices at time ``t`` (seconds), mm."""
        return self.pose_vertices(self.frame(t))
