"""The FLAME loader: stand-in file in the exact layout, refusal of unsafe pickles, errors."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from capture.errors import HeadModelError
from inference.flame import flame_version, load_flame
from inference.flame_pickle import ChumpyStub, FlameUnpickler, to_array
from inference.flame_standin import (
    chumpy_array,
    dumps_with_chumpy,
    flame_standin_dict,
    write_flame_standin,
)
from inference.head_model import HeadModel, load_head_model_data

LICENSE_HINT = "flame.is.tue.mpg.de"


def test_standin_loads_with_shapes_units_and_version(flame_standin: Path) -> None:
    data = load_flame(flame_standin)
    raw = flame_standin_dict(seed=0)
    assert data.kind == "flame"
    assert data.version == "FLAME 2017-2020 (generic_model)"
    assert (data.num_shape, data.num_expression, data.num_joints) == (300, 100, 5)
    assert data.template.vertices.shape == (5023, 3)
    assert data.template.faces.shape == (9976, 3)
    assert data.posedirs.shape == (5023, 3, 36)
    assert data.J_regressor.shape == (5, 5023)
    assert data.parents.tolist() == [-1, 0, 1, 1, 1]
    # metres in the file, millimetres in the data
    np.testing.assert_allclose(data.template.vertices, raw["v_template"].x * 1000.0)
    np.testing.assert_allclose(data.shapedirs, raw["shapedirs"].x[..., :300] * 1000.0)
    np.testing.assert_allclose(data.exprdirs, raw["shapedirs"].x[..., 300:] * 1000.0)
    np.testing.assert_allclose(data.J_regressor, raw["J_regressor"].toarray())
    assert data.template.regions == {}


def test_standin_uses_the_chumpy_global_name(flame_standin: Path) -> None:
    import pickletools
    import sys

    ops = list(pickletools.genops(flame_standin.read_bytes()))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert "chumpy.ch Ch" in globals_
    assert "scipy.sparse._csc csc_matrix" in globals_ or "scipy.sparse.csc csc_matrix" in globals_
    assert "chumpy" not in sys.modules


def test_version_heuristic(tmp_path: Path, flame_standin: Path) -> None:
    assert flame_version("x/flame2023.pkl") == "FLAME 2023"
    assert flame_version("x/flame2023_no_jaw.pkl") == "FLAME 2023"
    assert flame_version("FLAME2020/generic_model.pkl") == "FLAME 2020"
    path = tmp_path / "flame2023.pkl"
    shutil.copy(flame_standin, path)
    assert load_flame(path).version == "FLAME 2023"


def test_model_with_only_identity_components(tmp_path: Path) -> None:
    path = write_flame_standin(tmp_path / "generic_model.pkl", num_components=300)
    data = load_flame(path)
    assert (data.num_shape, data.num_expression) == (300, 0)
    assert HeadModel(data)().vertices.shape == (1, 5023, 3)


def test_head_model_on_flame(flame_standin: Path) -> None:
    data = load_head_model_data(flame_standin)
    model = HeadModel(data)
    out = model(shape=torch.zeros(2, 10), jaw_pose=torch.tensor([[0.2, 0, 0]] * 2))
    assert out.vertices.shape == (2, 5023, 3) and out.joints.shape == (2, 5, 3)
    np.testing.assert_allclose(
        model().vertices[0].numpy(), data.template.vertices, rtol=1e-5, atol=1e-3
    )


def test_masks_fill_regions(tmp_path: Path, flame_standin: Path) -> None:
    masks = tmp_path / "vertex_masks2.npz"
    np.savez(masks, face=np.arange(100), left_ear=np.array([5, 6, 7], dtype=np.int32))
    data = load_flame(flame_standin, masks_path=masks)
    assert sorted(data.template.regions) == ["face", "left_ear"]
    assert data.template.region_mask("left_ear").sum() == 3
    bad = tmp_path / "bad_masks.npz"
    np.savez(bad, face=np.array([0.5, 1.5]))
    with pytest.raises(HeadModelError, match="integer index array"):
        load_flame(flame_standin, masks_path=bad)
    pickled = tmp_path / "pickled_masks.npz"
    np.savez(pickled, face=np.array([{"a": 1}], dtype=object))
    with pytest.raises(HeadModelError, match=r"pickled_masks\.npz"):
        load_flame(flame_standin, masks_path=pickled)


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_older_protocols_and_set_state_load(protocol: int) -> None:
    import io

    import scipy.sparse

    ch = chumpy_array(np.arange(6.0).reshape(2, 3))
    ch.extra = {1, 2}  # chumpy object state may hold sets
    sparse = scipy.sparse.csc_matrix(np.eye(3)[:2])
    data = dumps_with_chumpy({"x": ch, "J": sparse, "s": "lbs"}, protocol=protocol)
    out = FlameUnpickler(io.BytesIO(data)).load()
    assert isinstance(out["x"], ChumpyStub) and out["x"].state["extra"] == {1, 2}
    np.testing.assert_array_equal(to_array(out["x"], "x", ""), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(to_array(out["J"], "J", ""), np.eye(3)[:2])
    assert out["s"] == "lbs"


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalCall:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


@pytest.mark.parametrize("kind", ["system", "eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = (
        _SystemCall(f"touch {marker}")
        if kind == "system"
        else _EvalCall(f"open({str(marker)!r}, 'w').write('x')")
    )
    path = tmp_path / "generic_model.pkl"
    with path.open("wb") as fh:
        pickle.dump({"v_template": payload}, fh, protocol=2)
    with pytest.raises(HeadModelError, match=kind) as info:
        load_flame(path)
    assert "refusing" in str(info.value) and LICENSE_HINT in str(info.value)
    assert not marker.exists()


def test_unpickler_refuses_arbitrary_globals() -> None:
    import io

    unpickler = FlameUnpickler(io.BytesIO(b""), path="x.pkl")
    for module, name in [
        ("os", "system"),
        ("builtins", "getattr"),
        ("numpy", "load"),
        ("subprocess", "Popen"),
        ("numpy.testing", "assert_"),
    ]:
        with pytest.raises(HeadModelError, match=f"{module}.{name}"):
            unpickler.find_class(module, name)


def test_missing_file_explains_flame(tmp_path: Path) -> None:
    with pytest.raises(HeadModelError, match=r"generic_model\.pkl") as info:
        load_flame(tmp_path / "generic_model.pkl")
    message = str(info.value)
    assert "not found" in message and LICENSE_HINT in message and "license" in message


@pytest.mark.parametrize("content", [b"", b"this is not a pickle at all", b"\x80\x02}q\x00(U\x01a"])
def test_not_a_pickle_explains_flame(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(content)
    with pytest.raises(HeadModelError, match="not a FLAME model pickle") as info:
        load_flame(path)
    assert LICENSE_HINT in str(info.value) and "generic_model.pkl" in str(info.value)


def test_missing_key_and_wrong_shape_name_the_key(tmp_path: Path) -> None:
    raw = flame_standin_dict()
    plain = {k: getattr(v, "x", v) for k, v in raw.items()}
    del plain["shapedirs"]
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=2))
    with pytest.raises(HeadModelError, match="'shapedirs'") as info:
        load_flame(path)
    assert "missing key" in str(info.value) and LICENSE_HINT in str(info.value)
    plain["shapedirs"] = np.zeros((100, 3, 400))
    path.write_bytes(pickle.dumps(plain, protocol=2))
    with pytest.raises(
        HeadModelError, match=r"expected shape \(5023, 3, \*\), got \(100, 3, 400\)"
    ):
        load_flame(path)
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(HeadModelError, match="expected a pickled dict"):
        load_flame(path)
