"""Make the output agree with what W measured: each W pixel's area of it averages to W's value.

An option after the uncrop, not a stage of ``hzsr.yaml`` (its ablation is
``pipelines/ablations/wide_consistency.yaml``). W's sensor integrates the scene over each of its
pixels; an output that is W's view at a finer pixel size should, averaged over the area of
each W pixel, give back that pixel's value. The fusion does not guarantee it: between two real
cameras it moves W's well-resolved structure towards T's version (parallax the flow left,
another ISP's rendering; docs/real_pairs.md), and bicubic upsampling of W is not consistent
either. This node projects the output I onto the set of consistent images (iterative back-
projection, Irani and Peleg 1991; the consistency-enforcing module of Bahat and Michaeli 2020):

    I <- I + U(w - A I),

A the area average over each W pixel inside the view, w W's pixels, U the normalised adjoint
of A (each output pixel takes the overlap-weighted mean of the residuals of the W pixels it
overlaps). With a whole number of output pixels per W pixel, aligned, A U is the identity and
one step is the exact orthogonal projection; otherwise each step shrinks the inconsistency.
What T adds above W's sampling (which A averages away) is kept; what A sees is W's.

The model has no W optics: where W's lens blurs more than its pixels do, consistency keeps
that blur in W's band (measured on the semi-synthetic City100 dev cases, whose T is rendered
from a sharper capture than W: -4 dB; see the README's ablation table).
"""
from __future__ import annotations

import math

import numpy as np

from nodegraph import CompactImage, Image, Out, Param, Scalar, node
from nodegraph.errors import InputError
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.hzsr.uncrop import ZOOM
from nodegraph.nodes.ops.geometry import central_rect
from nodegraph.types import compact_to_float


def pixel_overlaps(start: float, scale: float, count: int, length: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), each (count, K): the output pixels W pixel i overlaps along one axis,
    and the fraction of W pixel i's length each covers (rows sum to 1).

    W pixel i spans output coordinates [start + i scale, start + (i + 1) scale) (pixel edges;
    ``scale`` output px per W px, >= 1), inside [0, ``length``].
    """
    k = math.ceil(scale) + 1
    left = start + scale * np.arange(count, dtype=np.float64)
    first = np.floor(left).astype(np.int64)
    index = first[:, None] + np.arange(k)
    lo = np.maximum(index, left[:, None])
    hi = np.minimum(index + 1, left[:, None] + scale)
    weight = np.clip(hi - lo, 0.0, None) / scale
    return np.clip(index, 0, length - 1), weight.astype(np.float32)


def spread_weights(start: float, scale: float, count: int, length: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), each (length, 2): the (at most two, as ``scale`` >= 1) W pixels each
    output pixel overlaps along one axis, weighted by the overlap and normalised to sum 1
    (0 and 0 for an output pixel outside every W pixel)."""
    pixel = np.arange(length, dtype=np.float64)
    lower = np.floor((pixel - start) / scale).astype(np.int64)
    index = lower[:, None] + np.arange(2)
    left = start + scale * index
    overlap = np.clip(np.minimum(pixel[:, None] + 1, left + scale) - np.maximum(pixel[:, None], left),
                      0.0, None)
    overlap[(index < 0) | (index >= count)] = 0.0
    total = overlap.sum(axis=1, keepdims=True)
    weight = np.divide(overlap, total, out=np.zeros_like(overlap), where=total > 0)
    return np.clip(index, 0, count - 1), weight.astype(np.float32)


@kernel(parallel=True)
def _taps_rows(image, index, weight, out):
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            for c in range(out.shape[2]):
                total = np.float32(0.0)
                for k in range(index.shape[1]):
                    total += weight[i, k] * image[index[i, k], j, c]
                out[i, j, c] = total


@kernel(parallel=True)
def _taps_columns(image, index, weight, out):
    for r in prange(out.shape[0]):
        for i in range(out.shape[1]):
            for c in range(out.shape[2]):
                total = np.float32(0.0)
                for k in range(index.shape[1]):
                    total += weight[i, k] * image[r, index[i, k], c]
                out[r, i, c] = total


