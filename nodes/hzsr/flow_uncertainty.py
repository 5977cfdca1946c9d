"""Flow uncertainty mask M_flow = min(S, s_max) / s_max (HZSR §3.3, SPEC §4.6).

S(x) is the flow's uncertainty in pixels. Two modes, chosen by whether ``flow_std`` is linked:

* **given**: S = flow_std = sqrt(exp(logVar_x) + exp(logVar_y)), from a flow backend that
  predicts log-variances (the paper's enhanced PWC-Net).
* **estimated** (no ``flow_std``, e.g. DIS or Farneback): S is the root-sum-square of three
  independent error sources, all in pixels::

      S^2 = <r_fb^2> + sigma_F^2 + sigma_n^2 tr(G^-1) / n

  - <r_fb^2>: mean square of the forward-backward round-trip residual
    ||F_fwd(x) + F_bwd(x + F_fwd(x))|| (the M_occ residual, imported, not re-derived) over the
    window, sampled every second pixel in x and y. M_occ keeps the per-pixel residual; here
    the window mean suffices, as the flow has no structure finer than the window.
  - sigma_F: spread (standard deviation) of F_fwd over the 3x3 blocks around the pixel's
    block: near zero on smooth flow, about half the jump at motion boundaries, where the
    flow is unreliable.
  - sigma_n^2 tr(G^-1) / n: the covariance trace of a displacement fitted by linearised
    brightness constancy (Y_src(x) = Ỹ_ref(x) + g . delta) over the n pixels of a window at
    image noise sigma_n, i.e. the Cramer-Rao bound of Lucas-Kanade: small on texture, large
    on straight edges (aperture problem: one small eigenvalue) and texture-less regions.
    g = (grad Y_src + grad Ỹ_ref) / 2 is the symmetric (ESM) linearisation: a displacement is
    pinned down only by structure the two images share at the flow's scale.
    G = <g g^T> + g0^2 I over the window; g0 (a gradient floor) keeps it invertible, so a flat
    region gets sigma_n sqrt(2) / (g0 sqrt(n)) px (0.7 px with the defaults).

  The photometric residual Y_src - Ỹ_ref itself is left out on purpose: at the working grid it
  is dominated by T's detail that W never resolved, and alignment errors are what M_reject
  measures, at W's optical resolution; counting them here too would subtract them twice from
  M_blend.
  All terms are computed on non-overlapping ``window`` x ``window`` blocks (the flow itself
  comes from a ~384x512 grid, so it has no finer structure) and S^2 is read back at each pixel
  bilinearly, with the warp's sampler, at block centres.
"""
from __future__ import annotations

import math

import numpy as np

from nodegraph import CompactFlow, CompactMask, Gray, Image, Out, Param, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.flow_fields import (
    as_coarse,
    fb_residual_at,
    fb_residual_reference,
    flow_geometry,
    flow_in_row,
    flow_row,
    flow_unit,
)
from nodegraph.nodes.ops.luminance import luminance
from nodegraph.nodes.ops.sampling import (
    bilinear_channel,
    bilinear_setup,
    sample_bilinear_reference,
)
from nodegraph.types import CoarseFlow

# Per-block sums, in this order.
_N, _GXX, _GYY, _GXY, _FX, _FY, _FF, _NR, _RR = range(9)


@kernel(inline="always")
def _symmetric_gradient(y_src, y_ref, i, j, h, w):
    """(grad Y_src + grad Ỹ_ref) / 2 at (i, j): central differences, border replicated."""
    left, right = max(j - 1, 0), min(j + 1, w - 1)
    up, down = max(i - 1, 0), min(i + 1, h - 1)
    gx = (y_src[i, right] - y_src[i, left]) + (y_ref[i, right] - y_ref[i, left])
    gy = (y_src[down, j] - y_src[up, j]) + (y_ref[down, j] - y_ref[up, j])
    return np.float32(0.25) * gx, np.float32(0.25) * gy


@kernel(parallel=True)
def _block_sums_kernel(y_src, y_ref, fwd, fwd_geometry, bwd, bwd_geometry, block, sums):
    h, w = y_src.shape
    for bi in prange(sums.shape[0]):
        i_end = min(bi * block + block, h)
        rows = np.empty((i_end - bi * block, fwd.shape[1], 2), np.float32)  # the block's rows of F_fwd
        for i in range(bi * block, i_end):
            flow_row(fwd, fwd_geometry, i, rows[i - bi * block])
        for bj in range(sums.shape[1]):
            # scalar float64 accumulators: the flow moments would cancel in float32
            gxx = gyy = gxy = fxs = fys = ffs = nr = rr = 0.0
            j_end = min(bj * block + block, w)
            for i in range(bi * block, i_end):
                for j in range(bj * block, j_end):
                    gx, gy = _symmetric_gradient(y_src, y_ref, i, j, h, w)
                    fx, fy = flow_in_row(rows[i - bi * block], fwd_geometry, j)
                    gxx += gx * gx
                    gyy += gy * gy
                    gxy += gx * gy
                    fxs += fx
                    fys += fy
                    ffs += fx * fx + fy * fy
                    if (i - bi * block) % 2 == 0 and (j - bj * block) % 2 == 0:
                        r, _ = fb_residual_at(fx, fy, bwd, bwd_geometry, i, j)
                        nr += 1.0
                        rr += r * r
            out = sums[bi, bj]
            out[_N] = (i_end - bi * block) * (j_end - bj * block)
            out[_GXX], out[_GYY], out[_GXY] = gxx, gyy, gxy
            out[_FX], out[_FY], out[_FF], out[_NR], out[_RR] = fxs, fys, ffs, nr, rr


