"""hzsr.blend_raw_weight and hzsr.blend: M_blend from the linked masks, smoothing, feathering,
alpha blend."""
import numpy as np
import pytest

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.blend import (
    alpha_blend,
    alpha_blend_reference,
    blend,
    blend_raw_weight,
    feather_weight,
    raw_blend_weight,
    raw_blend_weight_reference,
)

DEFAULTS = spec_of(blend).default_params()
NO_SMOOTHING = dict(grow=0, smooth_sigma=0.0, feather=0.0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 15), (15, 1), (11, 14)])
@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_weight_matches_reference(shape, count):
    rng = np.random.default_rng(count + shape[1])
    masks = [rng.random(shape, dtype=np.float32) * 0.4 for _ in range(count)]
    out = raw_blend_weight(masks, shape)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, raw_blend_weight_reference(masks, shape), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 15), (15, 1), (11, 14)])
def test_alpha_blend_matches_reference(shape):
    rng = np.random.default_rng(shape[0])
    src, fused = (rng.random(shape + (3,), dtype=np.float32) for _ in range(2))
    weight = rng.random(shape, dtype=np.float32)
    out = alpha_blend(src, fused, weight)
    np.testing.assert_allclose(out, alpha_blend_reference(src, fused, weight), atol=1e-6, rtol=0)
    weight[:] = 0
    np.testing.assert_array_equal(alpha_blend(src, fused, weight), src)


def _images(shape=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.random(shape + (3,), dtype=np.float32) for _ in range(2))


def _blend_masks(src, fused, masks, coverage=None, overlap=None, **params):
    """The two nodes as the pipeline wires them."""
    return blend(src, fused, blend_raw_weight(src, *masks), coverage, overlap, **params)


def test_unlinked_masks_are_left_out():
    src, fused = _images()
    m = np.full(src.shape[:2], 0.25, np.float32)
    out = _blend_masks(src, fused, (m, None, None, None), **NO_SMOOTHING)
    np.testing.assert_allclose(out["M_blend"], 0.75, atol=1e-7)
    out = _blend_masks(src, fused, (m, None, m, None), None, 1.0, **NO_SMOOTHING)
    np.testing.assert_allclose(out["M_blend"], 0.5, atol=1e-7)
    np.testing.assert_allclose(out["image"], 0.5 * src + 0.5 * fused, atol=1e-6)
    out = _blend_masks(src, fused, (m, m, m, m), **NO_SMOOTHING)
    np.testing.assert_array_equal(out["M_blend"], 0.0)
    np.testing.assert_array_equal(out["image"], src)
    out = _blend_masks(src, fused, (None, None, None, None), **NO_SMOOTHING)
    np.testing.assert_array_equal(out["image"], fused)
    out = blend(src, fused, None, None, None, **NO_SMOOTHING)  # no raw weight linked: 1
    np.testing.assert_array_equal(out["image"], fused)


@pytest.mark.parametrize("grow", [0, 64])
def test_weight_stays_zero_beyond_the_smoothing_support(grow):
    """What hzsr.fusion_unet relies on to skip tiles: at the largest smooth_sigma, M_blend is
    exactly 0 farther than BLEND_SUPPORT_PX from any pixel where M_blend_raw > 0."""
    from nodegraph.nodes.hzsr.fusion_unet import BLEND_SUPPORT_PX
    sigma = spec_of(blend).params["smooth_sigma"].range[1]
    raw = np.zeros((900, 900), np.float32)
    raw[300:600, 300:600] = 1.0
    src, fused = _images((900, 900))
    weight = blend(src, fused, raw, None, None, grow=grow, smooth_sigma=sigma, feather=0.0)["M_blend"]
    far = np.ones(raw.shape, bool)
    far[300 - BLEND_SUPPORT_PX:600 + BLEND_SUPPORT_PX, 300 - BLEND_SUPPORT_PX:600 + BLEND_SUPPORT_PX] = False
    assert far.any() and weight[~far].max() > 0
    np.testing.assert_array_equal(weight[far], 0.0)


