import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from nodegraph.nodes.ops.metrics import (
    BORDER,
    bicubic_crop,
    inner,
    luma8,
    psnr,
    ssim,
    ssim_map,
)


def test_ssim_matches_scikit_image_gaussian_ssim():
    rng = np.random.default_rng(0)
    a = rng.random((64, 80))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    _, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, win_size=11,
                                    use_sample_covariance=False, data_range=1.0, full=True)
    ours = ssim_map(a, b)
    # scikit-image pads differently at the border; compare away from it.
    keep = inner(a.shape)
    np.testing.assert_allclose(ours[keep], full[keep], atol=1e-6)
    assert ssim(a, a, keep) == pytest.approx(1.0)


def test_psnr_of_a_known_error_and_border_exclusion():
    y = np.zeros((40, 40))
    noisy = y + 0.1
    noisy[:BORDER] = 1.0  # inside the excluded border
    assert psnr(noisy, y, inner(y.shape)) == pytest.approx(20.0)
    assert np.isnan(psnr(y, y, np.zeros_like(y, bool)))


def test_luma_uses_bt601_weights_on_8bit_values():
    rgb8 = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(luma8(rgb8)[0], [0.299, 0.587, 0.114], atol=1e-6)


def test_bicubic_crop_of_integer_box_matches_opencv_resize_inside():
    rng = np.random.default_rng(1)
    wide = (rng.random((60, 90, 3)) * 255).astype(np.uint8)
    box, size = (30, 20, 60, 40), (90, 60)
    ours = bicubic_crop(wide, box, size).astype(int)
    reference = cv2.resize(wide[20:40, 30:60], size, interpolation=cv2.INTER_CUBIC).astype(int)
    keep = inner((60, 90))
    assert np.abs(ours - reference)[keep].max() <= 2  # fixed-point interpolation tables
    half = bicubic_crop(wide, (30.5, 20, 60.5, 40), size).astype(int)
    assert np.abs(half - ours)[keep].mean() > 1  # a fractional box really moves the samples
