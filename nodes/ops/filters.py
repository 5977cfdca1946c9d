"""Linear filters shared by the stages."""
from __future__ import annotations

import cv2
import numpy as np


def lowpass(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of sigma px (reflected border); ``sigma`` 0 returns the plane as it is."""
    return cv2.GaussianBlur(plane, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) if sigma > 0 else plane
