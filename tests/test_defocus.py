"""hzsr.defocus: k-means focus flow and the per-pixel sigmoid M_defocus."""
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.defocus import (
    defocus,
    defocus_mask,
    defocus_mask_reference,
    focus_flow,
    focus_roi_on_grid,
)

DEFAULTS = spec_of(defocus).default_params()


@pytest.mark.parametrize("shape", [(1, 1), (1, 23), (23, 1), (10, 15)])
@pytest.mark.parametrize("scale", [0.5, 3.0, 1e3])  # 1e3: exp would overflow without care
def test_matches_reference(shape, scale):
    rng = np.random.default_rng(shape[1])
    flow = (rng.standard_normal(shape + (2,)) * scale).astype(np.float32)
    focus = np.array([0.3, -0.2], np.float32)
    out = defocus_mask(flow, focus, 4.0, 1.0)
    ref = defocus_mask_reference(flow, focus, 4.0, 1.0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_sigmoid_values():
    flow = np.array([[[2.0, 0.0], [0.0, 0.0], [3.0, 0.0]]], np.float32)  # d^2 = 4, 0, 9
    out = defocus_mask(flow, np.zeros(2, np.float32), 4.0, 1.0)
    np.testing.assert_allclose(out[0], [0.5, 1 / (1 + np.exp(4)), 1 / (1 + np.exp(-5))], atol=1e-6)


def _two_layers(shape=(60, 80), near=(20.0, -1.0), far=(1.0, 0.5)):  # 19 px of disparity apart
    """A background layer (in focus, fills the centre) and a near layer along the left side."""
    rng = np.random.default_rng(1)
    flow = np.broadcast_to(np.float32(far), shape + (2,)).copy()
    flow[:, :15] = near
    flow += rng.normal(0, 0.1, flow.shape).astype(np.float32)
    return flow


def test_in_focus_layer_is_zero_and_far_layer_is_one():
    flow = _two_layers()
    m = defocus(flow, None, None, **DEFAULTS)
    assert m[:, 20:].max() < 0.05
    assert m[:, :15].min() > 0.95


def test_roi_on_the_other_layer_swaps_the_mask():
    flow = _two_layers()
    m = defocus(flow, (0.0, 10.0, 14.0, 50.0), None, **DEFAULTS)
    assert m[:, :15].max() < 0.05 and m[:, 20:].min() > 0.95


def test_largest_cluster_wins_inside_the_roi():
    flow = _two_layers()
    # ROI covering 10 columns of the near layer and 30 of the background
    focus = focus_flow(flow, (5, 0, 45, 60), k=3, max_samples=20000)
    np.testing.assert_allclose(focus, (1.0, 0.5), atol=0.1)


def test_shift_maps_t_pixels_onto_the_grid():
    # ROI given in T pixels; T pixel p sits at p + shift on the working grid
    assert focus_roi_on_grid((60, 80), (10.0, 20.0, 30.0, 40.0), (5.0, -3.0)) == (15, 17, 35, 37)
    assert focus_roi_on_grid((60, 80), None, None) == (20, 15, 60, 45)
    assert focus_roi_on_grid((60, 80), (70.0, 0.0, 100.0, 10.0), (5.0, 0.0)) == (75, 0, 80, 10)


def test_roi_outside_the_grid_warns_and_falls_back():
    with pytest.warns(UserWarning, match="outside"):
        assert focus_roi_on_grid((60, 80), (0.0, 0.0, 10.0, 10.0), (500.0, 0.0)) == (20, 15, 60, 45)


def test_tiny_roi_and_subsampling():
    flow = _two_layers()
    assert focus_flow(flow, (30, 30, 31, 31), k=3, max_samples=100).shape == (2,)
    a = focus_flow(flow, (0, 0, 80, 60), k=3, max_samples=100)
    b = focus_flow(flow, (0, 0, 80, 60), k=3, max_samples=100)
    np.testing.assert_array_equal(a, b)  # fixed seed: reproducible
    np.testing.assert_allclose(a, (1.0, 0.5), atol=0.1)
