"""Data sets: embedded digits, IDX parsing, checksums, clear errors for missing or corrupt files."""
import gzip

import numpy as np
import pytest

from bnnlogic import data
from bnnlogic.errors import UserError


def test_digits_is_embedded_raw_and_split_deterministically():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    assert a.X_train.shape[1:] == (1, 8, 8) and a.lo == 0 and a.hi == 16
    assert a.X_train.max() <= 16 and a.X_train.dtype == np.uint8
    assert len(a.X_train) + len(a.X_test) == 1797
    np.testing.assert_array_equal(a.X_test, b.X_test)


def test_parse_idx_images_and_labels():
    img = (0x803).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(12))
    arr = data.parse_idx(img)
    assert arr.shape == (2, 2, 3) and arr[1, 1, 2] == 11
    lab = (0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([7, 8, 9])
    assert data.parse_idx(lab).tolist() == [7, 8, 9]
    with pytest.raises(ValueError):
        data.parse_idx(b"\0\0\0\0")


def test_unknown_name_and_missing_file_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("BNNLOGIC_DATA", raising=False)
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "DEBIAN_FASHION", str(tmp_path / "none"))
    with pytest.raises(UserError, match="unknown data set"):
        data.load_dataset("cifar")
    with pytest.raises(UserError, match="missing file t10k-images-idx3-ubyte.gz") as exc:
        data.load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert "\n" not in str(exc.value) and "apt-get install dataset-fashion-mnist" in str(exc.value)


def test_checksum_mismatch_and_corrupt_gzip_are_rejected(tmp_path, monkeypatch):
    monkeypatch.delenv("BNNLOGIC_DATA", raising=False)
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"wrong bytes"))
    with pytest.raises(UserError, match="checksum mismatch"):
        data.load_dataset("mnist", data_dir=tmp_path, download=False)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(UserError, match="corrupt gzip"):
        data.load_dataset("mnist", data_dir=tmp_path, download=False)