@kernel(parallel=True)
def _block_variance_kernel(sums, sigma_n, g0, out):
    hb, wb = sums.shape[0], sums.shape[1]
    for bi in prange(hb):
        for bj in range(wb):
            n = sums[bi, bj, _N]
            a = sums[bi, bj, _GXX] / n + g0 * g0
            c = sums[bi, bj, _GYY] / n + g0 * g0
            b = sums[bi, bj, _GXY] / n
            aperture = sigma_n * sigma_n * (a + c) / ((a * c - b * b) * n)  # sigma_n^2 tr(G^-1)/n
            # flow spread over the 3x3 blocks around this one, so that a motion boundary
            # lying on a block edge is still inside the window
            nf = mfx = mfy = sff = 0.0
            for ni in range(max(bi - 1, 0), min(bi + 2, hb)):
                for nj in range(max(bj - 1, 0), min(bj + 2, wb)):
                    nf += sums[ni, nj, _N]
                    mfx += sums[ni, nj, _FX]
                    mfy += sums[ni, nj, _FY]
                    sff += sums[ni, nj, _FF]
            spread = max((sff - (mfx * mfx + mfy * mfy) / nf) / nf, 0.0)
            out[bi, bj, 0] = sums[bi, bj, _RR] / sums[bi, bj, _NR] + aperture + spread


@kernel(parallel=True)
def _upsample_kernel(block_var, block, s_max, out):
    hb, wb = block_var.shape[0], block_var.shape[1]
    inv = np.float32(1.0 / block)
    for i in prange(out.shape[0]):
        v = (np.float32(i) + np.float32(0.5)) * inv - np.float32(0.5)
        for j in range(out.shape[1]):
            u = (np.float32(j) + np.float32(0.5)) * inv - np.float32(0.5)
            y0, y1, x0, x1, fy, fx = bilinear_setup(u, v, hb, wb)
            s = math.sqrt(bilinear_channel(block_var, y0, y1, x0, x1, fy, fx, 0))
            out[i, j] = min(s, s_max) / s_max


