"""Rectangles and resampling between pixel grids (pixel-edge rectangles, centres aligned)."""
from __future__ import annotations

import math
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


CUBIC_A = -0.75  # OpenCV's bicubic kernel parameter


def cubic_taps(fraction: float) -> np.ndarray:
    """OpenCV's four bicubic weights (A = CUBIC_A) of source pixels -1, 0, 1, 2 for a position
    ``fraction`` (0 <= fraction < 1) past pixel 0; 0 gives (0, 1, 0, 0) exactly."""
    x, a = float(fraction), CUBIC_A
    c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + 1
    c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return np.array([c0, c1, c2, 1 - c0 - c1 - c2], np.float32)


def translation_of(matrix: np.ndarray) -> tuple[float, float] | None:
    """(tx, ty) of a 2x3 or 3x3 matrix that only translates, else None."""
    matrix = np.asarray(matrix, np.float64)
    linear_is_identity = np.allclose(matrix[:2, :2], np.eye(2), rtol=0.0, atol=1e-12)
    projective = matrix.shape[0] == 3 and not np.allclose(matrix[2], [0.0, 0.0, 1.0], rtol=0.0, atol=1e-12)
    return None if projective or not linear_is_identity else (float(matrix[0, 2]), float(matrix[1, 2]))


def translate_cubic(image: np.ndarray, shift: tuple[float, float], out_wh,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Output pixel (x, y) = ``image`` (float32, (H, W) or (H, W, C)) at (x + shift[0],
    y + shift[1]), bicubic, edges replicated: what ``cv2.warpAffine`` (INTER_CUBIC,
    BORDER_REPLICATE, WARP_INVERSE_MAP) gives for a pure translation, written into ``out``
    ((height, width[, C]) float32, a view is fine) when given.

    A translation moves every pixel by the same fraction, so the 4x4 bicubic is two 4-tap
    passes with one set of weights (``cv2.sepFilter2D``), where the warp computes 16 weights
    per pixel: at 12 MP in strips on 2 cores 0.033-0.037 s against 0.064-0.065 s. Within 4e-6
    of the warp at small coordinates; OpenCV computes them in float32 (1.6e-4 apart at
    x ~ 4000, where this is the exact one). Output pixels whose source pixel lies beyond the
    image (the taps' clamping differs there) are warped as before.
    """
    width, height = int(out_wh[0]), int(out_wh[1])
    if out is None:
        out = np.empty((height, width, *image.shape[2:]), np.float32)
    h, w = image.shape[:2]
    ix, iy = math.floor(shift[0]), math.floor(shift[1])
    # output pixels whose source pixel (x + ix, y + iy) lies inside the image
    x0, x1 = min(max(0, -ix), width), max(0, min(width, w - ix))
    y0, y1 = min(max(0, -iy), height), max(0, min(height, h - iy))
    if x0 < x1 and y0 < y1:
        # OpenCV sees a NumPy view as a whole image (it replicates the view's edges), so the
        # part read carries the taps' reach (1 pixel before, 2 after) where the image has it
        r0, c0 = max(0, y0 + iy - 1), max(0, x0 + ix - 1)
        r1, c1 = min(h, y1 + iy + 2), min(w, x1 + ix + 2)
        filtered = cv2.sepFilter2D(image[r0:r1, c0:c1], cv2.CV_32F, cubic_taps(shift[0] - ix),
                                   cubic_taps(shift[1] - iy), anchor=(1, 1),
                                   borderType=cv2.BORDER_REPLICATE)
        top, left = y0 + iy - r0, x0 + ix - c0
        out[y0:y1, x0:x1] = filtered[top:top + y1 - y0, left:left + x1 - x0]
    else:
        x0 = x1 = y0 = y1 = 0
    for top, bottom, left, right in ((0, y0, 0, width), (y1, height, 0, width),
                                     (y0, y1, 0, x0), (y0, y1, x1, width)):
        if top < bottom and left < right:
            matrix = np.array([[1.0, 0.0, shift[0] + left], [0.0, 1.0, shift[1] + top]])
            cv2.warpAffine(image, matrix, (right - left, bottom - top), dst=out[top:bottom, left:right],
                           flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return out


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
