"""The bilinear sampling rule shared by every stage that reads an image at a displaced position.

The position (x + dx, y + dy) is clamped to [0, W-1] x [0, H-1] (border replicated), then the
four neighbours are mixed with bilinear weights. Positions are float32, pixel centres on
integers. :func:`bilinear_setup` (Numba) and :func:`sample_bilinear_reference` (NumPy) are
that rule; the warp, the forward-backward check of M_occ and the block grid of M_flow import
them rather than restating it.
"""
from __future__ import annotations

import numpy as np

from nodegraph.kernels import kernel


@kernel(inline="always")
def bilinear_setup(x, y, h, w):
    """Clamp the float32 position (x, y) to the image and return (y0, y1, x0, x1, fy, fx):
    the four neighbour indices and the fractional weights towards y1 and x1."""
    x = min(max(x, np.float32(0.0)), np.float32(w - 1))
    y = min(max(y, np.float32(0.0)), np.float32(h - 1))
    # x, y >= 0, so truncation is floor; unsigned indices spare Numba its negative-index checks
    x0 = np.uintp(x)
    y0 = np.uintp(y)
    x1 = min(x0 + np.uintp(1), np.uintp(w - 1))
    y1 = min(y0 + np.uintp(1), np.uintp(h - 1))
    return y0, y1, x0, x1, y - np.float32(y0), x - np.float32(x0)


@kernel(inline="always")
def bilinear_channel(image, y0, y1, x0, x1, fy, fx, c):
    """Channel ``c`` of ``image`` (H, W, C) at the position prepared by :func:`bilinear_setup`."""
    top = image[y0, x0, c] + fx * (image[y0, x1, c] - image[y0, x0, c])
    bottom = image[y1, x0, c] + fx * (image[y1, x1, c] - image[y1, x0, c])
    return top + fy * (bottom - top)


def sample_bilinear_reference(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy statement of the sampling rule: ``image`` (H, W[, C]) read at float positions x, y."""
    h, w = image.shape[:2]
    x = np.clip(x.astype(np.float32), 0, w - 1)
    y = np.clip(y.astype(np.float32), 0, h - 1)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = x - x0
    fy = y - y0
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
