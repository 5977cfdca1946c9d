"""Flow fields: their unit of distance, resizing, and the forward-backward round trip.

F_fwd maps I_src to I_ref (I_ref(x + F_fwd(x)) ~ I_src(x)); F_bwd the reverse. Arrays are
float32 (H, W, 2) holding (dx, dy) in pixels of their own grid.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph.kernels import kernel

from .sampling import bilinear_channel, bilinear_setup, sample_bilinear_reference

FLOW_UNIT_SIDE = 512  # long side (px) of HZSR's 384x512 flow resolution


def flow_unit(shape: tuple[int, ...]) -> float:
    """Full-resolution px per px of the flow's reference resolution (long side 512 px).

    The masks measure flow distances in these units: flow is estimated at that size and
    upsampled, so its errors grow with the image and a constant in full-resolution pixels
    would mean something else at 12 MP than at 0.1 MP.
    """
    return max(shape[:2]) / FLOW_UNIT_SIDE


def resize_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinearly resample a flow field (H, W, 2) to ``shape`` (h, w) and rescale its vectors
    (px of the old grid) to px of the new one; float32 (h, w, 2)."""
    h, w = shape
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow.astype(np.float32, copy=False)
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out.astype(np.float32, copy=False)


@kernel(inline="always")
def fb_residual_at(flow_fwd, flow_bwd, i, j):
    """(r(x) = ||F_fwd(x) + F_bwd(x + F_fwd(x))||_2 in px, whether x + F_fwd(x) lies inside the
    frame) at pixel (i, j) of two float32 (H, W, 2) flows (Numba, inlined into kernels)."""
    h, w = flow_bwd.shape[0], flow_bwd.shape[1]
    fx = flow_fwd[i, j, 0]
    fy = flow_fwd[i, j, 1]
    x = np.float32(j) + fx
    y = np.float32(i) + fy
    inside = 0.0 <= x <= w - 1 and 0.0 <= y <= h - 1
    y0, y1, x0, x1, wy, wx = bilinear_setup(x, y, h, w)
    rx = fx + bilinear_channel(flow_bwd, y0, y1, x0, x1, wy, wx, 0)
    ry = fy + bilinear_channel(flow_bwd, y0, y1, x0, x1, wy, wx, 1)
    return math.sqrt(rx * rx + ry * ry), inside


def fb_residual_reference(flow_fwd: np.ndarray, flow_bwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy statement of :func:`fb_residual_at` over the whole (H, W, 2) flows: (r(x) float64
    (H, W) in px, boolean (H, W) map of x + F_fwd(x) inside the frame)."""
    h, w = flow_fwd.shape[:2]
    x = np.arange(w, dtype=np.float32)[None, :] + flow_fwd[..., 0]
    y = np.arange(h, dtype=np.float32)[:, None] + flow_fwd[..., 1]
    back = sample_bilinear_reference(flow_bwd, x, y)
    residual = np.sqrt(np.sum((flow_fwd + back).astype(np.float64) ** 2, axis=-1))
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return residual, inside
