"""hzsr.reject: alignment rejection M_reject at W's optical resolution."""
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.reject import (
    optical_size,
    reject,
    reject_mask,
    reject_mask_reference,
)

DEFAULTS = spec_of(reject).default_params()


@pytest.mark.parametrize("shape", [(1, 1), (1, 21), (21, 1), (9, 14), (30, 25)])
@pytest.mark.parametrize("patch", [1, 3, 4, 7])
def test_matches_reference(shape, patch):
    rng = np.random.default_rng(shape[0] + 3 * shape[1] + patch)
    y_src = rng.random(shape, dtype=np.float32)
    y_ref = np.clip(y_src + rng.normal(0, 0.2, shape), 0, 1).astype(np.float32)
    out = reject_mask(y_src, y_ref, patch, 1e-3)
    ref = reject_mask_reference(y_src, y_ref, patch, 1e-3)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("block_rows", [1, 2, 5, 8])
@pytest.mark.parametrize("patch", [3, 7])
def test_blocks_of_rows_give_the_whole_image_result(monkeypatch, block_rows, patch):
    from nodegraph.nodes.hzsr import reject as module

    rng = np.random.default_rng(block_rows + patch)
    y_src = rng.random((23, 17), dtype=np.float32)
    y_ref = np.clip(y_src + rng.normal(0, 0.2, y_src.shape), 0, 1).astype(np.float32)
    whole = reject_mask(y_src, y_ref, patch, 1e-3)  # 23 rows: one block
    monkeypatch.setattr(module, "BLOCK_ROWS", block_rows)
    np.testing.assert_array_equal(reject_mask(y_src, y_ref, patch, 1e-3), whole)


def test_zero_variance_patches():
    flat = np.full((8, 9), 0.4, np.float32)
    np.testing.assert_array_equal(reject_mask(flat, flat, 5, 1e-3), 0.0)
    # a constant offset (colour-match residual) is removed with the patch means
    np.testing.assert_allclose(reject_mask(flat, flat + 0.2, 5, 1e-3), 0.0, atol=1e-6)
    # flat W against a textured ref: only eps0 is left in the denominator
    ref = flat.copy()
    ref[::2] += 0.1
    m = reject_mask(flat, ref, 3, 1e-3)
    # every 3x3 patch holds 3 or 6 raised pixels of 9: variance 0.1^2 * 2/9
    np.testing.assert_allclose(m, 1 - np.exp(-(0.01 * 2 / 9) / 1e-3), atol=1e-6)


def test_identical_images_are_zero():
    rng = np.random.default_rng(0)
    y = rng.random((20, 20), dtype=np.float32)
    np.testing.assert_array_equal(reject_mask(y, y, 5, 1e-3), 0.0)


def _texture(shape, seed):
    rng = np.random.default_rng(seed)
    import cv2
    return cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 1.5) * 4 - 1.5


def test_misaligned_patch_is_rejected():
    y = np.clip(_texture((48, 48), 1), 0, 1).astype(np.float32)
    ref = y.copy()
    ref[16:32, 16:32] = np.clip(_texture((16, 16), 2), 0, 1)  # a wrongly aligned block
    m = reject_mask(y, ref, 5, 1e-3)
    assert np.median(m[20:28, 20:28]) > 0.6
    assert m[:, 40:].max() < 1e-6


def test_optical_size():
    assert optical_size((300, 400), (0.0, 0.0, 100.0, 75.0)) == (100, 75)
    assert optical_size((300, 400), (0.0, 0.0, 400.0, 300.0)) is None


def test_node_downsamples_to_w_resolution():
    rng = np.random.default_rng(3)
    shape = (60, 90)
    rgb = rng.random(shape + (3,), dtype=np.float32)
    crop = (10.0, 5.0, 40.0, 25.0)  # factor 3
    m = reject(rgb, rgb, crop, **DEFAULTS)
    assert m.shape == shape and m.dtype == np.float32
    np.testing.assert_array_equal(m, 0.0)
    # pixel noise finer than W's resolution is averaged away before comparing
    noisy = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1).astype(np.float32)
    assert reject(rgb, noisy, crop, **DEFAULTS).max() < reject(rgb, noisy, (0.0, 0.0, 90.0, 60.0),
                                                             **DEFAULTS).max()
