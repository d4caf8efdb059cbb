"""Model file: round trip, input checks, rejection of corrupt and foreign files."""
import json
import zipfile

import numpy as np
import pytest

import bnnlogic
from bnnlogic.errors import UserError
from bnnlogic.model import Model
from helpers import flipped_copies, random_ir


@pytest.fixture
def model():
    ir = random_ir(3, image=(1, 4, 4), conv=((2, 2, 1),), pool=2, hidden=(3,), levels=2, hi=5)
    return Model(ir, {"dataset": "synthetic", "classes": ["a", "b", "c"]}, {"w": np.arange(4.0)})


def test_round_trip_preserves_predictions_meta_and_state(model, tmp_path):
    path = tmp_path / "m.bnn"
    model.save(path)
    back = bnnlogic.load(path)
    X = np.random.default_rng(0).integers(0, 6, size=(50, 16))
    np.testing.assert_array_equal(back.scores(X), model.ir.scores(X))
    assert back.meta == model.meta and back.classes == ["a", "b", "c"]
    np.testing.assert_array_equal(back.torch_state["w"], np.arange(4.0))
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_check_inputs_accepts_rows_batches_and_images(model):
    assert model.check_inputs(np.zeros(16)).shape == (1, 16)
    assert model.check_inputs(np.zeros((3, 1, 4, 4), dtype=np.uint8)).shape == (3, 16)
    assert model.predict(np.full((2, 16), 5.0)).shape == (2,)


@pytest.mark.parametrize("X,msg", [(np.zeros(15), "shape"), (np.full(16, 0.5), "non-integer"),
                                   (np.full(16, 6), "outside"), (np.array(["a"] * 16), "dtype")])
def test_check_inputs_rejects_bad_inputs(model, X, msg):
    with pytest.raises(UserError, match=msg):
        model.check_inputs(X)


def test_missing_corrupt_and_foreign_files_are_user_errors(model, tmp_path):
    with pytest.raises(UserError, match="no such model file"):
        bnnlogic.load(tmp_path / "nope.bnn")
    bad = tmp_path / "bad.bnn"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="corrupt or foreign"):
        bnnlogic.load(bad)
    good = tmp_path / "good.bnn"
    model.save(good)
    truncated = tmp_path / "trunc.bnn"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(UserError):
        bnnlogic.load(truncated)
    for header, match in [({"format": "other"}, "not a bnnlogic model"), ({"format": "bnnlogic-ir", "version": 99}, "version 99")]:
        foreign = tmp_path / "foreign.bnn"
        with zipfile.ZipFile(foreign, "w") as zf:
            zf.writestr("header.json", json.dumps(header))
        with pytest.raises(UserError, match=match):
            bnnlogic.load(foreign)


def test_tampered_weights_are_rejected(model, tmp_path):
    path, tampered = tmp_path / "m.bnn", tmp_path / "t.bnn"
    model.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "layers.0.A.npy":
                import io
                A = np.lib.format.read_array(io.BytesIO(data)).copy()
                A.flat[0] = 3
                buf = io.BytesIO()
                np.lib.format.write_array(buf, A)
                data = buf.getvalue()
            dst.writestr(item, data)
    with pytest.raises(UserError, match="weights must be in"):
        bnnlogic.load(tampered)


def _rewrite(src_path, dst_path, edit_header) -> None:
    """Copy a model file, passing its header through ``edit_header``."""
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(dst_path, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "header.json":
                header = json.loads(data)
                edit_header(header)
                data = json.dumps(header)
            dst.writestr(item, data)


def test_padded_conv_with_per_position_thresholds_round_trips(tmp_path):
    ir = random_ir(4, image=(1, 5, 5), conv=((2, 3, 2, 1), (3, 2, 1, 1)), hidden=(3,), position_k=True, hi=3)
    path = tmp_path / "p.bnn"
    Model(ir).save(path)
    back = bnnlogic.load(path)
    assert [(l.padding, l.k.shape) for l in back.ir.layers[:2]] == [(1, (2, 3, 3)), (1, (3, 4, 4))]
    X = np.random.default_rng(1).integers(0, 4, size=(40, 25))
    np.testing.assert_array_equal(back.scores(X), ir.scores(X))
    assert json.loads(zipfile.ZipFile(path).read("header.json"))["version"] == 2


def test_version_1_files_are_still_read(model, tmp_path):
    """A version-1 file (no padding key, per-filter thresholds) loads; one that claims version 1
    but holds per-position thresholds is refused."""
    path, old = tmp_path / "m.bnn", tmp_path / "v1.bnn"
    model.save(path)

    def to_v1(h):
        h["version"] = 1
        for entry in h["layers"]:
            entry.pop("padding", None)
    _rewrite(path, old, to_v1)
    X = np.random.default_rng(0).integers(0, 6, size=(20, 16))
    np.testing.assert_array_equal(bnnlogic.load(old).scores(X), model.scores(X))
    per_pos = random_ir(4, image=(1, 5, 5), conv=((2, 3, 2, 1),), hidden=(3,), position_k=True, hi=3)
    Model(per_pos).save(path)
    _rewrite(path, old, to_v1)
    with pytest.raises(UserError, match="version-1"):
        bnnlogic.load(old)


def test_every_flipped_byte_loads_or_is_a_user_error(model, tmp_path):
    """Bit rot anywhere in the file (zip headers, deflate streams: zlib errors, JSON, arrays)
    either still loads or is one clear UserError, never another exception."""
    path = tmp_path / "m.bnn"
    model.save(path)
    p = tmp_path / "flipped.bnn"
    for _ in flipped_copies(path, p):
        try:
            Model.load(p)
        except UserError:
            pass
