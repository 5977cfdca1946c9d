"""Backward bilinear warp W(I; F): Ĩ_ref = W(I_ref; F_fwd) (SPEC §4.4).

Each output pixel x reads I_ref at x + F_fwd(x) with the sampling rule of
:mod:`nodegraph.nodes.ops.sampling` (clamped position, bilinear weights), the same rule the
forward-backward check of M_occ and the block grid of M_flow use. F_fwd(x) itself is read
from the grid the flow was computed on (``ops.flow_fields.flow_at``).
"""
from __future__ import annotations

import numpy as np

from nodegraph import CompactFlow, Image, Out, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.flow_fields import as_coarse, flow_geometry, flow_in_row, flow_row
from nodegraph.nodes.ops.sampling import (
    bilinear_channel,
    bilinear_setup,
    sample_bilinear_reference,
)
from nodegraph.types import CoarseFlow


@kernel(parallel=True)
def _warp_kernel(image, field, geometry, out):
    h, w, channels = image.shape
    for i in prange(out.shape[0]):
        yi = np.float32(i)
        row = np.empty((field.shape[1], 2), np.float32)
        flow_row(field, geometry, i, row)
        for j in range(out.shape[1]):
            dx, dy = flow_in_row(row, geometry, j)
            y0, y1, x0, x1, fy, fx = bilinear_setup(np.float32(j) + dx, yi + dy, h, w)
            for c in range(channels):
                out[i, j, c] = bilinear_channel(image, y0, y1, x0, x1, fy, fx, c)


def warp_bilinear(image: np.ndarray, flow: np.ndarray | CoarseFlow) -> np.ndarray:
    """out(x) = image(x + flow(x)), bilinear, positions clamped to the border (Numba).

    ``image`` is (H, W, C) or (H, W); ``flow`` is (H, W, 2) float32 with (dx, dy) in pixels,
    or a CoarseFlow of size (H, W) read at full size. Returns float32 with ``image``'s layout.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    flow = as_coarse(flow)
    if flow.shape[:2] != image.shape[:2]:
        raise ValueError(f"flow {flow.shape} does not match image {image.shape}")
    planar = image.ndim == 2
    image3 = image[..., None] if planar else image
    out = np.empty(image3.shape, np.float32)
    _warp_kernel(image3, flow.field, flow_geometry(flow), out)
    return out[..., 0] if planar else out


def warp_bilinear_reference(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Plain NumPy version of :func:`warp_bilinear`, for the tests."""
    h, w = image.shape[:2]
    cols = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    rows = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return sample_bilinear_reference(image.astype(np.float32), cols, rows)


def _load_kernels() -> None:
    """The warp's Numba kernel loaded from its cache (the node's warm-up)."""
    warp_bilinear(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.float32))


@node("hzsr.warp", version=2, warm_up=_load_kernels)
def warp(ref: Image, flow: CompactFlow) -> Out(warped=Image):
    """Backward bilinear warp of I_ref by F_fwd: Ĩ_ref(x) = I_ref(x + F_fwd(x)) (HZSR §3.1).

    Positions falling outside I_ref are clamped to its border; M_occ marks such pixels.
    """
    return warp_bilinear(ref, flow)
