"""PNG pictures of raw image inputs (Pillow): counterexamples side by side with the original."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .fileio import atomic_open


def is_image(feature_shape: Sequence[int]) -> bool:
    """Grey-scale images (1, H, W) or (H, W) can be drawn."""
    fs = tuple(feature_shape)
    return len(fs) == 2 or (len(fs) == 3 and fs[0] == 1)


def image_shape(feature_shape: Sequence[int]) -> tuple[int, int] | None:
    """(H, W) of inputs that can be drawn as a grey image: features of shape (1, H, W) or
    (H, W), or a flat square number of them (8x8 digits come flat); None otherwise."""
    fs = tuple(int(v) for v in feature_shape)
    if is_image(fs):
        return fs[-2], fs[-1]
    d = int(np.prod(fs))
    side = int(round(d ** 0.5))
    return (side, side) if side * side == d else None


def _panel(x: np.ndarray, shape: Sequence[int], lo: int, hi: int, scale: int) -> np.ndarray:
    """Grey panel (H*scale, W*scale, 3) uint8 of raw features in [lo, hi]."""
    h, w = tuple(shape)[-2:]
    g = ((np.asarray(x, dtype=np.float64).reshape(h, w) - lo) * 255.0 / max(hi - lo, 1)).astype(np.uint8)
    return np.repeat(np.repeat(np.stack([g] * 3, -1), scale, 0), scale, 1)


def _diff_panel(d: np.ndarray, shape: Sequence[int], scale: int) -> np.ndarray:
    """Difference panel: red where the value rose, blue where it fell, white unchanged."""
    h, w = tuple(shape)[-2:]
    d = np.asarray(d, dtype=np.float64).reshape(h, w)
    m = max(np.abs(d).max(), 1.0)
    rgb = np.full((h, w, 3), 255.0)
    rgb[..., 1] -= 255 * np.abs(d) / m
    rgb[..., 2] -= 255 * np.clip(d, 0, None) / m
    rgb[..., 0] -= 255 * np.clip(-d, 0, None) / m
    return np.repeat(np.repeat(rgb.astype(np.uint8), scale, 0), scale, 1)


def save_counterexample_png(path: str | os.PathLike, x: np.ndarray, adv: np.ndarray,
                            feature_shape: Sequence[int], lo: int, hi: int, caption: str = "") -> None:
    """original | adversarial | difference, upscaled, with an optional caption line."""
    from PIL import Image, ImageDraw

    h, w = tuple(feature_shape)[-2:]
    scale = max(1, 160 // max(h, w))
    gap = np.full((h * scale, 4, 3), 255, np.uint8)
    row = np.concatenate([_panel(x, feature_shape, lo, hi, scale), gap,
                          _panel(adv, feature_shape, lo, hi, scale), gap,
                          _diff_panel(np.asarray(adv, np.int64) - np.asarray(x, np.int64), feature_shape, scale)], 1)
    img = Image.new("RGB", (row.shape[1], row.shape[0] + 16), "white")
    img.paste(Image.fromarray(row), (0, 16))
    ImageDraw.Draw(img).text((2, 2), caption or "original | adversarial | difference", fill="black")
    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")
