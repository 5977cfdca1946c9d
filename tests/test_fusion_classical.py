"""hzsr.fusion_classical: detail transfer on luminance."""
import cv2
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.fusion_classical import (
    detail_transfer,
    detail_transfer_reference,
    estimate_optical_sigma,
    fusion_classical,
)
from nodegraph.nodes.ops.luminance import luminance

DEFAULTS = spec_of(fusion_classical).default_params()


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (12, 19)])
@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_matches_reference(shape, sigma):
    rng = np.random.default_rng(shape[1])
    y_src, y_ref, m = (rng.random(shape, dtype=np.float32) for _ in range(3))
    out = detail_transfer(y_src, y_ref, m, sigma, 0.8)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, detail_transfer_reference(y_src, y_ref, m, sigma, 0.8),
                               atol=1e-5, rtol=0)


def test_adds_refs_detail_above_the_low_pass_to_src():
    rng = np.random.default_rng(1)
    y_src = cv2.GaussianBlur(rng.random((40, 40), dtype=np.float32), (0, 0), 4)
    y_ref = rng.random((40, 40), dtype=np.float32)
    out = detail_transfer(y_src, y_ref, np.zeros_like(y_src), 1.5, 1.0)
    low_ref = cv2.GaussianBlur(y_ref, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(out, y_src + y_ref - low_ref, atol=1e-5)


@pytest.mark.parametrize("true_sigma", [1.0, 2.0, 4.0])
def test_estimates_ws_blur_relative_to_t(true_sigma):
    import skimage.data
    y_ref = skimage.data.camera().astype(np.float32) / 255
    y_src = cv2.GaussianBlur(y_ref, (0, 0), true_sigma, borderType=cv2.BORDER_REFLECT)
    y_src += np.random.default_rng(0).normal(0, 0.01, y_src.shape).astype(np.float32)
    m_occ = np.zeros_like(y_src)
    assert estimate_optical_sigma(y_src, y_ref, m_occ) == true_sigma
    m_occ[:, :300] = 1.0  # the occluded part is left out of the fit
    y_src[:, :300] = 0.0
    assert estimate_optical_sigma(y_src, y_ref, m_occ) == true_sigma


def test_occluded_pixels_keep_src():
    rng = np.random.default_rng(2)
    y_src, y_ref = (rng.random((10, 10), dtype=np.float32) for _ in range(2))
    np.testing.assert_array_equal(detail_transfer(y_src, y_ref, np.ones_like(y_src), 1.5, 1.0),
                                  y_src)


def test_node_keeps_chroma_and_identity():
    rng = np.random.default_rng(3)
    src = rng.uniform(0.2, 0.8, (16, 20, 3)).astype(np.float32)
    m = np.zeros((16, 20), np.float32)
    # a flat ref carries no detail, so nothing changes
    flat = np.full_like(src, 0.5)
    np.testing.assert_allclose(fusion_classical(src, flat, m, **DEFAULTS), src, atol=1e-6)
    ref = rng.uniform(0.2, 0.8, (16, 20, 3)).astype(np.float32)
    fused = fusion_classical(src, ref, m, **DEFAULTS)
    assert fused.dtype == np.float32 and fused.shape == src.shape
    # chroma kept: the change is the same in R, G and B wherever nothing was clipped
    change = fused - src
    unclipped = np.all((fused > 0) & (fused < 1), axis=-1)
    np.testing.assert_allclose(change[..., 0][unclipped], change[..., 2][unclipped], atol=1e-6)
    assert np.abs(luminance(fused) - luminance(src)).max() > 0.05
