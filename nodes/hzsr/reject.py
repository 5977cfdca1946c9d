"""Alignment rejection mask M_reject (HZSR §3.3, SPEC §4.8).

    P_delta = (P_src - mu_src) - (P_ref - mu_ref)
    M_reject(x) = 1 - exp(-||P_delta(x)||^2 / (sigma_src^2(x) + eps0))

P_src and P_ref are the local patches around x of Y_src and Ỹ_ref brought down to W's
optical resolution (INTER_AREA by factor = src width / crop width, so T's extra detail, which
W never saw, does not count as a mismatch). ||P_delta||^2 and sigma_src^2 are patch MEANS
(variance of the difference, variance of Y_src), not sums, so eps0 and the mask do not
depend on the patch size. Patches are read with the border replicated. Mean removal makes the
test blind to the brightness offsets that colour matching leaves; a patch is rejected when its
structure differs from W's by more than W's own local contrast (+ eps0, which keeps flat,
noise-only patches from being rejected). The low-resolution map is resized back bilinearly.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph import CompactMask, Image, Out, Param, Rect, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.luminance import luminance

BLOCK_ROWS = 256  # rows of M_reject computed at a time (reject_mask)


@kernel(parallel=True)
def _row_sums_kernel(y_src, y_ref, radius, sums):
    # horizontal patch sums of s, s^2, d, d^2 (d = s - r), border replicated; float64 so
    # that E[x^2] - E[x]^2 does not cancel
    h, w = y_src.shape
    for i in prange(h):
        for j in range(w):
            ss = ss2 = sd = sd2 = 0.0
            for dj in range(-radius, radius + 1):
                c = min(max(j + dj, 0), w - 1)
                s = np.float64(y_src[i, c])
                d = s - y_ref[i, c]
                ss += s
                ss2 += s * s
                sd += d
                sd2 += d * d
            sums[0, i, j] = ss
            sums[1, i, j] = ss2
            sums[2, i, j] = sd
            sums[3, i, j] = sd2


@kernel(parallel=True)
def _reject_kernel(sums, radius, eps0, out):
    h, w = out.shape
    inv_n = 1.0 / (2 * radius + 1) ** 2
    for i in prange(h):
        acc = np.zeros((4, w))
        for di in range(-radius, radius + 1):
            acc += sums[:, min(max(i + di, 0), h - 1), :]
        for j in range(w):
            mean_s = acc[0, j] * inv_n
            mean_d = acc[2, j] * inv_n
            var_src = max(acc[1, j] * inv_n - mean_s * mean_s, 0.0)
            delta2 = max(acc[3, j] * inv_n - mean_d * mean_d, 0.0)
            out[i, j] = 1.0 - math.exp(-delta2 / (var_src + eps0))


def reject_mask(y_src: np.ndarray, y_ref: np.ndarray, patch: int, eps0: float) -> np.ndarray:
    """M_reject of two luminance images on the same grid (Numba); patch side 2*(patch//2)+1 px.

    In blocks of BLOCK_ROWS rows, each with the patch radius of rows above and below: the
    float64 patch sums of all rows at once were 32 bytes a pixel (96 MB at W's resolution
    of a 12 MP T). A block's own rows see only real rows, so the result is the same."""
    y_src = np.ascontiguousarray(y_src, dtype=np.float32)
    y_ref = np.ascontiguousarray(y_ref, dtype=np.float32)
    radius, (h, w) = patch // 2, y_src.shape
    out = np.empty((h, w), np.float32)
    for top in range(0, h, BLOCK_ROWS):
        bottom = min(h, top + BLOCK_ROWS)
        first, last = max(0, top - radius), min(h, bottom + radius)
        sums = np.empty((4, last - first, w), np.float64)
        _row_sums_kernel(y_src[first:last], y_ref[first:last], radius, sums)
        block = np.empty((last - first, w), np.float32)
        _reject_kernel(sums, radius, float(eps0), block)
        out[top:bottom] = block[top - first:bottom - first]
    return out


def reject_mask_reference(y_src, y_ref, patch, eps0):
    """Plain NumPy version of :func:`reject_mask` (explicit patches, two-pass), for the tests."""
    radius = patch // 2
    size = 2 * radius + 1
    windows = np.lib.stride_tricks.sliding_window_view
    p_src = windows(np.pad(y_src.astype(np.float64), radius, mode="edge"), (size, size))
    p_ref = windows(np.pad(y_ref.astype(np.float64), radius, mode="edge"), (size, size))
    centred_src = p_src - p_src.mean(axis=(-2, -1), keepdims=True)
    p_delta = centred_src - (p_ref - p_ref.mean(axis=(-2, -1), keepdims=True))
    delta2 = np.mean(p_delta ** 2, axis=(-2, -1))
    var_src = np.mean(centred_src ** 2, axis=(-2, -1))
    return (1.0 - np.exp(-delta2 / (var_src + eps0))).astype(np.float32)


def optical_size(shape: tuple[int, int], crop) -> tuple[int, int] | None:
    """(width, height) of the working grid at W's optical resolution, None when not smaller."""
    h, w = shape
    factor = w / (crop[2] - crop[0])
    if factor <= 1.0:
        return None
    return max(1, round(w / factor)), max(1, round(h / factor))


def _load_kernels() -> None:
    """M_reject's Numba kernels loaded from their cache (the node's warm-up)."""
    plane = np.zeros((8, 8), np.float32)
    reject_mask(plane, plane, 3, 0.01)


@node("hzsr.reject", version=2, warm_up=_load_kernels)
def reject(src: Image, ref_warped: Image, crop: Rect, *,
           patch: int = Param(7, range=(1, 31), unit="px at W's resolution",
                              doc="side of the local patches (even sizes use the next odd); "
                                  "measured, docs/tuning.md"),
           eps0: float = Param(0.05, range=(1e-6, 1.0), unit="intensity^2 (0-1 scale)",
                               doc="eps0: contrast floor added to sigma_src^2; 0.05 ~ (0.22)^2 "
                                   "keeps low-contrast patches, where a T/W mismatch is "
                                   "invisible, from being rejected (measured, docs/tuning.md)")
           ) -> Out(M_reject=CompactMask):
    """Alignment rejection M_reject = 1 - exp(-||P_delta||^2 / (sigma_src^2 + eps0)) (HZSR §3.3).

    Computed on Y_src and Ỹ_ref resized (INTER_AREA) to W's optical resolution, factor
    src width / crop width, then resized back to the working grid (bilinear).
    """
    h, w = src.shape[:2]
    low = optical_size((h, w), crop)
    if low is None:
        return reject_mask(luminance(src), luminance(ref_warped), patch, eps0)
    # area resampling and luminance are both linear, so resizing RGB first gives the same
    # Y at a ninth of the luminance cost (at 3x)
    y_src = luminance(cv2.resize(src, low, interpolation=cv2.INTER_AREA))
    y_ref = luminance(cv2.resize(ref_warped, low, interpolation=cv2.INTER_AREA))
    mask = cv2.resize(reject_mask(y_src, y_ref, patch, eps0), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0, out=mask)
