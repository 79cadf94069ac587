"""The ``.tka`` reader against the official TEMPEH vectors, and the Tsai ↔ OpenCV fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capture.camera import Camera, project
from capture.rig_tka import (
    official_landscape_update,
    opencv_to_tsai,
    read_rig_tka,
    tsai_to_opencv,
    write_rig_tka,
)

RTOL = 1e-10


@pytest.fixture
def tka_vectors(shared_vectors: Path) -> tuple[Path, dict]:
    folder = shared_vectors / "tka"
    npz = shared_vectors / "tka_cameras.npz"
    if not folder.is_dir() or not npz.is_file():
        pytest.skip(f"tka vectors not found under {shared_vectors}")
    with np.load(npz) as data:
        return folder, {k: data[k] for k in data.files}


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("r", [1, 4, 8])
def test_official_resize_matches_vectors(tka_vectors, r: int) -> None:
    folder, v = tka_vectors
    rig = read_rig_tka(folder, resize_factor=r, official_resize=True)
    assert rig.names == list(v["camera_names"])
    _close(np.stack([c.K for c in rig]), v[f"K_f{r}"])
    _close(np.stack([c.dist[:2] for c in rig]), v[f"distortion_f{r}"])
    assert np.all(np.stack([c.dist[2:] for c in rig]) == 0.0)
    np.testing.assert_array_equal([[c.height, c.width] for c in rig], v[f"image_size_f{r}"])
    landscape = [official_landscape_update(c.K, (c.height, c.width)) for c in rig]
    _close(np.stack([k for k, _ in landscape]), v[f"K_landscape_f{r}"])
    np.testing.assert_array_equal([hw for _, hw in landscape], v[f"image_size_landscape_f{r}"])
    _close(np.stack([np.c_[c.R, c.t] for c in rig]), v["extrinsics"])
    _close(np.stack([c.center for c in rig]), v["center"])


def test_portrait_cameras_are_the_13_and_16_pods(tka_vectors) -> None:
    folder, v = tka_vectors
    rig = read_rig_tka(folder)
    np.testing.assert_array_equal([c.height > c.width for c in rig], v["is_portrait"])


@pytest.mark.parametrize("r", [4, 8])
def test_default_resize_fits_distortion_at_full_resolution(tka_vectors, r: int) -> None:
    folder, v = tka_vectors
    full = read_rig_tka(folder)
    rig = read_rig_tka(folder, resize_factor=r)
    _close(np.stack([c.dist[:2] for c in rig]), v["distortion_f1"])
    for a, b in zip(rig, full.scaled(r), strict=True):
        assert a.equals(b, atol=0.0)


def test_rig_from_vectors_round_trips_through_tka(tka_vectors, tmp_path: Path) -> None:
    folder, _ = tka_vectors
    rig = read_rig_tka(folder)
    write_rig_tka(rig, tmp_path / "out")
    back = read_rig_tka(tmp_path / "out")
    assert back.equals(rig, atol=1e-9)
    # The original κ values are kept verbatim when the rig came from .tka at full resolution.
    text = (tmp_path / "out" / "11_A.tka").read_text()
    assert "%K 0.000947560662\n" in text and "%K2 -2.983568999e-06\n" in text


def test_resized_rig_round_trips_through_solved_kappa(tka_vectors, tmp_path: Path) -> None:
    folder, _ = tka_vectors
    rig = read_rig_tka(folder, resize_factor=4, official_resize=True)
    write_rig_tka(rig, tmp_path / "out")
    assert read_rig_tka(tmp_path / "out").equals(rig, atol=1e-9)


@pytest.mark.parametrize("k", [(-0.2, 0.1), (0.05, -0.01), (0.0, 0.0), (-0.015, 0.0014)])
def test_opencv_to_tsai_inverts_the_fit(k) -> None:
    f_mm, w, h, fx, fy = 16.1, 1600, 1200, 3560.0, 3562.0
    kappa = opencv_to_tsai(np.array(k), f_mm, w, h, fx, fy)
    np.testing.assert_allclose(tsai_to_opencv(*kappa, f_mm, w, h, fx, fy), k, rtol=0, atol=1e-14)


def test_converted_distortion_models_the_tsai_lens(tka_vectors) -> None:
    """Projecting with (k1, k2) lands where Tsai undistortion says the point was seen."""
    folder, _ = tka_vectors
    cam = read_rig_tka(folder)["11_A"]
    meta = read_rig_tka(folder).metadata["tka"]["11_A"]
    f_mm = meta["f_mm"]
    rng = np.random.default_rng(0)
    uv = rng.uniform([100, 100], [1500, 1100], size=(200, 2))
    # Tsai: undistorted sensor point = distorted * (1 + κ1 r² + κ2 r⁴), r in sensor mm.
    xd = (uv - cam.K[:2, 2]) / np.diag(cam.K)[:2]
    r2 = np.sum((xd * f_mm) ** 2, axis=1)
    xu = xd * (1 + meta["kappa1"] * r2 + meta["kappa2"] * r2**2)[:, None]
    world = (np.c_[xu, np.ones(len(xu))] * 1000.0 - cam.t) @ cam.R
    err = np.abs(project(cam, world) - uv).max()
    ideal = Camera(cam.name, cam.width, cam.height, cam.K, np.zeros(5), cam.R, cam.t)
    err_ideal = np.abs(project(ideal, world) - uv).max()
    assert err < 0.3 and 10 * err < err_ideal, (err, err_ideal)
