"""Seeded appearance of a synthetic performer: skin, regions, lighting, projector and sensor.

Every number that changes how a rendered set looks lives in one frozen :class:`Appearance`,
drawn from a seed by :meth:`Appearance.random`; the same seed gives the same images.

Frames and units: directions and positions are in the **world** frame (mm, y up, the face looks
along +z), so lighting is the same for every camera of a rig, as in a real studio. Colours are
linear RGB in [0, 1]; the shader applies exposure and a 2.2 gamma before quantising to uint8.

Region weights (the per-vertex ``material`` attribute, (N, 4) float in [0, 1]):

* ``[:, 0]`` eyebrow, ``[:, 1]`` lips, ``[:, 3]`` hair/scalp: blend weights towards the region's
  albedo (1 = fully that region).
* ``[:, 2]`` eye: a radial profile rather than a plain weight, so irises and pupils can be drawn
  without texture coordinates: 0 outside the eye, ~0.3 on the sclera, ~0.6–0.8 over the iris and
  ≥ 0.9 at the pupil (the caller computes it from the distance to the iris centre).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

Vec3 = tuple[float, float, float]

SPECKLE_TEXTURE_SIZE = 1024
"""Side of the projector's random-dot texture in texels."""


def _unit(v: np.ndarray) -> Vec3:
    v = np.asarray(v, dtype=np.float64)
    return tuple(float(x) for x in v / np.linalg.norm(v))  # type: ignore[return-value]


def _tuple(v: np.ndarray) -> Vec3:
    return tuple(float(x) for x in np.asarray(v, dtype=np.float64))  # type: ignore[return-value]


@dataclass(frozen=True)
class Appearance:
    """Everything that sets the look of a rendered set (see the module notes for frames).

    Attributes
    ----------
    seed : int
        The seed it was drawn from; also seeds the per-camera sensor noise.
    plain : bool
        True: flat white, unlit, no noise or blur (silhouette masks and tests).
    skin_albedo : Vec3
        Mean linear RGB skin albedo.
    skin_variation : float
        Relative amplitude of 3–24 mm mottling (0–0.3): texture seen at 1/8 size.
    pore_strength : float
        Relative darkening by the fine (0.4–3 mm) noise octaves: pores, skin texture.
    freckle_density, freckle_strength : float
        Fraction of skin covered by freckles (0–0.3) and their relative darkening.
    noise_offset : Vec3
        Offset (mm) into the 3D noise field: a different skin pattern per subject.
    brow_albedo, lip_albedo, iris_albedo, sclera_albedo, hair_albedo : Vec3
        Region albedos (linear RGB).
    key_dir, fill_dir : Vec3
        Unit directions towards the key and fill lights, world frame.
    key_color, fill_color, ambient_color : Vec3
        Light colour times intensity (linear RGB irradiance scale).
    specular : float
        Blinn-Phong specular weight of skin (lips and eyes get more).
    exposure : float
        Multiplies the radiance before the gamma curve.
    background : float
        Linear grey level of the background (0–1).
    noise_sigma : float
        Standard deviation of the additive Gaussian sensor noise in uint8 counts.
    blur_sigma : float
        Gaussian optical blur in **full-resolution** pixels (divided by the render downscale).
    speckle : bool
        Whether the random-dot projector is on.
    speckle_seed : int
        Seed of the dot texture.
    speckle_gain : float
        Projector irradiance scale.
    speckle_density : float
        Fraction of texels that are dots.
    projector_position : Vec3
        Projector centre, world mm; it looks at the world origin with ``projector_fov_deg``.
    projector_fov_deg : float
        Full field of view of the square projector image, degrees.
    """

    seed: int = 0
    plain: bool = False
    skin_albedo: Vec3 = (0.62, 0.45, 0.36)
    skin_variation: float = 0.18
    pore_strength: float = 0.25
    freckle_density: float = 0.1
    freckle_strength: float = 0.3
    noise_offset: Vec3 = (0.0, 0.0, 0.0)
    brow_albedo: Vec3 = (0.08, 0.06, 0.05)
    lip_albedo: Vec3 = (0.55, 0.25, 0.25)
    iris_albedo: Vec3 = (0.25, 0.18, 0.1)
    sclera_albedo: Vec3 = (0.8, 0.78, 0.75)
    hair_albedo: Vec3 = (0.1, 0.07, 0.05)
    key_dir: Vec3 = (0.35, 0.45, 0.82)
    fill_dir: Vec3 = (-0.6, -0.1, 0.79)
    key_color: Vec3 = (0.9, 0.9, 0.9)
    fill_color: Vec3 = (0.35, 0.35, 0.35)
    ambient_color: Vec3 = (0.15, 0.15, 0.15)
    specular: float = 0.08
    exposure: float = 1.0
    background: float = 0.05
    noise_sigma: float = 1.5
    blur_sigma: float = 0.7
    speckle: bool = False
    speckle_seed: int = 0
    speckle_gain: float = 0.4
    speckle_density: float = 0.15
    projector_position: Vec3 = (0.0, 80.0, 1000.0)
    projector_fov_deg: float = 30.0

    @classmethod
    def random(cls, seed: int, speckle: bool | None = None) -> Appearance:
        """Draw a plausible appearance from ``seed``.

        Parameters
        ----------
        seed : int
            Any non-negative integer; the same seed gives the same appearance.
        speckle : bool, optional
            Force the projector on or off; default: on with probability 0.3.

        Returns
        -------
        Appearance
        """
        rng = np.random.default_rng([0x5EED, int(seed)])
        tone = rng.uniform(0.25, 1.0)  # dark to light skin
        skin = np.array([0.62, 0.45, 0.36]) * tone * rng.uniform(0.92, 1.08, 3)
        hair_tone = rng.uniform(0.02, 0.35)
        hair = np.array([1.0, 0.75, 0.55]) * hair_tone
        az = np.deg2rad(rng.uniform(-70, 70))
        el = np.deg2rad(rng.uniform(-10, 50))
        key = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
        faz = -np.sign(az) * np.deg2rad(rng.uniform(20, 80)) if az != 0 else np.deg2rad(45)
        fel = np.deg2rad(rng.uniform(-20, 20))
        fill = np.array([np.sin(faz) * np.cos(fel), np.sin(fel), np.cos(faz) * np.cos(fel)])
        key_int = rng.uniform(0.6, 1.1)
        key_tint = 1.0 + rng.uniform(-0.1, 0.1, 3)
        fill_tint = 1.0 + rng.uniform(-0.1, 0.1, 3)
        fill_int = key_int * rng.uniform(0.15, 0.5)
        amb = rng.uniform(0.06, 0.2)
        on = bool(rng.uniform() < 0.3) if speckle is None else bool(speckle)
        # Exposure roughly normalises a mid-grey skin to a mid-range pixel value.
        exposure = rng.uniform(0.8, 1.3) * 0.55 / max(float(skin.mean()) * (key_int + amb), 0.05)
        return cls(
            seed=int(seed),
            skin_albedo=_tuple(np.clip(skin, 0.02, 0.95)),
            skin_variation=float(rng.uniform(0.1, 0.28)),
            pore_strength=float(rng.uniform(0.15, 0.4)),
            freckle_density=float(rng.uniform(0.0, 0.25)),
            freckle_strength=float(rng.uniform(0.15, 0.45)),
            noise_offset=_tuple(rng.uniform(0.0, 1000.0, 3)),
            brow_albedo=_tuple(hair * rng.uniform(0.6, 1.0)),
            lip_albedo=_tuple(skin * np.array([1.0, 0.6, 0.65]) * rng.uniform(0.75, 0.95)),
            iris_albedo=_tuple(
                rng.choice([[0.25, 0.15, 0.07], [0.2, 0.3, 0.45], [0.2, 0.3, 0.15]])
            ),
            sclera_albedo=_tuple(np.array([0.8, 0.77, 0.74]) * rng.uniform(0.85, 1.0)),
            hair_albedo=_tuple(hair),
            key_dir=_unit(key),
            fill_dir=_unit(fill),
            key_color=_tuple(key_int * key_tint),
            fill_color=_tuple(fill_int * fill_tint),
            ambient_color=_tuple(np.full(3, amb)),
            specular=float(rng.uniform(0.02, 0.15)),
            exposure=float(exposure),
            background=float(rng.uniform(0.0, 0.12)),
            noise_sigma=float(rng.uniform(0.5, 3.0)),
            blur_sigma=float(rng.uniform(0.3, 1.0)),
            speckle=on,
            speckle_seed=int(rng.integers(0, 2**31)),
            speckle_gain=float(rng.uniform(0.25, 0.6)),
            speckle_density=float(rng.uniform(0.08, 0.2)),
            projector_position=_tuple(
                [rng.uniform(-80, 80), rng.uniform(0, 150), rng.uniform(900, 1100)]
            ),
            projector_fov_deg=float(rng.uniform(25, 35)),
        )

    @classmethod
    def flat(cls) -> Appearance:
        """Flat white, unlit, noiseless: pixels are 255 on the surface, 0 elsewhere."""
        return cls(plain=True, background=0.0, noise_sigma=0.0, blur_sigma=0.0)


