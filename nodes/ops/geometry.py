"""Rectangles and resampling between pixel grids (pixel-edge rectangles, centres aligned)."""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def central_rect(width: int, height: int, zoom: float) -> tuple[float, float, float, float]:
    """The central 1/zoom region (x0, y0, x1, y1) of a width x height image, in pixel-edge coordinates."""
    cw, ch = width / zoom, height / zoom
    x0, y0 = (width - cw) / 2.0, (height - ch) / 2.0
    return (x0, y0, x0 + cw, y0 + ch)


def rect_to_grid_matrix(rect, out_wh) -> np.ndarray:
    """2x3 affine matrix from output-grid pixels to source pixels for ``rect`` spread over ``out_wh``.

    Pixel centres are aligned: output pixel centre u maps to x0 + (u + 0.5) * (x1 - x0) / W_out - 0.5
    (the convention of the SPEC §3 bicubic baseline), so fractional rectangles are exact.
    """
    x0, y0, x1, y1 = (float(v) for v in rect)
    sx, sy = (x1 - x0) / out_wh[0], (y1 - y0) / out_wh[1]
    return np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])


def resample_region(image: np.ndarray, rect, out_wh, interpolation: int = cv2.INTER_CUBIC,
                    border: int = cv2.BORDER_REPLICATE, rows: tuple[int, int] | None = None,
                    to_float: Callable[[np.ndarray], np.ndarray] | None = None,
                    cols: tuple[int, int] | None = None) -> np.ndarray:
    """Resample the (possibly fractional) region ``rect`` of ``image`` to ``out_wh`` = (width, height).

    ``image`` is float32 (H, W) or (H, W, C) in [0, 1]; ``rect`` (x0, y0, x1, y1) in pixel-edge
    coordinates of ``image``; the result is float32 (height, width[, C]), or only its rows
    [top, bottom) with ``rows`` (and columns [left, right) with ``cols``). With ``to_float``
    (e.g. ``compact_to_float``), ``image`` may be stored otherwise (8-bit samples): only the
    pixels the result reads are converted.

    Bicubic by default, pixel centres aligned; the result is clipped to [0, 1] because bicubic
    overshoots at edges.
    """
    top, bottom = rows or (0, int(out_wh[1]))
    left, right = cols or (0, int(out_wh[0]))
    matrix = rect_to_grid_matrix(rect, out_wh)
    # the part's first pixel is output pixel (left, top)
    matrix[:, 2] += matrix[:, 0] * left + matrix[:, 1] * top
    if to_float is not None:
        image, matrix = _pixels_read(image, matrix, (right - left, bottom - top))
        image = to_float(image)
    out = cv2.warpAffine(image, matrix, (right - left, bottom - top),
                         flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border)
    if out.dtype == np.float32:  # in place: no second full-size copy
        return np.clip(out, 0.0, 1.0, out=out)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# pixels beyond a sample position that OpenCV's interpolation kernels read (Lanczos: 4)
KERNEL_REACH = 4


def _pixels_read(image: np.ndarray, matrix: np.ndarray, out_wh) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` that an axis-aligned ``matrix`` (2x3, output -> image pixels, as
    :func:`rect_to_grid_matrix` gives) samples for an ``out_wh`` output, with the matrix
    moved onto it. The part's border is the image's, or lies beyond every kernel's reach, so
    the warp of the part equals that of the whole (its origin moves by whole pixels)."""
    h, w = image.shape[:2]
    ends = [matrix[:, 2], matrix[:, 2] + np.array([matrix[0, 0] * (out_wh[0] - 1), matrix[1, 1] * (out_wh[1] - 1)])]
    low = np.floor(np.minimum(*ends)).astype(int) - KERNEL_REACH
    high = np.ceil(np.maximum(*ends)).astype(int) + KERNEL_REACH + 1
    x0, y0 = min(max(0, low[0]), w - 1), min(max(0, low[1]), h - 1)
    x1, y1 = max(min(w, high[0]), x0 + 1), max(min(h, high[1]), y0 + 1)
    moved = matrix.copy()
    moved[:, 2] -= (x0, y0)
    return image[y0:y1, x0:x1], moved


def centred_rect(width: int, height: int, fov_ratio: float, aspect: float
                 ) -> tuple[float, float, float, float]:
    """Centred region (x0, y0, x1, y1) of a width x height image that is width / fov_ratio
    wide with the given aspect (width / height): a frame of another aspect seen in its middle."""
    cw = width / fov_ratio
    ch = cw / aspect
    x0, y0 = (width - cw) / 2.0, (height - ch) / 2.0
    return (x0, y0, x0 + cw, y0 + ch)


def rect_to_edge_matrix(rect, out_wh) -> np.ndarray:
    """3x3 matrix from pixel-edge coordinates of an ``out_wh`` grid to those of ``rect``'s image."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    return np.array([[(x1 - x0) / out_wh[0], 0.0, x0], [0.0, (y1 - y0) / out_wh[1], y0],
                     [0.0, 0.0, 1.0]])


def footprint_corners(tele_to_wide: np.ndarray, tele_wh) -> np.ndarray:
    """(4, 2) W pixel-edge coordinates of T's corners (clockwise from top left) under the
    3x3 map ``tele_to_wide`` of pixel-edge coordinates."""
    w, h = tele_wh
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ tele_to_wide.T
    return corners[:, :2] / corners[:, 2:]


def footprint_width(corners: np.ndarray, tele_wh) -> float:
    """Width (W px) of the T-shaped rectangle with the footprint's area: the width T covers
    in W, defined for rotated and perspective footprints too."""
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return float(np.sqrt(area * tele_wh[0] / tele_wh[1]))


def bounding_rect(corners: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned (x0, y0, x1, y1) around the (N, 2) points."""
    return (float(corners[:, 0].min()), float(corners[:, 1].min()),
            float(corners[:, 0].max()), float(corners[:, 1].max()))


def working_to_tele_matrix(crop, working_wh, tele_to_wide: np.ndarray) -> np.ndarray:
    """3x3 map from working-grid pixel centres (``crop`` of W over ``working_wh``) to T pixel
    centres, for cv2.warpPerspective with WARP_INVERSE_MAP."""
    centre_to_edge = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return (np.linalg.inv(centre_to_edge) @ np.linalg.inv(tele_to_wide)
            @ rect_to_edge_matrix(crop, working_wh) @ centre_to_edge)
