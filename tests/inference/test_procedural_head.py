"""The procedural head: mesh validity, bases, rigging, regions and the reproducible cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from inference.head_data import JOINT_NAMES, REGION_NAMES, HeadModelData, unique_edges
from inference.procedural.fields import vertex_normals
from inference.procedural.surface import EYE_CENTRES, EYE_RADIUS
from inference.procedural_head import (
    build_procedural_head,
    load_procedural_head,
    read_procedural_head,
    write_procedural_head,
)
from resources import resource_path

JAW = JOINT_NAMES.index("jaw")


@pytest.fixture(scope="module")
def head() -> HeadModelData:
    return build_procedural_head()


def _directed_edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_size_and_frame(head: HeadModelData) -> None:
    v = head.template.vertices
    assert 3000 <= len(v) <= 6000
    lo, hi = v.min(axis=0), v.max(axis=0)
    assert 75.0 < hi[0] < 95.0 and -95.0 < lo[0] < -75.0
    assert -200.0 < lo[1] < -180.0 and 120.0 < hi[1] < 140.0
    assert -120.0 < lo[2] < -95.0 and 100.0 < hi[2] < 120.0
    nose_tip = v[np.argmax(v[:, 2])]
    assert abs(nose_tip[0]) < 1.0 and -15.0 < nose_tip[1] < 10.0


def test_faces_valid_and_consistently_oriented(head: HeadModelData) -> None:
    v, f = head.template.vertices, head.template.faces
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-6
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)
    directed = _directed_edges(f)
    assert len(np.unique(directed, axis=0)) == len(directed), "an edge is used twice one way"
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert counts.max() <= 2
    interior = undirected[counts == 2]
    keys = set(map(tuple, directed.tolist()))
    assert all((a, b) in keys and (b, a) in keys for a, b in interior.tolist())


def test_normals_point_outwards(head: HeadModelData) -> None:
    v = head.template.vertices
    n = vertex_normals(v, head.template.faces)
    assert n[np.argmax(v[:, 1]), 1] > 0.9  # top of the skull
    assert n[np.argmax(v[:, 2]), 2] > 0.5  # nose tip
    assert n[np.argmin(v[:, 2]), 2] < -0.5  # back of the head
    for name, centre in zip(("left_eyeball", "right_eyeball"), EYE_CENTRES, strict=True):
        idx = head.template.regions[name]
        outward = np.einsum("ij,ij->i", n[idx], v[idx] - centre)
        assert np.all(outward > 0)


def test_eyeballs_are_separate_spheres(head: HeadModelData) -> None:
    v, f = head.template.vertices, head.template.faces
    e = unique_edges(f)
    graph = scipy.sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(v),) * 2)
    count, labels = connected_components(graph, directed=False)
    assert count == 3
    for name, centre in zip(("left_eyeball", "right_eyeball"), EYE_CENTRES, strict=True):
        idx = head.template.regions[name]
        assert np.sum(labels == labels[idx[0]]) == len(idx)
        np.testing.assert_allclose(np.linalg.norm(v[idx] - centre, axis=1), EYE_RADIUS)
    assert EYE_CENTRES[0, 0] > 0  # the left eye is on the head's left, +x


@pytest.mark.parametrize("basis", ["shapedirs", "exprdirs"])
def test_components_are_named_smooth_and_plausibly_sized(head: HeadModelData, basis: str) -> None:
    dirs = getattr(head, basis)
    names = head.shape_names if basis == "shapedirs" else head.expression_names
    assert dirs.shape[2] >= (20 if basis == "shapedirs" else 10)
    assert len(set(names)) == dirs.shape[2]
    e = head.template.edges
    for k, name in enumerate(names):
        d = dirs[:, :, k]
        peak = np.linalg.norm(d, axis=1).max()
        assert 0.5 <= peak <= 15.0, name
        moved = np.linalg.norm(d, axis=1)
        active = np.maximum(moved[e[:, 0]], moved[e[:, 1]]) > 0.1 * peak
        jump = np.linalg.norm(d[e[:, 0]] - d[e[:, 1]], axis=1)
        # Neighbours (a few mm apart) move alike: no spikes, and typical steps are small.
        assert jump.max() < 0.8 * peak, name
        assert np.percentile(jump[active], 95) < 0.45 * peak, name


def test_expected_components_exist(head: HeadModelData) -> None:
    for name in ("smile", "mouth_open", "pucker", "brow_raise", "blink_left", "blink_right"):
        assert name in head.expression_names
    for name in ("head_width", "jaw_width", "nose_length", "eye_spacing", "ear_size"):
        assert name in head.shape_names


def test_skinning_weights(head: HeadModelData) -> None:
    w = head.weights
    assert w.shape == (head.template.num_vertices, 5)
    assert w.min() >= 0.0
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    for name, joint in (("left_eyeball", "left_eye"), ("right_eyeball", "right_eye")):
        np.testing.assert_array_equal(w[head.template.regions[name], JOINT_NAMES.index(joint)], 1)
    v = head.template.vertices
    chin = np.argmin(np.linalg.norm(v - [0.0, -72.0, 90.0], axis=1))
    forehead = np.argmin(np.linalg.norm(v - [0.0, 70.0, 85.0], axis=1))
    assert w[chin, JAW] > 0.9 and w[forehead, JAW] == 0.0
    np.testing.assert_array_equal(head.parents, [-1, 0, 1, 1, 1])
    assert not head.posedirs.any()


def test_joint_regressor_places_joints(head: HeadModelData) -> None:
    np.testing.assert_allclose(head.J_regressor.sum(axis=1), 1.0, atol=1e-12)
    joints = head.J_regressor @ head.template.vertices
    np.testing.assert_allclose(joints[3:], EYE_CENTRES, atol=1e-9)
    root, neck, jaw = joints[:3]
    assert root[1] < neck[1] < jaw[1] < EYE_CENTRES[0, 1]
    assert -130.0 < neck[1] < -95.0 and -45.0 < jaw[1] < -15.0 and abs(jaw[2]) < 20.0


def test_jaw_rotation_opens_the_mouth(head: HeadModelData) -> None:
    v = head.template.vertices
    lips = head.template.regions["lips"]
    hinge = (head.J_regressor @ v)[JAW]
    a = np.radians(15.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    w = head.weights[:, JAW : JAW + 1]
    posed = (1 - w) * v + w * ((v - hinge) @ rot.T + hinge)
    gap = posed[lips][:, None, :] - posed[lips][None, :, :]
    assert (
        np.linalg.norm(gap, axis=2).max()
        > np.linalg.norm(v[lips][:, None] - v[lips][None], axis=2).max()
    )
    middle = lips[np.abs(v[lips, 0]) < 3.0]
    assert np.ptp(posed[middle, 1]) - np.ptp(v[middle, 1]) > 3.0


def test_blink_covers_the_eyeball(head: HeadModelData) -> None:
    v = head.template.vertices
    k = head.expression_names.index("blink_left")
    closed = v + head.exprdirs[:, :, k]
    centre = EYE_CENTRES[0]
    skin = np.setdiff1d(np.arange(len(v)), head.template.regions["left_eyeball"])
    near = skin[(np.hypot(*(v[skin, :2] - centre[:2]).T) < 6.0) & (v[skin, 2] > 40.0)]
    assert len(near) > 0
    r2 = np.sum((closed[near, :2] - centre[:2]) ** 2, axis=1)
    eyeball_front = centre[2] + np.sqrt(EYE_RADIUS**2 - r2)
    assert np.all(closed[near, 2] > eyeball_front)
    assert np.any(
        v[near, 2]
        < centre[2] + np.sqrt(EYE_RADIUS**2 - np.sum((v[near, :2] - centre[:2]) ** 2, axis=1))
    )


def test_regions(head: HeadModelData) -> None:
    regions = head.template.regions
    for name in REGION_NAMES:
        assert len(regions[name]) > 0, name
    v = head.template.vertices
    for name in ("left_ear", "left_eyeball", "left_eye_region"):
        assert np.all(v[regions[name], 0] > 0), name
        assert np.all(v[regions[name.replace("left", "right")], 0] < 0), name
    assert v[regions["boundary"], 1].max() < -170.0


def test_build_is_deterministic_and_matches_the_cache(head: HeadModelData, tmp_path) -> None:
    cached = load_procedural_head()
    assert cached.kind == "procedural" and cached.version == "procedural v1"
    assert cached.shape_names == head.shape_names
    assert cached.expression_names == head.expression_names
    for attr in ("shapedirs", "exprdirs", "posedirs", "J_regressor", "weights", "parents"):
        np.testing.assert_array_equal(getattr(cached, attr), getattr(head, attr), err_msg=attr)
    np.testing.assert_array_equal(cached.template.vertices, head.template.vertices)
    np.testing.assert_array_equal(cached.template.faces, head.template.faces)
    assert sorted(cached.template.regions) == sorted(head.template.regions)
    for name, idx in head.template.regions.items():
        np.testing.assert_array_equal(cached.template.regions[name], idx, err_msg=name)

    first = write_procedural_head(tmp_path / "a.npz").read_bytes()
    second = write_procedural_head(tmp_path / "b.npz", build_procedural_head()).read_bytes()
    assert first == second
    assert write_procedural_head(tmp_path / "c.npz", cached).read_bytes() == (
        resource_path("procedural_head.npz").read_bytes()
    )
    assert resource_path("procedural_head.npz").stat().st_size < 3_000_000
    with np.load(resource_path("procedural_head.npz"), allow_pickle=False) as npz:
        assert {"shape_names", "expression_names", "v_template", "f"} <= set(npz.files)


def test_read_rejects_bad_files(tmp_path) -> None:
    from capture.errors import HeadModelError

    with pytest.raises(HeadModelError, match="missing"):
        read_procedural_head(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(HeadModelError, match=r"bad\.npz"):
        read_procedural_head(bad)
