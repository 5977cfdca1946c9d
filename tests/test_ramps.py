"""ops.ramps.coverage_ramp against the plain whole-image erosion and box mean it is defined by."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from nodegraph.nodes.ops.ramps import coverage_ramp


def _whole_image_ramp(covered: np.ndarray, width_px: float) -> np.ndarray:
    radius = int(width_px) // 2
    if radius <= 0:
        return covered.astype(np.float32)
    size = 2 * radius + 1
    eroded = cv2.erode(covered, np.ones((size, size), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return cv2.blur(eroded.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("seed", range(40))
def test_ramp_filtered_around_the_uncovered_pixels_equals_the_whole_image_one(seed):
    """Random rectangles or speckle uncovered, anywhere (edges and corners included), at
    widths from none to wider than the image: the same values as filtering the whole image."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 150, 2)
    covered = np.ones((h, w), np.uint8)
    if seed % 4 == 3:
        covered = (rng.random((h, w)) > 0.02).astype(np.uint8)
    else:
        for _ in range(seed % 4):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            covered[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = 0
    width = float(rng.integers(0, 60))
    ramp = coverage_ramp(covered, width)
    assert ramp.dtype == np.float32 and ramp.shape == (h, w)
    np.testing.assert_array_equal(ramp, _whole_image_ramp(covered, width))


def test_a_thin_uncovered_edge_fades_inwards():
    covered = np.ones((60, 80), np.uint8)
    covered[:, :3] = 0
    ramp = coverage_ramp(covered, 10)
    assert (ramp[:, :3] == 0).all() and (ramp[:, 20:] == 1).all()
    assert np.all(np.diff(ramp[30, :20]) >= 0) and 0 < ramp[30, 8] < 1
