"""Uncrop: put the blended T region back into W's zoomed view (SPEC §4 step 11).

HZSR's I_final = uncrop(M_blend * I_fusion + (1 - M_blend) * I_src, W). The output is W's
central 1/zoom view (zoom = output field of view relative to W) at W's pixel size, as a
phone renders it (``pixel_size`` wide), or at T's pixel density, which keeps every pixel of
T's detail (``pixel_size`` tele), for any zoom >= 1: its base is bicubic upsampling of
that W region, and where T covers the view the blended working grid is resampled to the
output's pixel density instead.
Where T's region lies inside the output (zoom < ratio) its detail fades out over a ramp
before the region's edge, so no seam shows.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph import Any, CompactImage, Image, Local, Out, Param, Rect, Scalar, node, output_rows
from nodegraph.errors import InputError
from nodegraph.nodes.ops.geometry import (
    central_rect,
    rect_to_grid_matrix,
    resample_region,
    translate_cubic,
    translation_of,
)
from nodegraph.nodes.ops.ramps import coverage_ramp, ramp_reach
from nodegraph.types import compact_to_float

SHRINK_BELOW = 0.75  # output px per working px under which detail is area-averaged first


def output_to_working_matrix(view, view_wh, crop, working_wh, footprint=None) -> np.ndarray:
    """3x3 matrix from output pixel centres (W's ``view`` over ``view_wh``) to working-grid ones.

    The output -> W map (geometry.rect_to_grid_matrix, centres aligned) followed by W ->
    working grid: the inverse of ``footprint`` (3x3, T pixel edges -> W's; the working grid
    is T's) when given, else of the axis-aligned ``crop`` spread over ``working_wh``.
    """
    to_w = np.vstack([rect_to_grid_matrix(view, view_wh), [0.0, 0.0, 1.0]])
    if footprint is None:
        working_to_w = np.vstack([rect_to_grid_matrix(crop, working_wh), [0.0, 0.0, 1.0]])
    else:
        centre_to_edge = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        working_to_w = (np.linalg.inv(centre_to_edge) @ np.asarray(footprint, np.float64)
                        @ centre_to_edge)
    return np.linalg.inv(working_to_w) @ to_w


def _warp(image: np.ndarray, matrix: np.ndarray, out_wh, interpolation: int,
          border: int = cv2.BORDER_CONSTANT, out: np.ndarray | None = None) -> np.ndarray:
    """``image`` sampled at ``matrix`` (3x3, output -> image pixel centres); outside it 0
    (or the edge replicated). Written into ``out`` when given (a view of a larger array
    whose rows are strided is fine: OpenCV writes through it)."""
    out_wh = (int(out_wh[0]), int(out_wh[1]))
    shift = translation_of(matrix)
    if (shift is not None and interpolation == cv2.INTER_CUBIC and border == cv2.BORDER_REPLICATE
            and image.dtype == np.float32):
        return translate_cubic(image, shift, out_wh, out)  # T at the output's density, shifted
    flags = interpolation | cv2.WARP_INVERSE_MAP
    if np.allclose(matrix[2], [0.0, 0.0, 1.0], atol=1e-12):
        return cv2.warpAffine(image, matrix[:2], out_wh, dst=out, flags=flags, borderMode=border,
                              borderValue=0)
    return cv2.warpPerspective(image, matrix, out_wh, dst=out, flags=flags, borderMode=border,
                               borderValue=0)


def _from_origin(left: int, top: int) -> np.ndarray:
    """3x3 matrix from the pixels of a part of the output starting at (``left``, ``top``) to
    output pixels."""
    return np.array([[1.0, 0.0, float(left)], [0.0, 1.0, float(top)], [0.0, 0.0, 1.0]])


def resample_working(image: np.ndarray, to_working: np.ndarray, out_wh,
                     rows: tuple[int, int] | None = None,
                     cols: tuple[int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Resample the working-grid ``image`` onto the output grid (edges replicated beyond it).

    When the output is much coarser than the working grid (zoom < ratio, or T denser than
    the output; density below SHRINK_BELOW), the image is first shrunk with INTER_AREA so its
    detail is averaged, not aliased; then (or else) bicubic. Near density 1 (a registered
    T turned or scaled by a few %) an area shrink would blur every pixel into its
    neighbour for almost no decimation: measured 2 dB lost at density 0.985.
    ``rows`` (top, bottom), ``cols`` (left, right): only those output rows and columns
    (default all of ``out_wh``'s). Written into ``out`` when given, else a new array (or,
    when the working grid is the output grid, a view of ``image``).
    """
    top, bottom = rows or (0, int(out_wh[1]))
    left, right = cols or (0, int(out_wh[0]))
    if image.shape[1::-1] == tuple(out_wh) and np.allclose(to_working, np.eye(3), atol=1e-6):
        part = image[top:bottom, left:right]  # the working grid is the output grid
        if out is None:
            return part
        out[...] = part
        return out
    strip_wh = (right - left, bottom - top)
    density = working_density(to_working)
    to_working = to_working @ _from_origin(left, top)
    if density < SHRINK_BELOW:
        h, w = image.shape[:2]
        small_wh = (max(1, round(w * density)), max(1, round(h * density)))
        small = cv2.resize(image, small_wh, interpolation=cv2.INTER_AREA)
        # Working px -> shrunk px, pixel centres aligned as cv2.resize does.
        sx, sy = small_wh[0] / w, small_wh[1] / h
        rescale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
        return _warp(small, rescale @ to_working, strip_wh, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE, out)
    return _warp(image, to_working, strip_wh, cv2.INTER_CUBIC, cv2.BORDER_REPLICATE, out)


def working_density(to_working: np.ndarray) -> float:
    """Output px per working px of an output -> working grid matrix."""
    return 1.0 / np.sqrt(abs(np.linalg.det(to_working[:2, :2])))


def output_size(wide_wh, view, crop, working_wh, pixel_size: str) -> tuple[int, int]:
    """(width, height) of the output: W's size (``wide``) or ``view`` at the working grid's
    density, T's (``tele``)."""
    if pixel_size == "wide":
        return tuple(wide_wh)
    if pixel_size != "tele":
        raise InputError(f"uncrop.pixel_size must be wide or tele, got {pixel_size!r}")
    density = working_wh[0] / (crop[2] - crop[0])
    return (max(1, round((view[2] - view[0]) * density)),
            max(1, round((view[3] - view[1]) * density)))


def uncrop_geometry(wide_shape, working_shape, crop, zoom: float, pixel_size: str, footprint=None):
    """(view, output (width, height), output -> working grid 3x3 matrix) of an uncrop."""
    if not zoom or zoom < 1.0:
        raise InputError(f"zoom must be >= 1, got {zoom!r}")
    view = central_rect(wide_shape[1], wide_shape[0], zoom)
    working_wh = (working_shape[1], working_shape[0])
    wh = output_size((wide_shape[1], wide_shape[0]), view, crop, working_wh, pixel_size)
    return view, wh, output_to_working_matrix(view, wh, crop, working_wh, footprint)


def uncrop_image(wide: np.ndarray, blended: np.ndarray, crop, zoom: float,
                 feather: float = 0.03, pixel_size: str = "wide", footprint=None,
                 rows: tuple[int, int] | None = None) -> np.ndarray:
    """W's central 1/zoom view at W's (or T's) pixel size, the working grid's ``blended``
    image resampled where T covers it; ``rows`` (top, bottom): only those rows of it (a
    strip), default all."""
    view, wh, to_working = uncrop_geometry(wide.shape, blended.shape, crop, zoom, pixel_size, footprint)
    rows = rows or (0, wh[1])
    working_wh = (blended.shape[1], blended.shape[0])
    blended = blended.astype(np.float32, copy=False)
    ramp = seam_ramp(to_working, working_wh, wh, feather * min(wh), rows)
    # The blended image itself is resampled, not its difference to I_src added to the base:
    # W's aliased band, bicubically upsampled onto two different grids, does not cancel
    # (measured: 1.2 dB lost on a 1.2-degree turned T). T's detail is resampled once either way.
    if ramp is None:  # T's grid covers the whole output
        fused = resample_working(blended, to_working, wh, rows)
        # in place where the array is this function's own (at zoom = ratio the resampling
        # hands back the input itself, or rows of it, which stay untouched)
        return np.clip(fused, 0.0, 1.0, out=None if np.may_share_memory(fused, blended) else fused)
    # I_final = base + ramp (fused - base): W's base only in the columns where the ramp is
    # below 1 (near the edge of T's field of view), T's grid only where it is above 0; each is
    # resampled over those columns alone (at 12 MP with T covering all but a thin band, the
    # base of a few % of the pixels), T's grid straight into the output, and the two mixed
    # where both are.
    out = np.empty((rows[1] - rows[0], wh[0], 3), np.float32)
    base_cols, fused_cols = _column_span(ramp < 1.0), _column_span(ramp > 0.0)
    b0, b1 = base_cols or (0, 0)
    f0, f1 = fused_cols or (0, 0)
    if fused_cols is not None:
        resample_working(blended, to_working, wh, rows, fused_cols, out=out[:, f0:f1])
    if base_cols is not None:
        base = resample_region(wide, view, wh, rows=rows, cols=base_cols, to_float=compact_to_float)
        for c0, c1 in ((b0, min(b1, f0)), (max(b0, f1), b1)):  # the ramp is 0 there: W only
            if c0 < c1:
                out[:, c0:c1] = base[:, c0 - b0:c1 - b0]
        c0, c1 = max(f0, b0), min(f1, b1)
        if c0 < c1:  # base + ramp (fused - base), in place over the resampled T
            detail = out[:, c0:c1]
            part = base[:, c0 - b0:c1 - b0]
            detail -= part
            detail *= ramp[:, c0:c1, None]
            detail += part
    return np.clip(out, 0.0, 1.0, out=out)


def _column_span(mask: np.ndarray) -> tuple[int, int] | None:
    """(first, last + 1) of the columns where the (h, w) ``mask`` is true anywhere; None if nowhere."""
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(cols[-1]) + 1) if len(cols) else None


def _mapped_corners(matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """(4, 2) images under the 3x3 ``matrix`` of the corner pixel centres of a width x height grid."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]],
                       np.float64) @ matrix.T
    return corners[:, :2] / corners[:, 2:]


def inside_working_grid(to_working: np.ndarray, working_wh, out_wh) -> np.ndarray:
    """(h, w) uint8: 1 where an output pixel's nearest working-grid pixel exists, else 0 (a
    nearest-neighbour warp of the grid's ones, BORDER_CONSTANT 0).

    Only the part of the grid the output can reach is warped: the bounding box of the mapped
    corners (a parallelogram's or a quadrilateral's: the map is affine or projective) and 2 px
    for the rounding; every pixel that maps into the grid maps into that box, so the result
    equals the warp of the whole grid (a strip of a 12 MP output read all 12 MB of it)."""
    corners = _mapped_corners(to_working, int(out_wh[0]), int(out_wh[1]))
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(axis=0))
    x1, y1 = (min(n, int(np.ceil(v)) + 3) for v, n in zip(corners.max(axis=0), working_wh))
    if x0 >= x1 or y0 >= y1:
        return np.zeros((int(out_wh[1]), int(out_wh[0])), np.uint8)
    to_box = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ to_working
    return _warp(np.ones((y1 - y0, x1 - x0), np.uint8), to_box, out_wh, cv2.INTER_NEAREST)


def seam_ramp(to_working: np.ndarray, working_wh, out_wh, width_px: float,
              rows: tuple[int, int] | None = None) -> np.ndarray | None:
    """0 -> 1 ramp over ``width_px`` output px inside the edge of the working grid's footprint
    (``rows`` (top, bottom): only those output rows).

    None when the working grid covers the whole output (zoom >= ratio): there is no seam.
    Below the ratio T's region sits inside W's view, and its detail must fade out before its
    edge so that no step shows where T's field of view ends.
    """
    out_w, out_h = int(out_wh[0]), int(out_wh[1])
    corners = _mapped_corners(to_working, out_w, out_h)
    inside = ((corners[:, 0] >= -0.5) & (corners[:, 0] <= working_wh[0] - 0.5)
              & (corners[:, 1] >= -0.5) & (corners[:, 1] <= working_wh[1] - 0.5))
    if inside.all() or width_px <= 0:
        return None
    top, bottom = rows or (0, out_h)
    reach = ramp_reach(width_px)
    first, last = max(0, top - reach), min(out_h, bottom + reach)
    inside = inside_working_grid(to_working @ _from_origin(0, first), working_wh, (out_w, last - first))
    return coverage_ramp(inside, width_px)[top - first: bottom - first]


# A zoom below 1 would show more than W holds; the range lets validation refuse it up front.
ZOOM = Scalar.within(1.0, math.inf)


def _output_frame(inputs: dict, params: dict) -> tuple[int, int] | None:
    """(H, W) of the output for the executor's strips; None (run whole) when the working grid
    is shrunk first: every strip would shrink all of it again."""
    zoom = inputs["zoom"] if inputs["zoom"] is not None else inputs["ratio"]
    _, wh, to_working = uncrop_geometry(inputs["wide"].shape, inputs["blended"].shape, inputs["crop"],
                                        float(zoom), params["pixel_size"], inputs["footprint"])
    return None if working_density(to_working) < SHRINK_BELOW else (wh[1], wh[0])


# Bypassed, the node gives the blended crop on T's grid itself (not W). Local: each output
# pixel is resampled from W and the working grid, which are read whole.
@node("hzsr.uncrop", version=3, bypass={"image": "blended"},
      local=Local(whole=("wide", "blended"), frame=_output_frame))
def uncrop(wide: CompactImage, blended: Image, crop: Rect, ratio: Scalar,
           footprint: Any = None, zoom: ZOOM = None, *,
           feather: float = Param(0.03, range=(0.0, 0.5), unit="fraction of the short side",
                                  doc="width of the ramp that fades T's detail out before the "
                                      "edge of T's field of view when it lies inside the output "
                                      "(zoom < ratio)"),
           pixel_size: str = Param("wide", choices=("wide", "tele"),
                                   doc="output pixel size: wide = W's (the output has W's pixel "
                                       "count, as a phone); tele = T's measured density (the "
                                       "output is larger and keeps all of T's detail)"),
           ) -> Out(image=Image):
    """I_final = uncrop(blended, W): W's central 1/zoom view (zoom >= 1, default the ratio).

    ``ratio`` and ``zoom`` are fields of view relative to W (ratio: T's, measured by
    hzsr.align; zoom: the output's). Output (h, w, 3) at W's pixel size (``pixel_size``
    wide: h, w = W's) or at T's density (tele: the view's size times T px per W px):
    bicubic upsampling of W's central 1/zoom region, replaced where T covers the view by
    ``blended`` resampled from the working grid (T's grid placed in W by ``footprint``, 3x3
    of pixel edges T -> W; without it W's ``crop`` on that grid) to the output density
    (INTER_AREA when shrinking much, else bicubic); works below, at and above the ratio.
    """
    return uncrop_image(wide, blended, crop, float(zoom if zoom is not None else ratio),
                        feather, pixel_size, footprint, output_rows())
