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


def test_replace_luminance_into_a_view_equals_the_returned_image():
    """``out=`` (the fusion writes each tile's core into its output image): the same values as
    the plain call, clipping included, written only into the view."""
    rng = np.random.default_rng(1)
    rgb = rng.random((20, 30, 3), dtype=np.float32)
    target = rng.uniform(-0.3, 1.3, (20, 30)).astype(np.float32)  # some sums leave [0, 1]
    expected = replace_luminance(rgb, target)
    canvas = np.full((26, 40, 3), 7.0, np.float32)
    got = replace_luminance(rgb, target, out=canvas[3:23, 5:35])
    np.testing.assert_array_equal(canvas[3:23, 5:35], expected)
    assert np.shares_memory(got, canvas) and (canvas[:3] == 7).all() and (canvas[:, :5] == 7).all()
    assert expected.min() == 0.0 and expected.max() == 1.0


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (37, 61)])
def test_replace_luminance_equals_the_plain_sum(shape):
    """The Numba kernel against rgb + (y - Y) per channel, clipped, in float64 (from a strided
    view, as the fusion's tile cores are): within float32's rounding of values up to 1."""
    rng = np.random.default_rng(shape[0])
    whole = rng.random((shape[0] + 4, shape[1] + 6, 3), dtype=np.float32)
    rgb = whole[2:-2, 3:-3]
    target = rng.uniform(-0.3, 1.3, shape).astype(np.float32)
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    expected = np.clip(rgb + (target - y)[..., None], 0.0, 1.0)
    got = replace_luminance(rgb, target)
    assert got.dtype == np.float32 and got.shape == rgb.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=3e-7)
    assert ((got == 0.0) == (expected == 0.0)).all() and ((got == 1.0) == (expected == 1.0)).all()


def test_replace_luminance_refuses_a_plane_of_another_shape():
    with pytest.raises(ValueError, match=r"\(H, W\) plane"):
        replace_luminance(np.zeros((4, 5, 3), np.float32), np.zeros((4, 6), np.float32))
