"""Ramps that fade a region's contribution out towards its edge, so no seam shows."""
from __future__ import annotations

import cv2
import numpy as np


def coverage_ramp(covered: np.ndarray, width_px: float) -> np.ndarray:
    """0 -> 1 ramp over ~``width_px`` px inwards from the edge of ``covered`` (H, W), float32.

    ``covered`` is a boolean or 0/1 map; outside the image counts as covered, so only edges of
    the region inside the grid fade. Erosion by r = width_px // 2, then a (2r + 1)^2 box mean:
    at distance d (px) from the last uncovered pixel along a straight edge this is exactly
    min(d / (2r + 1), 1), and exactly 0 at d = 0 (a distance transform gives the same ramp at
    three times the cost).
    """
    covered = (np.asarray(covered) > 0.5).astype(np.uint8)
    radius = int(width_px) // 2
    if radius <= 0 or covered.all():
        return covered.astype(np.float32)
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    eroded = cv2.erode(covered, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return cv2.blur(eroded.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)
