"""Flow fields: their unit of distance, resizing, sampling at full size, and the
forward-backward round trip.

F_fwd maps I_src to I_ref (I_ref(x + F_fwd(x)) ~ I_src(x)); F_bwd the reverse. Arrays are
float32 (H, W, 2) holding (dx, dy) in pixels of their own grid. The flow node hands its
fields on at the grid they were computed on (``nodegraph.types.CoarseFlow``, SPEC §4.3's
"upsample and rescale to full resolution" done where a pixel is read): :func:`flow_at` is
that upsampling at one pixel, equal to ``CoarseFlow.full()`` (``cv2.resize``, bilinear) to
float rounding, so no reader needs the 96 MB full-size field of a 12 MP image.
"""
from __future__ import annotations

import math

import numpy as np

from nodegraph.kernels import kernel, prange
from nodegraph.types import CoarseFlow

from .sampling import bilinear_setup, sample_bilinear_reference

FLOW_UNIT_SIDE = 512  # long side (px) of HZSR's 384x512 flow resolution


def flow_unit(shape: tuple[int, ...]) -> float:
    """Full-resolution px per px of the flow's reference resolution (long side 512 px).

    The masks measure flow distances in these units: flow is estimated at that size and
    upsampled, so its errors grow with the image and a constant in full-resolution pixels
    would mean something else at 12 MP than at 0.1 MP.
    """
    return max(shape[:2]) / FLOW_UNIT_SIDE


def as_coarse(flow: np.ndarray | CoarseFlow) -> CoarseFlow:
    """A flow as a CoarseFlow: a full-size (H, W, 2) array wrapped at its own size (read back
    unchanged), a CoarseFlow as it is; its field float32 and C-contiguous (the kernels')."""
    if not isinstance(flow, CoarseFlow):
        flow = np.asarray(flow)
        if flow.ndim != 3 or flow.shape[2] != 2:
            raise ValueError(f"a flow must be (H, W, 2), got {flow.shape}")
        flow = CoarseFlow(flow, flow.shape[:2])
    field = np.ascontiguousarray(flow.field, dtype=np.float32)
    return flow if field is flow.field else CoarseFlow(field, flow.size)


def flow_geometry(flow: CoarseFlow) -> tuple[np.ndarray, ...]:
    """What :func:`flow_at` needs besides the field: the resize taps of the full grid's rows
    and columns (:func:`resize_taps`) and the vector scales (full px per coarse px along y, x)."""
    (h, w), (fh, fw) = flow.size, flow.field.shape[:2]
    rows, row_weights = resize_taps(h, fh)
    cols, col_weights = resize_taps(w, fw)
    # float32 as NumPy applies a Python float to a float32 array (CoarseFlow.full)
    return rows, row_weights, cols, col_weights, np.array([h / fh, w / fw], np.float32)