def test_overlap_zero_gives_src_exactly():
    src, fused = _images()
    out = blend(src, fused, None, None, 0.0, **DEFAULTS)
    np.testing.assert_array_equal(out["image"], src)
    np.testing.assert_array_equal(out["M_blend"], 0.0)


def test_feather_reaches_zero_at_the_edge_of_coverage_only():
    src, fused = _images((60, 80))
    coverage = np.ones((60, 80), np.float32)
    coverage[:, 60:] = 0  # the translation left no T data on the right
    out = blend(src, fused, None, coverage, 1.0, grow=0, smooth_sigma=0.0,
                feather=10.0 / 60)  # 10 px
    weight = out["M_blend"]
    assert weight.min() >= 0 and weight.max() <= 1 and np.all(np.isfinite(weight))
    np.testing.assert_array_equal(weight[:, 60:], 0.0)
    np.testing.assert_array_equal(out["image"][:, 60:], src[:, 60:])
    # the grid's own border is not an edge of T's field of view (hzsr.uncrop handles it)
    np.testing.assert_allclose(weight[0, :45], 1.0)
    np.testing.assert_allclose(weight[:, 0], 1.0)
    np.testing.assert_allclose(weight[30, 15:45], 1.0)
    ramp = weight[30, 50:60]  # rises towards the inside, monotonically
    assert np.all(np.diff(ramp) < 0) and ramp[-1] < 0.15


def test_feather_without_coverage_is_one_everywhere():
    np.testing.assert_array_equal(feather_weight(None, (20, 20), 4.0), 1.0)
    np.testing.assert_array_equal(feather_weight(np.ones((20, 20), np.float32), (20, 20), 4.0), 1.0)


def test_rejected_region_grows_before_blurring():
    src, fused = _images((40, 40))
    m = np.zeros((40, 40), np.float32)
    m[18:22, 18:22] = 1.0
    out = _blend_masks(src, fused, (m, None, None, None), grow=4, smooth_sigma=2.0, feather=0.0)
    weight = out["M_blend"]
    assert weight[18:22, 18:22].max() < 0.05  # the whole rejected block stays rejected
    assert weight[0:5, 0:5].min() > 0.99
    blurred_only = _blend_masks(src, fused, (m, None, None, None), grow=0, smooth_sigma=2.0,
                                feather=0.0)["M_blend"]
    assert blurred_only[18:22, 18:22].max() > 0.3  # what the erosion prevents


def test_feather_ramp_is_linear_along_a_straight_edge():
    coverage = np.ones((60, 80), np.float32)
    coverage[:, 40:] = 0
    w = feather_weight(coverage, (60, 80), 10.0)  # r = 5: the ramp spans 11 px
    np.testing.assert_allclose(w[30, 27:40], np.minimum(np.arange(13, 0, -1) / 11.0, 1.0), atol=1e-6)
    np.testing.assert_array_equal(w[30, 40:], 0.0)


# Strip versus whole (both nodes are declared local, nodegraph/execute.py runs them in strips).
# Tolerance 1e-6 (about 16 float32 ulps at 1): a strip recomputes every pixel with the same
# operations, but OpenCV may pick other vector paths for a short strip than for the whole
# image, which may round differently in the last bits.
STRIP_ROWS = [1, 2, 7, 16, 29, 48]  # 61 and 62 rows: last strips of 1-2 rows, and one strip


