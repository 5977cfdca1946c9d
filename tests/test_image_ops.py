"""image.resize / blur / to_gray / crop."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from nodegraph.errors import InputError
from nodegraph.nodes.image_ops import blur, crop, resize, to_gray


@pytest.fixture
def photo():
    return skimage.data.coffee().astype(np.float32) / 255.0  # 400 x 600


def _resize(image, scale=None, width=None, height=None, interpolation="cubic"):
    return resize(image, scale=scale, width=width, height=height, interpolation=interpolation)


def test_resize_by_scale_width_height(photo):
    assert _resize(photo, scale=0.5).shape == (200, 300, 3)
    assert _resize(photo, width=150).shape == (100, 150, 3)
    assert _resize(photo, height=100).shape == (100, 150, 3)
    assert _resize(photo, width=64, height=32, interpolation="area").shape == (32, 64, 3)
    with pytest.raises(InputError, match="scale"):
        _resize(photo)


@pytest.mark.parametrize("size", [{"width": 65535, "height": 65535}, {"width": 20000},
                                  {"scale": 40.0}])
def test_resize_refuses_an_output_over_the_size_limit_before_allocating(photo, size):
    with pytest.raises(InputError, match="over the 200 MP limit"):
        _resize(photo, **size)
    assert _resize(photo, width=1200).shape == (800, 1200, 3)


def test_resize_area_of_constant_is_constant_and_cubic_stays_in_range(photo):
    flat = np.full((30, 40, 3), 0.25, np.float32)
    np.testing.assert_allclose(_resize(flat, scale=0.5, interpolation="area"), 0.25, atol=1e-6)
    up = _resize(photo, scale=2.0)
    assert up.dtype == np.float32 and up.min() >= 0 and up.max() <= 1
    # Shrinking by area then comparing means: resizing keeps the average colour.
    np.testing.assert_allclose(_resize(photo, scale=0.25, interpolation="area").mean((0, 1)),
                               photo.mean((0, 1)), atol=2e-3)


def test_blur_preserves_mean_and_reduces_detail(photo):
    out = blur(photo, sigma=2.0)
    assert out.shape == photo.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.mean((0, 1)), photo.mean((0, 1)), atol=2e-3)
    assert np.abs(np.diff(out, axis=1)).mean() < 0.6 * np.abs(np.diff(photo, axis=1)).mean()
    assert blur(photo, sigma=0.0) is photo
    impulse = np.zeros((41, 41, 3), np.float32)
    impulse[20, 20] = 1.0
    spread = blur(impulse, sigma=3.0)[..., 0]
    yy, xx = np.mgrid[0:41, 0:41]
    var_x = (spread * (xx - 20) ** 2).sum() / spread.sum()
    assert var_x == pytest.approx(9.0, rel=0.05)


def test_to_gray_uses_bt601_weights():
    pixel = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    np.testing.assert_allclose(to_gray(pixel), [[0.299, 0.587, 0.114]], atol=1e-6)


def test_crop_rounds_and_clamps(photo):
    assert crop(photo, (10, 20, 110, 70)).shape == (50, 100, 3)
    np.testing.assert_array_equal(crop(photo, (10.4, 19.6, 110.2, 70.0)), photo[20:70, 10:110])
    assert crop(photo, (-50, -50, 10, 10)).shape == (10, 10, 3)
    with pytest.raises(InputError, match="no pixels"):
        crop(photo, (700, 0, 800, 10))
