"""hzsr.warp: Numba kernel against the NumPy reference, and the sampling rule itself."""
import numpy as np
import pytest

from nodegraph.nodes.hzsr.warp import warp, warp_bilinear, warp_bilinear_reference

SHAPES = [(1, 1), (1, 13), (13, 1), (7, 9), (33, 17)]


def _random(shape, channels, flow_scale, seed):
    rng = np.random.default_rng(seed)
    image = rng.random(shape + channels, dtype=np.float32)
    flow = (rng.standard_normal(shape + (2,)) * flow_scale).astype(np.float32)
    return image, flow


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels", [(), (1,), (3,)])
@pytest.mark.parametrize("flow_scale", [0.7, 5.0, 100.0])  # 100 px: most targets leave the frame
def test_matches_reference(shape, channels, flow_scale):
    image, flow = _random(shape, channels, flow_scale, seed=sum(shape) + len(channels))
    out = warp_bilinear(image, flow)
    ref = warp_bilinear_reference(image, flow)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    # bilinear interpolation is a convex combination: never outside the input's range
    assert out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6


def test_zero_flow_is_identity():
    image, _ = _random((6, 8), (3,), 0, seed=1)
    np.testing.assert_array_equal(warp_bilinear(image, np.zeros((6, 8, 2), np.float32)), image)


def test_integer_flow_shifts_and_clamps():
    image, _ = _random((6, 8), (3,), 0, seed=2)
    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0] = 2.0  # read two columns to the right
    flow[..., 1] = -1.0  # and one row up
    out = warp_bilinear(image, flow)
    np.testing.assert_array_equal(out[1:, :6], image[:-1, 2:])
    # targets beyond the border read the border pixel
    np.testing.assert_array_equal(out[1:, 6], image[:-1, 7])
    np.testing.assert_array_equal(out[0, :6], image[0, 2:])


def test_half_pixel_is_mean_of_neighbours():
    image = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    flow = np.full((2, 2, 2), 0.5, np.float32)
    out = warp_bilinear(image, flow)
    assert out[0, 0] == pytest.approx(7.0 / 4)
    assert out[1, 1] == pytest.approx(4.0)  # clamped at the bottom-right corner


def test_flow_far_outside_reads_corner():
    image, _ = _random((5, 7), (3,), 0, seed=3)
    flow = np.full((5, 7, 2), 1e4, np.float32)
    out = warp_bilinear(image, flow)
    np.testing.assert_array_equal(out, np.broadcast_to(image[-1, -1], image.shape))
    out = warp_bilinear(image, -flow)
    np.testing.assert_array_equal(out, np.broadcast_to(image[0, 0], image.shape))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        warp_bilinear(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 2), np.float32))


def test_node_output():
    image, flow = _random((9, 11), (3,), 3.0, seed=4)
    out = warp(image, flow)
    assert out.dtype == np.float32 and out.shape == (9, 11, 3)
