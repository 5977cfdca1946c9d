"""Rectangles and resampling between pixel grids (pixel-edge rectangles, centres aligned)."""
from __future__ import annotations

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
                    border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Resample the (possibly fractional) region ``rect`` of ``image`` to ``out_wh`` = (width, height).

    ``image`` is float32 (H, W) or (H, W, C) in [0, 1]; ``rect`` (x0, y0, x1, y1) in pixel-edge
    coordinates of ``image``; the result is float32 (height, width[, C]).

    Bicubic by default, pixel centres aligned; the result is clipped to [0, 1] because bicubic
    overshoots at edges.
    """
    out = cv2.warpAffine(image, rect_to_grid_matrix(rect, out_wh), (int(out_wh[0]), int(out_wh[1])),
                         flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
