"""Ramps that fade a region's contribution out towards its edge, so no seam shows."""
from __future__ import annotations

import cv2
import numpy as np


def ramp_reach(width_px: float) -> int:
    """Rows (and columns) around a pixel that :func:`coverage_ramp` reads: its erosion's and
    box mean's radius each; a strip of rows gets its exact ramp from the map's rows this many
    beyond it on each side."""
    return 2 * (int(width_px) // 2)


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
    # The erosion and the box mean each reach ``radius`` px, so the ramp is exactly 1 beyond
    # 2 radius px of every uncovered pixel: only the box around those is filtered (a region
    # covering most of a frame leaves a thin band to compute). Beyond the box's inner sides
    # everything is covered, so the filters' borders there (1 for the erosion, replicated
    # for the mean) see what they would see in the whole image.
    reach = 2 * radius + 2
    uncovered_rows = np.flatnonzero(covered.min(axis=1) == 0)
    uncovered_cols = np.flatnonzero(covered.min(axis=0) == 0)
    box = (slice(max(0, uncovered_rows[0] - reach), uncovered_rows[-1] + reach + 1),
           slice(max(0, uncovered_cols[0] - reach), uncovered_cols[-1] + reach + 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    eroded = cv2.erode(covered[box], kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    ramp = np.ones(covered.shape, np.float32)
    ramp[box] = cv2.blur(eroded.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)
    return ramp
