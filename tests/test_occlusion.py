"""hzsr.occlusion: forward-backward consistency mask M_occ."""
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.occlusion import (
    occlusion,
    occlusion_mask,
    occlusion_mask_reference,
)
from nodegraph.nodes.ops.flow_fields import flow_unit


def _flows(shape, scale, seed):
    rng = np.random.default_rng(seed)
    fwd = (rng.standard_normal(shape + (2,)) * scale).astype(np.float32)
    bwd = (rng.standard_normal(shape + (2,)) * scale).astype(np.float32)
    return fwd, bwd


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (8, 11), (31, 20)])
@pytest.mark.parametrize("scale", [0.3, 4.0, 60.0])
@pytest.mark.parametrize("out_of_frame", [True, False])
def test_matches_reference(shape, scale, out_of_frame):
    fwd, bwd = _flows(shape, scale, seed=shape[0] * 31 + shape[1])
    s = 0.5 / scale  # keeps many values strictly between 0 and 1
    out = occlusion_mask(fwd, bwd, s, out_of_frame)
    ref = occlusion_mask_reference(fwd, bwd, s, out_of_frame)
    assert out.dtype == np.float32 and out.shape == shape
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def _constant(shape, vector):
    return np.broadcast_to(np.asarray(vector, np.float32), shape + (2,)).copy()


def test_consistent_constant_flows_are_not_occluded():
    shape = (20, 30)
    fwd = _constant(shape, (3.0, -2.0))
    bwd = _constant(shape, (-3.0, 2.0))
    np.testing.assert_array_equal(occlusion_mask(fwd, bwd, 0.5, False), 0.0)
    m = occlusion_mask(fwd, bwd, 0.5, True)
    # x + (3, -2) leaves the frame in the last 3 columns and the first 2 rows
    np.testing.assert_array_equal(m[2:, :-3], 0.0)
    np.testing.assert_array_equal(m[:2, :], 1.0)
    np.testing.assert_array_equal(m[:, -3:], 1.0)


@pytest.mark.parametrize("s", [0.25, 0.5, 2.0])
def test_disagreement_beyond_one_over_s_is_occluded(s):
    shape = (12, 12)
    fwd = _constant(shape, (1.0, 1.0))
    bwd = _constant(shape, (-1.0 + 1.01 / s, -1.0))  # round trip misses by 1.01/s px
    np.testing.assert_array_equal(occlusion_mask(fwd, bwd, s, False), 1.0)
    bwd = _constant(shape, (-1.0 + 0.5 / s, -1.0))  # misses by 0.5/s px
    np.testing.assert_allclose(occlusion_mask(fwd, bwd, s, False), 0.5, atol=1e-6)


def test_backward_flow_is_read_at_the_forward_target():
    # F_bwd holds the right inverse only at x + F_fwd(x): sampling it at x would fail
    shape = (10, 10)
    fwd = _constant(shape, (2.0, 0.0))
    bwd = np.zeros(shape + (2,), np.float32)
    bwd[:, :, 0] = -np.arange(10, dtype=np.float32)[None, :] / 3.0
    # at column j the target is j + 2, where F_bwd = -(j + 2) / 3: consistent only at j = 4
    # (reading F_bwd at x instead would leave 2 - 4/3 there)
    m = occlusion_mask(fwd, bwd, 1.0, False)
    np.testing.assert_allclose(m[:, 4], 0.0, atol=1e-6)
    np.testing.assert_allclose(m[:, 3], 1.0 / 3.0, atol=1e-6)


def test_node():
    fwd, bwd = _flows((9, 12), 2.0, seed=5)
    m = occlusion(fwd, bwd, **spec_of(occlusion).default_params())
    s = spec_of(occlusion).default_params()["s"]
    # s is per px of the flow's reference resolution: per full-resolution px it is s / unit
    np.testing.assert_array_equal(m, occlusion_mask(fwd, bwd, s / flow_unit((9, 12)), True))
