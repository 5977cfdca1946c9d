"""Luminance and chroma (BT.601, the weights of SPEC section 3) for fusing on luminance only."""
from __future__ import annotations

import cv2
import numpy as np

from nodegraph.kernels import kernel

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
LUMA_R, LUMA_G, LUMA_B = (np.float32(weight) for weight in LUMA_WEIGHTS)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Y = 0.299 R + 0.587 G + 0.114 B of a float RGB image (H, W, 3) -> (H, W) float32."""
    # cv2.transform is a single pass over the pixels, ~5x faster than np.tensordot at 12 MP.
    y = cv2.transform(rgb.astype(np.float32, copy=False), LUMA_WEIGHTS[None, :])
    return y.reshape(rgb.shape[:2])


@kernel(nogil=True)
def _replace_luminance_kernel(rgb, y_new, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            r, g, b = rgb[i, j, 0], rgb[i, j, 1], rgb[i, j, 2]
            delta = y_new[i, j] - (LUMA_R * r + LUMA_G * g + LUMA_B * b)
            out[i, j, 0] = min(max(r + delta, np.float32(0.0)), np.float32(1.0))
            out[i, j, 1] = min(max(g + delta, np.float32(0.0)), np.float32(1.0))
            out[i, j, 2] = min(max(b + delta, np.float32(0.0)), np.float32(1.0))


def replace_luminance(rgb: np.ndarray, y_new: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``rgb`` with its luminance replaced by ``y_new`` and its chroma (U, V) kept.

    In YUV with BT.601 weights, changing Y alone at fixed U, V adds the same offset to
    R, G and B, so this is ``rgb + (y_new - Y)`` per channel, clipped to [0, 1]. Written into
    ``out`` (float32, rgb's shape, e.g. a view of a larger image) when given: no temporary
    of rgb's size.
    """
    # One Numba pass per pixel (Y, the offset, the clip): at 12 MP in the fusion's 512 px
    # cores 0.024 s against 0.133 s for OpenCV's transform, three-channel add and clip, which
    # each went over the pixels again. Single-threaded and free of the GIL: the fusion calls
    # it from its tile threads.
    rgb = np.asarray(rgb, np.float32)
    y_new = np.asarray(y_new, np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or y_new.shape != rgb.shape[:2]:
        raise ValueError(f"replace_luminance needs an (H, W, 3) image and an (H, W) plane, "
                         f"got {rgb.shape} and {y_new.shape}")
    out = np.empty(rgb.shape, np.float32) if out is None else out
    _replace_luminance_kernel(rgb, y_new, out)
    return out


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
