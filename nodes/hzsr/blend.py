"""Adaptive blending of I_fusion into I_src (HZSR §3.3 "Final blending", SPEC §4.10).

    M_blend_raw = max(1 - M_occ - M_defocus - M_flow - M_reject, 0)  (unlinked masks left out)
    M_blend     = blur_sigma(erode_grow(M_blend_raw)) * feather(coverage) * [overlap > 0]
    image       = M_blend * I_fusion + (1 - M_blend) * I_src

Two nodes: ``hzsr.blend_raw_weight`` sums the masks before the fusion runs (so the fusion can
skip tiles that the blend will not use, and the four full-size masks are freed early), and
``hzsr.blend`` smooths, feathers and blends. The smoothing never spreads weight further than
its Gaussian's support, 4 smooth_sigma <= 200 px: where M_blend_raw is 0 within that distance,
M_blend is exactly 0 (hzsr.fusion_unet relies on it, with a 256 px margin).

Smoothing: a min filter (erosion) of radius ``grow`` px first widens every rejected region,
then a Gaussian of ``smooth_sigma`` px softens it; blurring alone would leak fused pixels
into the rim of a rejected region, which is where the artifacts sit. ``grow`` = 2 sigma keeps
the leak there at 2.3 % (Gaussian tail beyond 2 sigma). The erosion takes the worst value of
each neighbourhood, so it also lowers M_blend wherever the masks are noisy: keep it small.

Feathering: M_blend ramps linearly from 0 to 1 over ``feather`` x (short side) px inside T's
field of view, measured from the nearest pixel that T's coverage does not reach, and is
exactly 0 where coverage is 0. The border of the working grid is not an edge of T's field of
view: when it lies inside the output (zoom below the ratio), hzsr.uncrop fades T's detail out
there itself, and at zoom >= ratio it is the edge of the picture, where no seam can show.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph import CompactMask, Image, Local, Mask, Out, Param, Scalar, frame_of, node, output_rows
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.ramps import coverage_ramp, ramp_reach
from nodegraph.types import compact_mask_to_float


@kernel(parallel=True)
def _mask_sum_kernel(masks, out):
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            total = np.float32(0.0)
            for k in range(len(masks)):
                total += masks[k][i, j]
            out[i, j] = max(np.float32(1.0) - total, np.float32(0.0))


def raw_blend_weight(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """max(1 - sum(masks), 0) over the linked masks (Numba), float32 (H, W)."""
    out = np.empty(shape, np.float32)
    if not masks:
        out.fill(1.0)
        return out
    _mask_sum_kernel(tuple(np.ascontiguousarray(m, dtype=np.float32) for m in masks), out)
    return out


def raw_blend_weight_reference(masks, shape):
    """Plain NumPy version of :func:`raw_blend_weight`, for the tests."""
    return np.maximum(1.0 - sum(masks, np.zeros(shape, np.float32)), 0.0).astype(np.float32)


@kernel(parallel=True)
def _alpha_blend_kernel(src, fused, weight, out):
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            a = weight[i, j]
            for c in range(out.shape[2]):
                # src + a * (fused - src): exactly src where a == 0
                out[i, j, c] = src[i, j, c] + a * (fused[i, j, c] - src[i, j, c])


def alpha_blend(src: np.ndarray, fused: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """M_blend * I_fusion + (1 - M_blend) * I_src (Numba), float32 (H, W, 3)."""
    src, fused, weight = (np.ascontiguousarray(a, dtype=np.float32) for a in (src, fused, weight))
    out = np.empty_like(src)
    _alpha_blend_kernel(src, fused, weight, out)
    return out


def alpha_blend_reference(src, fused, weight):
    """Plain NumPy version of :func:`alpha_blend`, for the tests."""
    return (src + weight[..., None] * (fused - src)).astype(np.float32)


def smooth_weight(weight: np.ndarray, grow: int, sigma: float) -> np.ndarray:
    """Erode ``weight`` with a (2 grow + 1)^2 min filter, then Gaussian-blur it by ``sigma`` px."""
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * grow + 1, 2 * grow + 1))
        weight = cv2.erode(weight, kernel, borderType=cv2.BORDER_REPLICATE)
    if sigma > 0:
        weight = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return weight


def feather_weight(coverage: np.ndarray | None, shape: tuple[int, int], feather_px: float,
                   rows: tuple[int, int] | None = None) -> np.ndarray:
    """Linear ramp 0 -> 1 over ~``feather_px`` px from the edge of T's coverage (1 without one),
    (h, w) float32 of ``shape``: the rows [top, bottom) of the whole ``coverage`` map (as
    stored: 8 bits, or float) that ``rows`` names (default all of them)."""
    if coverage is None:
        return np.ones(shape, np.float32)
    top, bottom = rows or (0, coverage.shape[0])
    reach = ramp_reach(feather_px)
    first, last = max(0, top - reach), min(coverage.shape[0], bottom + reach)
    return coverage_ramp(compact_mask_to_float(coverage[first:last]), feather_px)[top - first:bottom - first]


def finish_weight(raw: np.ndarray, coverage: np.ndarray | None, grow: int, smooth_sigma: float,
                  feather: float, frame: tuple[int, int] | None = None,
                  rows: tuple[int, int] | None = None) -> np.ndarray:
    """M_blend from M_blend_raw: smoothed, then feathered (``feather``: fraction of the short
    side of ``frame``, the whole image's (H, W) when ``raw`` is a strip of it: its ``rows`` of
    the whole ``coverage``)."""
    weight = smooth_weight(np.asarray(raw, np.float32), grow, smooth_sigma)
    weight *= feather_weight(coverage, raw.shape, feather * min(frame or raw.shape), rows)
    return weight


def blend_halo(params: dict, frame: tuple[int, int]) -> int:
    """Rows of context that make hzsr.blend on a strip exact: the erosion plus the Gaussian's
    support (OpenCV's float kernel reaches round(4 sigma) px). The feather ramp reads the
    whole coverage map itself, which the strips get whole: its erosion and box mean reach
    2 x its radius (45 rows each side at 12 MP), which as a halo made every strip compute
    ~1.7x its rows."""
    return params["grow"] + math.ceil(4 * params["smooth_sigma"]) + 1


def blend_weight(shape: tuple[int, int], masks: list[np.ndarray], coverage: np.ndarray | None,
                 grow: int, smooth_sigma: float, feather: float) -> np.ndarray:
    """M_blend of the two nodes (``feather`` as a fraction of the short side) from the linked masks."""
    return finish_weight(raw_blend_weight(masks, shape), coverage, grow, smooth_sigma, feather)


def _load_kernels() -> None:
    """The mask sum (over the four masks of hzsr.yaml) and the blend's Numba kernels loaded
    from their cache (the two nodes' warm-up)."""
    plane, image = np.zeros((8, 8), np.float32), np.zeros((8, 8, 3), np.float32)
    raw_blend_weight([plane] * 4, plane.shape)
    alpha_blend(image, image, plane)


# Bypassed: zeros (no pixel trusted, as when the blend is bypassed); the default rule would
# pass M_occ on as a weight, the opposite of its meaning.
@node("hzsr.blend_raw_weight", version=1, bypass={"M_blend_raw": None}, local=Local(),
      warm_up=_load_kernels)
def blend_raw_weight(src: Image, M_occ: Mask = None, M_defocus: Mask = None,
                     M_flow: Mask = None, M_reject: Mask = None) -> Out(M_blend_raw=CompactMask):
    """M_blend_raw = max(1 - M_occ - M_defocus - M_flow - M_reject, 0), float32 (H, W) of src.

    Unlinked masks are left out of the sum (none linked: 1 everywhere). hzsr.blend smooths and
    feathers it into M_blend; computed before the fusion so that it can skip unused tiles.
    """
    masks = [m for m in (M_occ, M_defocus, M_flow, M_reject) if m is not None]
    return raw_blend_weight(masks, src.shape[:2])


# Bypassed: I_src unchanged and M_blend zeros (nothing of the fusion used).
# Local: M_blend at a pixel reads M_blend_raw within blend_halo of it and the coverage map
# (whole, as stored) within the feather's reach; the blended image reads I_fusion at that
# pixel alone, so it may be written over it (at 12 MP one 137 MB image fewer at the run's
# peak).
@node("hzsr.blend", version=4, bypass={"image": "src", "M_blend": None},
      local=Local(halo=blend_halo, whole=("coverage",), in_place={"image": "fused"}),
      warm_up=_load_kernels)
def blend(src: Image, fused: Image, M_blend_raw: Mask = None, coverage: CompactMask = None,
          overlap: Scalar = None, *,
          grow: int = Param(1, range=(0, 64), unit="px",
                            doc="radius of the min filter that widens rejected regions before "
                                "smoothing (~2 smooth_sigma)"),
          smooth_sigma: float = Param(1.0, range=(0.0, 50.0), unit="px",
                                      doc="Gaussian smoothing of M_blend (hides mask edges)"),
          feather: float = Param(0.03, range=(0.0, 0.5), unit="fraction of the short side",
                                 doc="width of the 0 -> 1 ramp at the edge of T's coverage "
                                     "(0 = hard edge)"),
          ) -> Out(image=Image, M_blend=CompactMask):
    """Adaptive blending: M_blend = M_blend_raw (hzsr.blend_raw_weight: max(1 - M_occ - M_defocus
    - M_flow - M_reject, 0)) smoothed, feathered at the edge of T's coverage;
    image = M_blend * I_fusion + (1 - M_blend) * I_src.

    Without M_blend_raw the raw weight is 1 everywhere. overlap == 0 (T could not be matched
    to W) gives M_blend = 0 and I_src unchanged.
    """
    shape = src.shape[:2]
    if overlap is not None and overlap <= 0:
        return {"image": src.copy(), "M_blend": np.zeros(shape, np.float32)}
    raw = np.ones(shape, np.float32) if M_blend_raw is None else M_blend_raw
    weight = finish_weight(raw, coverage, grow, smooth_sigma, feather, frame_of(src), output_rows())
    return {"image": alpha_blend(src, fused, weight), "M_blend": weight}
