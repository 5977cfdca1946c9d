"""Luminance and chroma (BT.601, the weights of SPEC section 3) for fusing on luminance only."""
from __future__ import annotations

import cv2
import numpy as np

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
REPLACE_BLOCK_PIXELS = 1 << 16  # replace_luminance's block: a 0.75 MB three-channel temporary


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Y = 0.299 R + 0.587 G + 0.114 B of a float RGB image (H, W, 3) -> (H, W) float32."""
    # cv2.transform is a single pass over the pixels, ~5x faster than np.tensordot at 12 MP.
    y = cv2.transform(rgb.astype(np.float32, copy=False), LUMA_WEIGHTS[None, :])
    return y.reshape(rgb.shape[:2])


def replace_luminance(rgb: np.ndarray, y_new: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``rgb`` with its luminance replaced by ``y_new`` and its chroma (U, V) kept.

    In YUV with BT.601 weights, changing Y alone at fixed U, V adds the same offset to
    R, G and B, so this is ``rgb + (y_new - Y)`` per channel, clipped to [0, 1]. Written into
    ``out`` (float32, rgb's shape, e.g. a view of a larger image) when given: no temporary
    of rgb's size.
    """
    rgb = np.asarray(rgb, np.float32)
    out = np.empty(rgb.shape, np.float32) if out is None else out
    delta = np.subtract(y_new, luminance(rgb), dtype=np.float32)
    # OpenCV adds the delta's three-channel copy in one SIMD pass (into ``out``'s strided rows
    # as well): NumPy's broadcast over a last axis of 3 took ~2x the time of the whole
    # function now (the fusion calls it on every 1 MP tile core). In blocks of rows, so that
    # the copy is a small temporary (at the fusion's memory peak), not an image-sized one.
    step = max(1, REPLACE_BLOCK_PIXELS // max(1, rgb.shape[1]))
    for top in range(0, rgb.shape[0], step):
        block = delta[top:top + step]
        cv2.add(rgb[top:top + step], cv2.merge((block, block, block)), dst=out[top:top + step])
    return np.clip(out, 0.0, 1.0, out=out)


def gray8(image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 luminance (h, w) of an RGB ``image`` (H, W, 3) in [0, 1] (or of a luminance plane
    (H, W) as it is), area-resized to ``shape`` (h, w) when given (OpenCV's FAST and flow
    methods work on 8-bit single-channel images)."""
    y = image if image.ndim == 2 else luminance(image)
    if shape is not None and y.shape != tuple(shape):
        y = cv2.resize(y, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def to_uint8_gray(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """8-bit luminance of ``image`` downscaled so its long side is at most ``long_side``; (gray, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    return gray8(image, shape), scale