def _blend_inputs(rows, rng):
    shape = (rows, 45)
    raw = 0.5 + 0.5 * rng.random(shape, dtype=np.float32)
    raw[rows // 3: rows // 3 + 5] = 0.0  # a rejected band: erosion and smoothing reach across
    raw[-9:-6, 20:30] = 0.0
    coverage = np.ones(shape, np.float32)
    coverage[: rows // 4, :10] = 0.0  # T does not cover a corner: the feather ramp
    yy, xx = np.mgrid[:rows, :45]
    coverage[(yy - rows // 2) ** 2 + (xx - 44) ** 2 < 49] = 0.0  # nor a half disc at the side
    return {"src": rng.random(shape + (3,), dtype=np.float32),
            "fused": rng.random(shape + (3,), dtype=np.float32),
            "M_blend_raw": raw, "coverage": coverage, "overlap": 1.0}


@pytest.mark.parametrize("strip_rows", STRIP_ROWS)
@pytest.mark.parametrize("rows", [61, 62])
@pytest.mark.parametrize("params", [{}, dict(grow=3, smooth_sigma=2.5, feather=0.3),
                                    dict(grow=0, smooth_sigma=0.5, feather=0.4),
                                    dict(grow=0, smooth_sigma=0.0, feather=0.0)])
def test_blend_in_strips_equals_whole(rows, strip_rows, params):
    from strip_check import assert_strips_match_whole

    inputs = _blend_inputs(rows, np.random.default_rng(rows + strip_rows))
    records = assert_strips_match_whole(spec_of(blend), inputs, params, strip_rows, atol=1e-6)
    assert records["node"].status == "ran"


@pytest.mark.parametrize("strip_rows", STRIP_ROWS)
def test_blend_without_optional_inputs_in_strips_equals_whole(strip_rows):
    from strip_check import assert_strips_match_whole

    inputs = _blend_inputs(61, np.random.default_rng(strip_rows))
    inputs = {"src": inputs["src"], "fused": inputs["fused"]}
    assert_strips_match_whole(spec_of(blend), inputs, None, strip_rows, atol=1e-6)


@pytest.mark.parametrize("strip_rows", STRIP_ROWS)
@pytest.mark.parametrize("linked", [("M_occ",), ("M_occ", "M_defocus", "M_flow", "M_reject")])
def test_raw_weight_in_strips_equals_whole(strip_rows, linked):
    from strip_check import assert_strips_match_whole

    rng = np.random.default_rng(strip_rows)
    inputs = {"src": rng.random((61, 45, 3), dtype=np.float32),
              **{name: rng.random((61, 45), dtype=np.float32) * 0.4 for name in linked}}
    assert_strips_match_whole(spec_of(blend_raw_weight), inputs, None, strip_rows, atol=1e-6)


def test_blend_halo_covers_the_smoothing_and_not_the_feather():
    """The feather ramp reads the whole coverage map (hzsr.blend gets it whole in strips; the
    strip tests above check it with a ramp across strip edges), so only the smoothing's reach
    is the halo."""
    from nodegraph.nodes.hzsr.blend import blend_halo

    # Gaussian of sigma 2.5: OpenCV's float kernel reaches round(4 x 2.5) = 10 px; grow 3
    assert blend_halo(dict(grow=3, smooth_sigma=2.5, feather=0.0), (100, 200)) >= 13
    assert blend_halo(dict(grow=3, smooth_sigma=2.5, feather=0.3), (100, 200)) == \
        blend_halo(dict(grow=3, smooth_sigma=2.5, feather=0.0), (100, 200))


@pytest.mark.parametrize("rows", [(0, 60), (0, 7), (9, 31), (15, 31), (40, 60)])
def test_feather_of_rows_equals_the_rows_of_the_whole_feather(rows):
    """feather_weight over some rows of the whole coverage map (8-bit, as hzsr.align stores
    it) equals those rows of the map's whole ramp."""
    coverage = np.full((60, 80), 255, np.uint8)
    yy, xx = np.mgrid[:60, :80]
    coverage[(yy - 5) ** 2 + (xx - 20) ** 2 < 64] = 0  # uncovered around (20, 5)
    coverage[45:, 70:] = 128  # partly covered: counts as covered (> 0.5)
    whole = feather_weight(coverage, (60, 80), 10.0)
    part = feather_weight(coverage, (rows[1] - rows[0], 80), 10.0, rows)
    np.testing.assert_array_equal(part, whole[rows[0]:rows[1]])
    assert (whole < 1).any() and (whole > 0).any()
