"""hzsr.flow_uncertainty: M_flow from a backend's flow_std, or from the estimated S."""
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.flow_uncertainty import (
    estimated_flow_mask,
    estimated_flow_mask_reference,
    flow_uncertainty,
)
from nodegraph.nodes.ops.flow_fields import flow_unit

PARAMS = dict(s_max=2.0, sigma_n=0.01, g0=0.0025)


def _smooth_image(shape, seed):
    # a band-limited random texture: gradients of ~0.03/px like a real photo, not white noise
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.zeros(shape, np.float32)
    for _ in range(6):
        fx, fy, phase = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0, 6)
        image += np.sin(fx * xx + fy * yy + phase).astype(np.float32)
    return (0.5 + 0.08 * image).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 19), (19, 1), (9, 13), (40, 27)])
@pytest.mark.parametrize("window", [1, 3, 8])
@pytest.mark.parametrize("flow_scale", [0.5, 50.0])  # 50 px: most targets leave the frame
def test_matches_reference(shape, window, flow_scale):
    rng = np.random.default_rng(shape[0] * 7 + shape[1] + window)
    y_src = _smooth_image(shape, seed=window)
    y_ref = y_src + rng.normal(0, 0.02, shape).astype(np.float32)
    fwd = rng.normal(0, flow_scale, shape + (2,)).astype(np.float32)
    bwd = (-fwd + rng.normal(0, 0.3, shape + (2,))).astype(np.float32)
    # 1-pixel windows are flat and large flows spread widely: keep S below saturation
    params = dict(PARAMS, s_max=20.0 * flow_scale / 0.5)
    out = estimated_flow_mask(fwd, bwd, y_src, y_ref, window=window, **params)
    ref = estimated_flow_mask_reference(fwd, bwd, y_src, y_ref, window=window, **params)
    assert out.dtype == np.float32 and out.shape == shape
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    assert 0 < out.mean() < 0.9  # the comparison is not between two saturated maps


def test_constant_image_and_zero_flow_is_finite():
    shape = (16, 16)
    zero_flow = np.zeros(shape + (2,), np.float32)
    flat = np.full(shape, 0.3, np.float32)
    m = estimated_flow_mask(zero_flow, zero_flow, flat, flat, window=8, **PARAMS)
    # only the aperture term is left: sigma_n * sqrt(2) / (g0 * sqrt(64)) px
    s = PARAMS["sigma_n"] * np.sqrt(2) / (PARAMS["g0"] * 8)
    np.testing.assert_allclose(m, s / PARAMS["s_max"], atol=1e-6)


def test_texture_is_certain_and_flat_or_boundary_is_not():
    shape = (64, 64)
    y = _smooth_image(shape, seed=3)
    fwd = np.zeros(shape + (2,), np.float32)
    bwd = np.zeros(shape + (2,), np.float32)
    textured = estimated_flow_mask(fwd, bwd, y, y, window=8, **PARAMS)
    assert textured.max() < 0.25 and np.median(textured) < 0.12
    flat = np.full(shape, 0.5, np.float32)
    assert estimated_flow_mask(fwd, bwd, flat, flat, window=8, **PARAMS).min() > 0.3
    # a motion boundary: left half moves 6 px, right half does not (fwd/bwd consistent)
    fwd[:, :32, 0] = 6.0
    bwd[:, 6:38, 0] = -6.0
    boundary = estimated_flow_mask(fwd, bwd, y, y, window=8, **PARAMS)
    assert boundary[:, 28:36].min() > 0.4 and boundary[:, :16].max() < 0.25


def test_straight_edges_are_uncertain_along_the_edge():
    # vertical stripes pin the flow down in x only (aperture problem): a tensor with one
    # small eigenvalue gives sigma_n^2 / (g0^2 n) in y alone, far above 2-D texture
    shape = (64, 64)
    zero = np.zeros(shape + (2,), np.float32)
    stripes = np.broadcast_to(0.5 + 0.2 * np.sin(np.arange(64, dtype=np.float32) * 0.8), shape)
    stripes = np.ascontiguousarray(stripes, dtype=np.float32)
    edges = estimated_flow_mask(zero, zero, stripes, stripes, window=8, **PARAMS)
    texture = _smooth_image(shape, seed=4)
    textured = estimated_flow_mask(zero, zero, texture, texture, window=8, **PARAMS)
    s_edge = PARAMS["sigma_n"] / (PARAMS["g0"] * 8)  # the y term alone, px
    assert np.median(edges) > 0.9 * s_edge / PARAMS["s_max"]
    assert np.median(edges) > 2 * np.median(textured)


def test_structure_of_either_image_counts():
    # symmetric linearisation: a flat (blurry) src with a textured ref is not texture-less
    shape = (32, 32)
    zero = np.zeros(shape + (2,), np.float32)
    flat = np.full(shape, 0.5, np.float32)
    texture = _smooth_image(shape, seed=6)
    one_sided = estimated_flow_mask(zero, zero, flat, texture, window=8, **PARAMS)
    neither = estimated_flow_mask(zero, zero, flat, flat, window=8, **PARAMS)
    assert np.median(one_sided) < 0.5 * np.median(neither)


def test_flow_std_mode():
    shape = (5, 6)
    std = np.linspace(0, 10, 30, dtype=np.float32).reshape(shape)
    zero = np.zeros(shape + (2,), np.float32)
    image = np.zeros(shape + (3,), np.float32)
    m = flow_uncertainty(zero, zero, image, image, std, s_max=5.0)
    assert m.dtype == np.float32
    s_max_px = 5.0 * flow_unit(shape)  # s_max is in px of the flow's reference resolution
    np.testing.assert_allclose(m, np.minimum(std, s_max_px) / s_max_px, atol=1e-6)


def test_node_estimated_mode():
    shape = (12, 14)
    y = _smooth_image(shape, seed=5)
    rgb = np.repeat(y[..., None], 3, axis=2)
    zero = np.zeros(shape + (2,), np.float32)
    m = flow_uncertainty(zero, zero, rgb, rgb, **spec_of(flow_uncertainty).default_params())
    s_max = spec_of(flow_uncertainty).default_params()["s_max"]
    np.testing.assert_allclose(m, estimated_flow_mask(zero, zero, y, y, s_max * flow_unit(shape), 8,
                                                      0.01, 0.0025),
                               atol=1e-6)
