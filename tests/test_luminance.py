import cv2
import numpy as np
import pytest

from nodegraph.nodes.ops.luminance import luminance, replace_luminance


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 1, 3), (1, 9, 3), (31, 17, 3)])
def test_luminance_matches_bt601_weighted_sum(shape):
    rgb = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    y = luminance(rgb)
    assert y.shape == shape[:2] and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_replace_luminance_keeps_chroma():
    rgb = np.random.default_rng(0).uniform(0.2, 0.8, (20, 30, 3)).astype(np.float32)
    target = luminance(rgb) * 0.9 + 0.05
    out = replace_luminance(rgb, target)
    yuv_in, yuv_out = (cv2.cvtColor(a, cv2.COLOR_RGB2YUV) for a in (rgb, out))
    np.testing.assert_allclose(yuv_out[..., 0], target, atol=1e-5)
    np.testing.assert_allclose(yuv_out[..., 1:], yuv_in[..., 1:], atol=1e-5)