def speckle_texture(seed: int, density: float, size: int = SPECKLE_TEXTURE_SIZE) -> np.ndarray:
    """Random-dot image of a speckle projector.

    Parameters
    ----------
    seed : int
        Seed of the dot positions.
    density : float
        Fraction of texels that are dot centres.
    size : int
        Side in texels.

    Returns
    -------
    np.ndarray
        (size, size) uint8, dots ~2 texels wide, slightly blurred so the projection is smooth.
    """
    rng = np.random.default_rng([0x5BEC, int(seed)])
    dots = (rng.random((size, size)) < density * 0.35).astype(np.float32)
    dots = cv2.dilate(dots, np.ones((2, 2), np.uint8))
    dots = cv2.GaussianBlur(dots, (0, 0), 0.6)
    return np.clip(dots * 255.0 / max(float(dots.max()), 1e-6), 0, 255).astype(np.uint8)


def projector_matrix(appearance: Appearance) -> np.ndarray:
    """(4, 4) world → projector clip matrix; texture uv = (clip.xy / clip.w + 1) / 2.

    The projector looks from ``appearance.projector_position`` at the world origin, y up.
    """
    eye = np.asarray(appearance.projector_position, dtype=np.float64)
    f = -eye / np.linalg.norm(eye)
    s = np.cross(f, [0.0, 1.0, 0.0])
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    V = np.eye(4)
    V[0, :3], V[1, :3], V[2, :3] = s, u, -f
    V[:3, 3] = -V[:3, :3] @ eye
    g = 1.0 / np.tan(np.deg2rad(appearance.projector_fov_deg) / 2.0)
    P = np.array([[g, 0, 0, 0], [0, g, 0, 0], [0, 0, -1.0, -2.0], [0, 0, -1.0, 0]])
    return P @ V
