"""Uncrop: put the blended T region back into W's zoomed view (SPEC §4 step 11).

HZSR's I_final = uncrop(M_blend * I_fusion + (1 - M_blend) * I_src, W). The output is W's
central 1/zoom view at W's pixel size, for any zoom >= 1: its base is bicubic upsampling of
that W region, and the detail T added on the working grid, (blended - I_src), is resampled
from the working grid to the output's pixel density and added where T covers the view.
Where T's region lies inside the output (zoom < ratio) its detail fades out over a ramp
before the region's edge, so no seam shows.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph import Image, Out, Param, Rect, Scalar, node
from nodegraph.errors import InputError
from nodegraph.nodes.ops.geometry import (
    central_rect,
    rect_to_grid_matrix,
    resample_region,
)
from nodegraph.nodes.ops.ramps import coverage_ramp


def output_to_working_matrix(view, view_wh, crop, working_wh) -> np.ndarray:
    """2x3 matrix from output pixels (W's ``view`` over ``view_wh``) to working-grid pixels.

    Both grids map to W's pixel coordinates with centres aligned (geometry.rect_to_grid_matrix);
    this is the output->W map followed by the inverse of the working->W map.
    """
    to_w = np.vstack([rect_to_grid_matrix(view, view_wh), [0.0, 0.0, 1.0]])
    working_to_w = np.vstack([rect_to_grid_matrix(crop, working_wh), [0.0, 0.0, 1.0]])
    return (np.linalg.inv(working_to_w) @ to_w)[:2]


def resample_delta(delta: np.ndarray, to_working: np.ndarray, out_wh) -> np.ndarray:
    """Resample the working-grid detail ``delta`` onto the output grid; 0 outside the working grid.

    When the output is coarser than the working grid (zoom < ratio), the delta is first
    shrunk with INTER_AREA so its detail is averaged, not aliased; bicubic otherwise.
    """
    if delta.shape[1::-1] == tuple(out_wh) and np.allclose(to_working, np.eye(2, 3), atol=1e-6):
        return delta  # the working grid is the output grid (zoom = ratio, T at W's size)
    density = 1.0 / max(abs(to_working[0, 0]), abs(to_working[1, 1]))  # output px per working px
    if density < 1.0:
        h, w = delta.shape[:2]
        small_wh = (max(1, round(w * density)), max(1, round(h * density)))
        small = cv2.resize(delta, small_wh, interpolation=cv2.INTER_AREA)
        # Working px -> shrunk px, pixel centres aligned as cv2.resize does.
        sx, sy = small_wh[0] / w, small_wh[1] / h
        rescale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
        to_working = (rescale @ np.vstack([to_working, [0.0, 0.0, 1.0]]))[:2]
        delta, interpolation = small, cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_CUBIC
    return cv2.warpAffine(delta, to_working, (int(out_wh[0]), int(out_wh[1])),
                          flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def uncrop_image(wide: np.ndarray, src: np.ndarray, blended: np.ndarray, crop, zoom: float,
                 feather: float = 0.03) -> np.ndarray:
    """W's central 1/zoom view at W's size, with (blended - src) added where T covers it."""
    if not zoom or zoom < 1.0:
        raise InputError(f"zoom must be >= 1, got {zoom!r}")
    if src.shape != blended.shape:
        raise InputError(f"src {src.shape} and blended {blended.shape} must have the same size")
    wh = (wide.shape[1], wide.shape[0])
    view = central_rect(wh[0], wh[1], zoom)
    base = resample_region(wide, view, wh)
    working_wh = (src.shape[1], src.shape[0])
    to_working = output_to_working_matrix(view, wh, crop, working_wh)
    delta = resample_delta((blended - src).astype(np.float32), to_working, wh)
    ramp = seam_ramp(to_working, working_wh, wh, feather * min(wh))
    if ramp is not None:
        delta *= ramp[..., None]
    return np.clip(base + delta, 0.0, 1.0).astype(np.float32)


def seam_ramp(to_working: np.ndarray, working_wh, out_wh, width_px: float) -> np.ndarray | None:
    """0 -> 1 ramp over ``width_px`` output px inside the edge of the working grid's footprint.

    None when the working grid covers the whole output (zoom >= ratio): there is no seam.
    Below the ratio T's region sits inside W's view, and its detail must fade out before its
    edge so that no step shows where T's field of view ends.
    """
    out_w, out_h = int(out_wh[0]), int(out_wh[1])
    corners = np.array([[0, 0, 1], [out_w - 1, 0, 1], [0, out_h - 1, 1], [out_w - 1, out_h - 1, 1]],
                       np.float64) @ to_working.T
    inside = ((corners[:, 0] >= -0.5) & (corners[:, 0] <= working_wh[0] - 0.5)
              & (corners[:, 1] >= -0.5) & (corners[:, 1] <= working_wh[1] - 0.5))
    if inside.all() or width_px <= 0:
        return None
    footprint = cv2.warpAffine(np.ones((working_wh[1], working_wh[0]), np.uint8), to_working,
                               (out_w, out_h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return coverage_ramp(footprint, width_px)


# A zoom below 1 would show more than W holds; the range lets validation refuse it up front.
ZOOM = Scalar.within(1.0, math.inf)


# Bypassed, the node gives the blended crop on T's grid itself (not W).
@node("hzsr.uncrop", version=1, bypass={"image": "blended"})
def uncrop(wide: Image, src: Image, blended: Image, crop: Rect, ratio: Scalar,
           zoom: ZOOM = None, *,
           feather: float = Param(0.03, range=(0.0, 0.5), unit="fraction of the short side",
                                  doc="width of the ramp that fades T's detail out before the "
                                      "edge of T's field of view when it lies inside the output "
                                      "(zoom < ratio)")) -> Out(image=Image):
    """I_final = uncrop(blended, W): W's central 1/zoom view (zoom >= 1, default the ratio).

    Output at W's pixel size: bicubic upsampling of W's central 1/zoom region, plus
    (blended - I_src) resampled from the working grid (W's ``crop`` on T's grid) to the
    output density (INTER_AREA when shrinking, bicubic when enlarging) and added where T
    covers the view; works below, at and above the ratio.
    """
    return uncrop_image(wide, src, blended, crop, float(zoom if zoom is not None else ratio),
                        feather)
