"""Data sets by name, as raw integer features: ``digits`` (embedded), ``mnist``, ``fashion-mnist``.

IDX files are looked for in ``data_dir``, then ``$BNNLOGIC_DATA``, then (Fashion-MNIST) the
Debian package's folder, then the user cache ``~/.cache/bnnlogic``; each folder is tried as
is and with the data set's name appended.  Decompressed bytes are checked against known
sha256 sums (or the official gzip md5 where only that is known).  Users who are online get
missing files downloaded into the cache.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

NAMES = ("digits", "mnist", "fashion-mnist")
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bnnlogic"

# file -> ("sha256", digest of decompressed bytes) or ("md5gz", digest of the .gz file)
_CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("md5gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": ("sha256", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte.gz": ("sha256", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte.gz": ("sha256", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": ("sha256", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte.gz": ("sha256", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte.gz": ("sha256", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte.gz": ("sha256", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
}
_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
_HOW = {
    "mnist": "put the official MNIST .gz files there or in $BNNLOGIC_DATA/mnist",
    "fashion-mnist": "run `apt-get install dataset-fashion-mnist` or put the .gz files in $BNNLOGIC_DATA/fashion-mnist",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# Without MNIST's training images, a model trains on the first 8,000 test images and is
# evaluated on the last 2,000 (the rule of shared/data/README.md).
MNIST_TEST_SPLIT = 8000


@dataclass
class Dataset:
    """Raw integer features with labels; X arrays have shape (n, *feature_shape)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    lo: int
    hi: int
    classes: list[str]
    split: str = "official"
    notes: dict = field(default_factory=dict)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in ("train", "test"):
            raise UserError(f"unknown split {split!r}; use 'train' or 'test'")
        return (self.X_train, self.y_train) if split == "train" else (self.X_test, self.y_test)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load a data set by name (see ``NAMES``)."""
    if name == "digits":
        return _digits()
    if name not in _CHECKSUMS:
        raise UserError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    return _idx_dataset(name, data_dir, download)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = d.data.astype(np.uint8).reshape(-1, 1, 8, 8)
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.2, random_state=0, stratify=d.target)
    return Dataset("digits", Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64), 0, 16,
                   [str(i) for i in range(10)], split="sklearn train_test_split(test_size=0.2, random_state=0, stratified)")


def _search_dirs(name: str, data_dir) -> list[Path]:
    bases = [data_dir, os.environ.get("BNNLOGIC_DATA")]
    if name == "fashion-mnist":
        bases.append(DEBIAN_FASHION)
    bases.append(CACHE)
    dirs = []
    for base in bases:
        if base:
            dirs += [Path(base), Path(base) / name]
    return dirs


def _find(name: str, fname: str, data_dir, download: bool) -> Path | None:
    for d in _search_dirs(name, data_dir):
        if (d / fname).is_file():
            return d / fname
    if download and not os.environ.get("BNNLOGIC_OFFLINE"):
        target = CACHE / name / fname
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            with urllib.request.urlopen(_URLS[name] + fname, timeout=15) as r, open(tmp, "wb") as fh:
                fh.write(r.read())
            os.replace(tmp, target)
            return target
        except OSError:
            return None
    return None


def _read_checked(name: str, path: Path) -> bytes:
    raw = path.read_bytes()
    kind, digest = _CHECKSUMS[name][path.name]
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: corrupt gzip file ({exc}); delete it and get it again ({_HOW[name]})") from None
    got = hashlib.md5(raw).hexdigest() if kind == "md5gz" else hashlib.sha256(data).hexdigest()
    if got != digest:
        raise UserError(f"{path}: checksum mismatch ({kind} {got}, expected {digest}); "
                        f"delete it and get it again ({_HOW[name]})")
    return data


def parse_idx(data: bytes) -> np.ndarray:
    """Parse IDX bytes: big-endian magic (0x0803 images, 0x0801 labels), dims, then uint8 data."""
    magic = int.from_bytes(data[:4], "big")
    if magic not in (0x801, 0x803):
        raise ValueError(f"bad IDX magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _idx_dataset(name: str, data_dir, download: bool) -> Dataset:
    def get(fname: str, required: bool = True) -> np.ndarray | None:
        path = _find(name, fname, data_dir, download)
        if path is None:
            if not required:
                return None
            where = ", ".join(str(d) for d in _search_dirs(name, data_dir)[:4])
            raise UserError(f"{name}: missing file {fname} (looked in {where}); {_HOW[name]}")
        return parse_idx(_read_checked(name, path))

    Xte, yte = get("t10k-images-idx3-ubyte.gz"), get("t10k-labels-idx1-ubyte.gz")
    Xtr = get("train-images-idx3-ubyte.gz", required=(name != "mnist"))
    classes = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    if Xtr is None:  # MNIST without training images: the documented split of the test set
        s = MNIST_TEST_SPLIT
        return Dataset(name, Xte[:s, None], yte[:s].astype(np.int64), Xte[s:, None], yte[s:].astype(np.int64),
                       0, 255, classes,
                       split=f"mnist-test-split: train = test images 0..{s - 1}, evaluate = test images {s}..9999 "
                             "(official training images absent)")
    ytr = get("train-labels-idx1-ubyte.gz")
    return Dataset(name, Xtr[:, None], ytr.astype(np.int64), Xte[:, None], yte.astype(np.int64), 0, 255, classes)