def gather_taps(image: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """sum_k weight[:, k] * image[index[:, k]] along ``axis`` (0: rows, 1: columns) of an
    (H, W, C) float32 image (Numba)."""
    shape = list(image.shape)
    shape[axis] = len(index)
    out = np.empty(shape, np.float32)
    kernel = _taps_rows if axis == 0 else _taps_columns
    kernel(np.ascontiguousarray(image, np.float32), index, weight, out)
    return out


def gather_taps_reference(image: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int
                          ) -> np.ndarray:
    """Plain NumPy version of :func:`gather_taps`, for the tests."""
    shape = [1] * image.ndim
    shape[axis] = -1
    return sum(np.take(image, index[:, k], axis=axis) * weight[:, k].reshape(shape)
               for k in range(index.shape[1])).astype(np.float32)


def wide_pixels_in_view(view, image_wh) -> tuple[tuple[int, int, int, int], tuple[float, float, float, float]]:
    """((x0, y0, x1, y1) of the W pixels wholly inside ``view``, their edges in output
    coordinates (left, top, scale x, scale y)) for an output of ``image_wh`` showing ``view``."""
    scale_x = image_wh[0] / (view[2] - view[0])
    scale_y = image_wh[1] / (view[3] - view[1])
    x0, y0 = math.ceil(view[0] - 1e-9), math.ceil(view[1] - 1e-9)
    x1, y1 = math.floor(view[2] + 1e-9), math.floor(view[3] + 1e-9)
    return (x0, y0, x1, y1), ((x0 - view[0]) * scale_x, (y0 - view[1]) * scale_y, scale_x, scale_y)


def enforce_wide_consistency(image: np.ndarray, wide_pixels: np.ndarray, edges, iterations: int
                             ) -> np.ndarray:
    """``image`` (H, W, C) float32 after ``iterations`` steps I <- I + U(w - A I), clipped to
    [0, 1]; ``wide_pixels`` w (h, w, C), ``edges`` (left, top, scale x, scale y): W pixel
    (i, j) spans output columns [left + j sx, left + (j + 1) sx) and rows likewise."""
    h, w = wide_pixels.shape[:2]
    left, top, sx, sy = edges
    rows_in = pixel_overlaps(top, sy, h, image.shape[0])
    cols_in = pixel_overlaps(left, sx, w, image.shape[1])
    rows_out = spread_weights(top, sy, h, image.shape[0])
    cols_out = spread_weights(left, sx, w, image.shape[1])
    out = image.astype(np.float32, copy=True)
    for _ in range(iterations):
        residual = wide_pixels - gather_taps(gather_taps(out, *rows_in, axis=0), *cols_in, axis=1)
        out += gather_taps(gather_taps(residual, *rows_out, axis=0), *cols_out, axis=1)
    return np.clip(out, 0.0, 1.0, out=out)


def _load_kernels() -> None:
    """The two Numba kernels loaded from their cache (the node's warm-up)."""
    enforce_wide_consistency(np.zeros((4, 4, 3), np.float32), np.zeros((2, 2, 3), np.float32),
                             (0.0, 0.0, 2.0, 2.0), 1)


@node("hzsr.wide_consistency", version=1, warm_up=_load_kernels)
def wide_consistency(image: Image, wide: CompactImage, ratio: Scalar, zoom: ZOOM = None, *,
                     iterations: int = Param(2, range=(0, 20),
                                             doc="back-projection steps (1 is exact when the output "
                                                 "has a whole number of pixels per W pixel; 0 = off)"),
                     ) -> Out(image=Image):
    """Output whose average over each W pixel is that W pixel: I <- I + U(w - A I).

    ``image`` hzsr.uncrop's output, W's central 1/zoom view (zoom as the uncrop: default the
    ``ratio``) at any pixel size of at least W's; ``wide`` W. A averages ``image`` over the area
    of each W pixel wholly inside the view, U spreads a residual back over those areas.
    """
    zoom = float(zoom if zoom is not None else ratio)
    if not zoom >= 1.0:
        raise InputError(f"zoom must be >= 1, got {zoom!r}")
    view = central_rect(wide.shape[1], wide.shape[0], zoom)
    (x0, y0, x1, y1), edges = wide_pixels_in_view(view, (image.shape[1], image.shape[0]))
    if iterations == 0 or min(edges[2], edges[3]) < 1.0 or x1 <= x0 or y1 <= y0:
        return image   # no finer than W (or no whole W pixel): nothing to make consistent
    wide_pixels = compact_to_float(wide[y0:y1, x0:x1])
    return enforce_wide_consistency(image, wide_pixels, edges, iterations)
