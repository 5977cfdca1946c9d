"""Backward bilinear warp W(I; F): the sampler behind Ĩ_ref = W(I_ref; F_fwd) and M_occ (SPEC §4.4).

Sampling rule, shared by every HZSR stage that reads an image at a flow-displaced position
(warp, the forward-backward check of M_occ, the block grid of M_flow): the position
(x + dx, y + dy) is clamped to [0, W-1] x [0, H-1] (border replicated), then the four
neighbours are mixed with bilinear weights. Positions are float32, pixel centres on integers.
:func:`bilinear_setup` (Numba) and :func:`sample_bilinear_reference` (NumPy) are that rule;
other modules import them rather than restating it.
"""
from __future__ import annotations

import numba
import numpy as np

from nodegraph import Flow, Image, Out, node


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
def bilinear_channel(image, y0, y1, x0, x1, fy, fx, c):
    """Channel ``c`` of ``image`` (H, W, C) at the position prepared by :func:`bilinear_setup`."""
    top = image[y0, x0, c] + fx * (image[y0, x1, c] - image[y0, x0, c])
    bottom = image[y1, x0, c] + fx * (image[y1, x1, c] - image[y1, x0, c])
    return top + fy * (bottom - top)


@numba.njit(parallel=True, cache=True)
def _warp_kernel(image, flow, out):
    h, w, channels = image.shape
    for i in numba.prange(flow.shape[0]):
        yi = np.float32(i)
        for j in range(flow.shape[1]):
            y0, y1, x0, x1, fy, fx = bilinear_setup(np.float32(j) + flow[i, j, 0],
                                                    yi + flow[i, j, 1], h, w)
            for c in range(channels):
                out[i, j, c] = bilinear_channel(image, y0, y1, x0, x1, fy, fx, c)


def warp_bilinear(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = image(x + flow(x)), bilinear, positions clamped to the border (Numba).

    ``image`` is (H, W, C) or (H, W); ``flow`` is (H, W, 2) float32 with (dx, dy) in pixels.
    Returns float32 with ``image``'s layout.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    if flow.shape[:2] != image.shape[:2] or flow.shape[2:] != (2,):
        raise ValueError(f"flow {flow.shape} does not match image {image.shape}")
    planar = image.ndim == 2
    image3 = image[..., None] if planar else image
    out = np.empty(image3.shape, np.float32)
    _warp_kernel(image3, flow, out)
    return out[..., 0] if planar else out


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


def warp_bilinear_reference(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Plain NumPy version of :func:`warp_bilinear`, for the tests."""
    h, w = image.shape[:2]
    cols = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    rows = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return sample_bilinear_reference(image.astype(np.float32), cols, rows)


@node("hzsr.warp", version=1)
def warp(ref: Image, flow: Flow) -> Out(warped=Image):
    """Backward bilinear warp of I_ref by F_fwd: Ĩ_ref(x) = I_ref(x + F_fwd(x)) (HZSR §3.1).

    Positions falling outside I_ref are clamped to its border; M_occ marks such pixels.
    """
    return warp_bilinear(ref, flow)
