"""Image-quality metrics and the bicubic baseline, defined as in SPEC section 3.

So that numbers agree with anyone else's: Y = 0.299 R + 0.587 G + 0.114 B of the 8-bit sRGB
values scaled to [0, 1]; an 8-pixel border is left out; PSNR with peak 1; SSIM with an 11x11
Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, averaged over the region.
"""
from __future__ import annotations

import cv2
import numpy as np

from nodegraph.nodes.ops.geometry import rect_to_grid_matrix
from nodegraph.nodes.ops.luminance import luminance

BORDER = 8
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def quantize8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] rounded to the uint8 values a PNG writer stores."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def luma8(rgb8: np.ndarray) -> np.ndarray:
    """Y (H, W) of uint8 RGB (H, W, 3), scaled to [0, 1], float64 for exact metrics."""
    return luminance(rgb8.astype(np.float32) / 255.0).astype(np.float64)


def inner(mask_shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels at least BORDER pixels from the edge."""
    keep = np.zeros(mask_shape, bool)
    keep[BORDER:mask_shape[0] - BORDER, BORDER:mask_shape[1] - BORDER] = True
    return keep


def psnr(y: np.ndarray, y_ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR (peak 1) of two Y images (same shape, values in [0, 1]) over a boolean region (all
    pixels by default); NaN for an empty region, inf for identical images."""
    if region is None:
        region = np.ones(np.shape(y), bool)
    if not region.any():
        return float("nan")
    mse = float(np.mean((np.asarray(y, np.float64)[region] - np.asarray(y_ref, np.float64)[region]) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim_map(y: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H, W) of two Y images (H, W) in [0, 1]: 11x11 Gaussian window, sigma 1.5,
    C1 = 0.01^2, C2 = 0.03^2 (SPEC section 3)."""
    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(y), blur(y_ref)
    var_x = blur(y * y) - mu_x**2
    var_y = blur(y_ref * y_ref) - mu_y**2
    cov = blur(y * y_ref) - mu_x * mu_y
    return ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2))


def ssim(y: np.ndarray, y_ref: np.ndarray, region: np.ndarray) -> float:
    return float(ssim_map(y, y_ref)[region].mean()) if region.any() else float("nan")


def bicubic_crop(wide8: np.ndarray, box: tuple[float, float, float, float],
                 size_wh: tuple[int, int]) -> np.ndarray:
    """W's (possibly fractional) box resampled to ``size_wh`` with OpenCV bicubic, centres aligned.

    Output pixel centre u maps to x0 + (u + 0.5) * (x1 - x0) / width - 0.5 in W.
    """
    return cv2.warpAffine(wide8, rect_to_grid_matrix(box, size_wh), tuple(size_wh),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