def resize_taps(size: int, source_size: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.resize's bilinear taps along one axis (INTER_LINEAR, pixel centres aligned, clamped
    as OpenCV clamps them): (``size``, 3) unsigned (first source index, second, 1 where the
    position was clamped to the edge) of each output index and (``size``,) float32 weights of
    the second. A table, so a kernel reading millions of pixels looks its taps up instead of
    recomputing them."""
    scale = 1.0 / (size / source_size)  # as OpenCV computes it
    position = ((np.arange(size) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.intp)
    weight = position - first.astype(np.float32)
    outside = (first < 0) | (first >= source_size - 1)
    first = np.clip(first, 0, source_size - 1)
    weight[outside] = 0.0
    # unsigned indices spare Numba its negative-index checks (as ops.sampling's)
    taps = np.stack([first, np.minimum(first + 1, source_size - 1), outside], axis=1)
    return taps.astype(np.uintp), weight


@kernel(inline="always")
def flow_at(field, geometry, i, j):
    """(dx, dy) at full-size pixel (i, j) of the field upsampled as ``CoarseFlow.full()``: the
    bilinear mix of the coarse field, vectors rescaled (Numba, inlined into kernels).
    ``geometry`` from :func:`flow_geometry`. Mixed vertically first, as :func:`flow_row` and
    :func:`flow_in_row` do (the same numbers), where ``cv2.resize`` mixes horizontally first:
    equal to float rounding; a full-size field is read back exactly (its weights are 0)."""
    rows, row_weights, cols, col_weights, scales = geometry
    return _mix(field, rows[i, 0], rows[i, 1], row_weights[i], cols[j, 0], cols[j, 1],
                col_weights[j], scales)


@kernel(inline="always")
def _mix(field, y0, y1, fy, x0, x1, fx, scales):
    """The coarse field's bilinear mix of rows y0, y1 (weight fy of y1) and columns x0, x1
    (weight fx of x1), vertically first, vectors rescaled by ``scales`` (y, x)."""
    ay = np.float32(1.0) - fy
    ax = np.float32(1.0) - fx
    left_x = field[y0, x0, 0] * ay + field[y1, x0, 0] * fy
    right_x = field[y0, x1, 0] * ay + field[y1, x1, 0] * fy
    left_y = field[y0, x0, 1] * ay + field[y1, x0, 1] * fy
    right_y = field[y0, x1, 1] * ay + field[y1, x1, 1] * fy
    return (left_x * ax + right_x * fx) * scales[1], (left_y * ax + right_y * fx) * scales[0]


@kernel(inline="always")
def flow_row(field, geometry, i, row):
    """The coarse field mixed vertically for full-size row ``i``, into ``row`` (w, 2) float32:
    what :func:`flow_in_row` reads the row's pixels from. A kernel that reads every pixel of
    a row mixes its two coarse rows once, not once per pixel."""
    rows, row_weights = geometry[0], geometry[1]
    y0, y1, fy = rows[i, 0], rows[i, 1], row_weights[i]
    ay = np.float32(1.0) - fy
    for c in range(field.shape[1]):
        row[c, 0] = field[y0, c, 0] * ay + field[y1, c, 0] * fy
        row[c, 1] = field[y0, c, 1] * ay + field[y1, c, 1] * fy


@kernel(inline="always")
def flow_in_row(row, geometry, j):
    """(dx, dy) at column ``j`` of the full-size row prepared by :func:`flow_row` (equal to
    :func:`flow_at` at that pixel)."""
    cols, col_weights, scales = geometry[2], geometry[3], geometry[4]
    x0, x1, fx = cols[j, 0], cols[j, 1], col_weights[j]
    ax = np.float32(1.0) - fx
    return ((row[x0, 0] * ax + row[x1, 0] * fx) * scales[1],
            (row[x0, 1] * ax + row[x1, 1] * fx) * scales[0])


@kernel(parallel=True)
def _sample_grid_kernel(field, geometry, top, left, step, out):
    for a in prange(out.shape[0]):
        row = np.empty((field.shape[1], 2), np.float32)
        flow_row(field, geometry, top + a * step, row)
        for b in range(out.shape[1]):
            out[a, b, 0], out[a, b, 1] = flow_in_row(row, geometry, left + b * step)


def sample_flow(flow: CoarseFlow, rows: tuple[int, int], cols: tuple[int, int], step: int = 1) -> np.ndarray:
    """``flow.full()[y0:y1:step, x0:x1:step]`` for ``rows`` (y0, y1), ``cols`` (x0, x1),
    computed from the coarse field (only those pixels are made); float32."""
    flow = as_coarse(flow)
    (y0, y1), (x0, x1) = rows, cols
    out = np.empty((len(range(y0, y1, step)), len(range(x0, x1, step)), 2), np.float32)
    _sample_grid_kernel(flow.field, flow_geometry(flow), y0, x0, step, out)
    return out


@kernel(inline="always")
def fb_residual_at(fx, fy, bwd, bwd_geometry, i, j):
    """(r(x) = ||F_fwd(x) + F_bwd(x + F_fwd(x))||_2 in px, whether x + F_fwd(x) lies inside the
    frame) at full-size pixel (i, j), F_fwd(x) = (fx, fy) given (from :func:`flow_in_row`),
    F_bwd a coarse field (Numba, inlined into kernels). F_bwd is read at x + F_fwd(x) from
    its four full-size neighbours (:func:`flow_at`) with the warp's sampling rule, as the
    upsampled field would be read."""
    h, w = bwd_geometry[1].shape[0], bwd_geometry[3].shape[0]
    x = np.float32(j) + fx
    y = np.float32(i) + fy
    inside = 0.0 <= x <= w - 1 and 0.0 <= y <= h - 1
    y0, y1, x0, x1, wy, wx = bilinear_setup(x, y, h, w)
    rows, row_weights, cols, col_weights, scales = bwd_geometry
    if (rows[y0, 0] == rows[y1, 0] and rows[y0, 2] == rows[y1, 2]
            and cols[x0, 0] == cols[x1, 0] and cols[x0, 2] == cols[x1, 2]):
        # The four neighbours share their coarse taps, and the upsampled field is bilinear
        # between them (its weights are affine there): mixing the four reads it at the point.
        # Three pixels in four at 12 MP; a full-size field never takes this path.
        row_weight = row_weights[y0] + wy * (row_weights[y1] - row_weights[y0])
        col_weight = col_weights[x0] + wx * (col_weights[x1] - col_weights[x0])
        back_x, back_y = _mix(bwd, rows[y0, 0], rows[y0, 1], row_weight, cols[x0, 0], cols[x0, 1],
                              col_weight, scales)
    else:
        x00, y00 = flow_at(bwd, bwd_geometry, y0, x0)
        x01, y01 = flow_at(bwd, bwd_geometry, y0, x1)
        x10, y10 = flow_at(bwd, bwd_geometry, y1, x0)
        x11, y11 = flow_at(bwd, bwd_geometry, y1, x1)
        # bilinear_channel's order of operations: a wrapped full-size flow reads back exactly
        top, bottom = x00 + wx * (x01 - x00), x10 + wx * (x11 - x10)
        back_x = top + wy * (bottom - top)
        top, bottom = y00 + wx * (y01 - y00), y10 + wx * (y11 - y10)
        back_y = top + wy * (bottom - top)
    rx = fx + back_x
    ry = fy + back_y
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