def estimated_flow_mask(flow_fwd: np.ndarray | CoarseFlow, flow_bwd: np.ndarray | CoarseFlow,
                        y_src: np.ndarray, y_ref_warped: np.ndarray, s_max: float, window: int,
                        sigma_n: float, g0: float) -> np.ndarray:
    """M_flow with S estimated (module docstring), float32 (H, W) in [0, 1] (Numba); flows
    full-size (H, W, 2) or coarse (read at full size, ``ops.flow_fields.flow_at``)."""
    y_src, y_ref_warped = (np.ascontiguousarray(a, dtype=np.float32) for a in (y_src, y_ref_warped))
    fwd, bwd = as_coarse(flow_fwd), as_coarse(flow_bwd)
    h, w = y_src.shape
    if fwd.shape[:2] != (h, w) or bwd.shape[:2] != (h, w):
        raise ValueError(f"flows {fwd.shape}, {bwd.shape} do not match the images {y_src.shape}")
    sums = np.empty((-(-h // window), -(-w // window), 9), np.float64)
    _block_sums_kernel(y_src, y_ref_warped, fwd.field, flow_geometry(fwd), bwd.field, flow_geometry(bwd),
                       window, sums)
    block_var = np.empty(sums.shape[:2] + (1,), np.float32)
    _block_variance_kernel(sums, sigma_n, g0, block_var)
    out = np.empty((h, w), np.float32)
    _upsample_kernel(block_var, window, np.float32(s_max), out)
    return out


def estimated_flow_mask_reference(flow_fwd, flow_bwd, y_src, y_ref_warped, s_max, window,
                                  sigma_n, g0):
    """Plain NumPy version of :func:`estimated_flow_mask`, for the tests."""
    h, w = y_src.shape
    pad_src = np.pad(y_src.astype(np.float64), 1, mode="edge")
    pad_ref = np.pad(y_ref_warped.astype(np.float64), 1, mode="edge")
    gx = 0.25 * (pad_src[1:-1, 2:] - pad_src[1:-1, :-2] + pad_ref[1:-1, 2:] - pad_ref[1:-1, :-2])
    gy = 0.25 * (pad_src[2:, 1:-1] - pad_src[:-2, 1:-1] + pad_ref[2:, 1:-1] - pad_ref[:-2, 1:-1])
    f = flow_fwd.astype(np.float64)
    rows, cols = np.arange(0, h, window), np.arange(0, w, window)

    def block_sum(a):
        return np.add.reduceat(np.add.reduceat(a, rows, axis=0), cols, axis=1)

    n = block_sum(np.ones((h, w)))
    structure = np.stack([np.stack([block_sum(gx * gx), block_sum(gx * gy)], -1),
                          np.stack([block_sum(gx * gy), block_sum(gy * gy)], -1)], -2)
    structure = structure / n[..., None, None] + g0 ** 2 * np.eye(2)
    aperture = sigma_n ** 2 * np.trace(np.linalg.inv(structure), axis1=-2, axis2=-1) / n

    def neighbourhood_sum(a):  # over the 3x3 blocks around each block
        padded = np.pad(block_sum(a), 1)
        return sum(padded[di:di + n.shape[0], dj:dj + n.shape[1]]
                   for di in range(3) for dj in range(3))

    nf = neighbourhood_sum(np.ones((h, w)))
    spread = (neighbourhood_sum(f[..., 0] ** 2 + f[..., 1] ** 2) / nf
              - (neighbourhood_sum(f[..., 0]) / nf) ** 2 - (neighbourhood_sum(f[..., 1]) / nf) ** 2)
    residual, _ = fb_residual_reference(flow_fwd, flow_bwd)
    sampled = (((np.arange(h) % window) % 2 == 0)[:, None]
               & ((np.arange(w) % window) % 2 == 0)[None, :]).astype(np.float64)
    mean_r2 = block_sum(residual ** 2 * sampled) / block_sum(sampled)
    block_var = (mean_r2 + aperture + np.maximum(spread, 0)).astype(np.float32)
    v = (np.arange(h, dtype=np.float32) + 0.5) / window - 0.5
    u = (np.arange(w, dtype=np.float32) + 0.5) / window - 0.5
    window_var = sample_bilinear_reference(block_var, *np.meshgrid(u, v))
    s = np.sqrt(window_var)
    return (np.minimum(s, s_max) / s_max).astype(np.float32)


def _load_kernels() -> None:
    """M_flow's Numba kernels loaded from their cache (the node's warm-up)."""
    flow, plane = np.zeros((8, 8, 2), np.float32), np.zeros((8, 8), np.float32)
    estimated_flow_mask(flow, flow, plane, plane, 25.0, 8, 0.01, 0.0025)


@node("hzsr.flow_uncertainty", version=5, warm_up=_load_kernels)
def flow_uncertainty(flow_fwd: CompactFlow, flow_bwd: CompactFlow, src: Image, ref_warped: Image,
                     flow_std: Gray = None, *,
                     s_max: float = Param(25.0, range=(0.1, 100.0), unit="flow px",
                                          doc="uncertainty S at which M_flow saturates to 1 "
                                              "(measured, docs/tuning.md)"),
                     window: int = Param(8, range=(2, 64), unit="px",
                                         doc="block size of the window terms of the estimated S "
                                             "(~ the flow's own grid step at 12 MP: 3000/384)"),
                     sigma_n: float = Param(0.01, range=(0.0, 0.2), unit="intensity (0-1)",
                                            doc="image noise std for the aperture term of the "
                                                "estimated S"),
                     g0: float = Param(0.0025, range=(1e-4, 1.0), unit="intensity/px",
                                       doc="gradient floor of the structure tensor (estimated S)")
                     ) -> Out(M_flow=CompactMask):
    """Flow uncertainty M_flow = min(S, s_max) / s_max (HZSR §3.3).

    S = flow_std when it is linked (the backend's sqrt(exp(logVar_x) + exp(logVar_y))).
    Otherwise S is ESTIMATED in px as sqrt(<r_fb^2> + sigma_F^2 + sigma_n^2 tr(G^-1) / n):
    forward-backward residual, flow spread (motion boundaries) and the Lucas-Kanade bound of
    brightness constancy on Y_src and Ỹ_ref (edges, texture-less regions); see the module
    docstring for the derivation and for why the photometric residual is left to M_reject.
    """
    s_max_px = s_max * flow_unit(flow_fwd.shape)  # S is in full-resolution px
    if flow_std is not None:
        return np.minimum(np.maximum(flow_std, 0.0), s_max_px) / np.float32(s_max_px)
    return estimated_flow_mask(flow_fwd, flow_bwd, luminance(src), luminance(ref_warped),
                               s_max_px, window, sigma_n, g0)
