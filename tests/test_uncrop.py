"""hzsr.uncrop: base = bicubic W view; T's detail lands at the right place and scale."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.uncrop import uncrop
from nodegraph.nodes.ops.geometry import central_rect, resample_region
from nodegraph.types import compact_to_float

RATIO = 2.0


def _setup(tele_wh=(256, 256)):
    scene = skimage.data.astronaut().astype(np.float32) / 255.0
    wide = cv2.resize(scene, (256, 256), interpolation=cv2.INTER_AREA)
    crop = central_rect(256, 256, RATIO)
    src = resample_region(wide, crop, tele_wh)
    return wide, src, crop


def _working_to_output(u, v, crop, working_wh, zoom):
    """Where working-grid pixel centre (u, v) lands on the output grid (both centre-aligned)."""
    x0, y0, x1, y1 = crop
    wx = x0 + (u + 0.5) * (x1 - x0) / working_wh[0] - 0.5
    wy = y0 + (v + 0.5) * (y1 - y0) / working_wh[1] - 0.5
    vx0, vy0, vx1, vy1 = central_rect(256, 256, zoom)
    return ((wx + 0.5 - vx0) * 256 / (vx1 - vx0) - 0.5, (wy + 0.5 - vy0) * 256 / (vy1 - vy0) - 0.5)


@pytest.mark.parametrize("zoom", [1.0, 1.5, 2.0, 3.0, 5.0])
def test_unchanged_blend_gives_bicubic_view_of_wide(zoom):
    wide, src, crop = _setup()
    out = uncrop(wide, src.copy(), crop, RATIO, zoom=zoom)
    expected = resample_region(wide, central_rect(256, 256, zoom), (256, 256))
    assert out.shape == wide.shape and out.dtype == np.float32
    if zoom == RATIO:  # the working grid is the output grid
        np.testing.assert_array_equal(out, expected)
    # elsewhere W's crop is interpolated a second time inside T's region: close, not equal
    assert np.abs(out - expected).mean() < 0.01
    if zoom < RATIO:  # outside T's region: W's bicubic view (warped from the part of W it
        # reads, so OpenCV's float32 sample positions move by whole pixels: their last bits differ)
        np.testing.assert_allclose(out[:20], expected[:20], atol=1e-5, rtol=0)


@pytest.mark.parametrize("zoom", [1.0, 1.5, 2.0, 3.0])
def test_eight_bit_wide_gives_the_same_output_as_its_float_conversion(zoom):
    """W as decoded (uint8, a CompactImage) is converted only where the view reads it."""
    wide, src, crop = _setup()
    wide8 = np.rint(wide * 255).astype(np.uint8)
    blended = np.clip(src + 0.1, 0, 1)
    got = uncrop(wide8, blended, crop, RATIO, zoom=zoom)
    expected = uncrop(compact_to_float(wide8), blended, crop, RATIO, zoom=zoom)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rows", [(0, 256), (0, 1), (100, 131), (255, 256)])
@pytest.mark.parametrize("rect", [(64.0, 64.0, 192.0, 192.0), (0.0, 0.0, 256.0, 256.0), (3.3, 250.1, 9.7, 255.9)])
def test_resample_region_of_the_pixels_read_equals_the_whole(rows, rect):
    """resample_region with ``to_float`` converts only the part of the image the rows read:
    against a plain conversion of the whole image, on random 8-bit samples (edges included).
    Tolerance: OpenCV computes sample positions in float32, which moving the origin by whole
    pixels changes in the last bit (half an ulp: 8e-6 px at 256 px); bicubic weights turn that
    into at most ~2.5x as much on samples in [0, 1] whose neighbours differ by up to 1 (noise).
    A wrong part (a missing pixel, a moved origin) errs by ~0.1-1."""
    image = np.random.default_rng(5).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    whole = resample_region(compact_to_float(image), rect, (200, 256), rows=rows)
    part = resample_region(image, rect, (200, 256), rows=rows, to_float=compact_to_float)
    assert part.shape == whole.shape == (rows[1] - rows[0], 200, 3)
    np.testing.assert_allclose(part, whole, atol=3e-5, rtol=0)


def test_zoom_defaults_to_ratio():
    wide, src, crop = _setup()
    np.testing.assert_array_equal(uncrop(wide, src, crop, RATIO, zoom=None),
                                  uncrop(wide, src, crop, RATIO, zoom=RATIO))


@pytest.mark.parametrize("zoom", [1.25, 2.0, 3.0])
@pytest.mark.parametrize("tele_wh", [(256, 256), (320, 320)])
def test_known_delta_lands_at_right_place_and_scale(zoom, tele_wh):
    wide, src, crop = _setup(tele_wh)
    u0, v0 = 0.45 * tele_wh[0], 0.3 * tele_wh[1]
    yy, xx = np.mgrid[0:tele_wh[1], 0:tele_wh[0]].astype(np.float32)
    sigma = 6.0  # working px
    bump = 0.2 * np.exp(-((xx - u0) ** 2 + (yy - v0) ** 2) / (2 * sigma**2))
    blended = src.copy()
    blended[..., 1] += bump  # the green channel only; src green stays away from 1 below
    out = uncrop(wide, blended, crop, RATIO, zoom=zoom)
    base = uncrop(wide, src, crop, RATIO, zoom=zoom)  # resampling is linear: out - base = R(bump)
    diff = (out - base)[..., 1]
    np.testing.assert_allclose((out - base)[..., 0], 0.0, atol=1e-6)
    weight = np.abs(diff)
    oy, ox = np.mgrid[0:256, 0:256]
    centre = ((weight * ox).sum() / weight.sum(), (weight * oy).sum() / weight.sum())
    expected = _working_to_output(u0, v0, crop, tele_wh, zoom)
    assert np.hypot(centre[0] - expected[0], centre[1] - expected[1]) < 0.1
    # Output px per working px = (256 / view width) / (working width / crop width).
    density = (zoom * 256 / 256) / (tele_wh[0] / (crop[2] - crop[0]))
    assert diff.sum() == pytest.approx(bump.sum() * density**2, rel=0.02)
    assert diff.max() == pytest.approx(0.2, rel=0.05 if density >= 1 else 0.5)


def test_delta_outside_view_is_dropped_and_output_in_range():
    wide, src, crop = _setup()
    blended = np.clip(src + 0.5, 0, 1)
    out = uncrop(wide, blended, crop, RATIO, zoom=1.0)
    base = resample_region(wide, central_rect(256, 256, 1.0), (256, 256))
    # At zoom 1 T covers the central half only: the outer ring is plain W.
    np.testing.assert_array_equal(out[:60], base[:60])
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_zoom_below_one_rejected():
    wide, src, crop = _setup()
    with pytest.raises(InputError, match="zoom"):
        uncrop(wide, src, crop, RATIO, zoom=0.5)


def test_detail_fades_out_before_the_edge_of_t_below_the_ratio():
    from nodegraph.nodes.hzsr.uncrop import uncrop_image
    rng = np.random.default_rng(5)
    wide = rng.random((120, 160, 3)).astype(np.float32) * 0.3 + 0.3  # no clipping at 0 or 1
    src = np.full((120, 160, 3), 0.5, np.float32)
    blended = src + 0.2  # a constant detail over all of T
    crop = (40.0, 30.0, 120.0, 90.0)  # ratio 2
    at_ratio = uncrop_image(wide, blended, crop, zoom=2.0, feather=0.05)
    base = uncrop_image(wide, src, crop, zoom=2.0)
    np.testing.assert_allclose((at_ratio - base)[2:-2, 2:-2], 0.2, atol=1e-4)  # no ramp: no seam there
    below = uncrop_image(wide, blended, crop, zoom=1.25, feather=0.05) - \
        uncrop_image(wide, src, crop, zoom=1.25, feather=0.05)
    row = below[60, :, 0]
    inside = np.nonzero(row > 1e-3)[0]
    assert row[inside[0]] < 0.1 and row[inside[-1]] < 0.1  # starts near 0 at T's edge
    assert abs(row[80] - 0.2) < 1e-3  # full detail in the middle
    assert np.all(np.diff(row[inside[0]: inside[0] + 5]) > 0)  # a ramp, not a step


def test_turned_footprint_places_detail_and_pixel_size_tele_keeps_density():
    from nodegraph.nodes.hzsr.uncrop import uncrop_image
    from nodegraph.nodes.ops.geometry import rect_to_edge_matrix
    wide, src, crop = _setup((256, 256))
    # the same footprint as ``crop`` given as a matrix: identical output
    footprint = rect_to_edge_matrix(crop, (256, 256))
    blended = np.clip(src + 0.1, 0, 1)
    np.testing.assert_allclose(uncrop_image(wide, blended, crop, 2.0, footprint=footprint),
                               uncrop_image(wide, blended, crop, 2.0), atol=1e-5)
    # T's grid at 2x W's density: pixel_size tele renders the view at that density
    big = uncrop_image(wide, blended, crop, 1.5, pixel_size="tele")
    assert big.shape == (round(256 / 1.5 * 2), round(256 / 1.5 * 2), 3)
    # a footprint turned by 3 degrees about T's centre: a dot lands where the matrix says
    c, s_ = np.cos(np.radians(3)), np.sin(np.radians(3))
    turn = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1.0]])
    centre = np.array([[1, 0, 128.0], [0, 1, 128.0], [0, 0, 1]])
    turned = footprint @ centre @ turn @ np.linalg.inv(centre)
    dot = src.copy()
    dot[96:101, 176:181, 1] += 0.3
    out = uncrop_image(wide, dot, crop, 2.0, footprint=turned) - \
        uncrop_image(wide, src, crop, 2.0, footprint=turned)
    weight = np.abs(out[..., 1])
    oy, ox = np.mgrid[0:256, 0:256]
    got = ((weight * ox).sum() / weight.sum(), (weight * oy).sum() / weight.sum())
    # T pixel centre (178, 98) -> W edge coordinates -> output pixel centre (zoom 2 = T's grid)
    w_edge = turned @ np.array([178.5, 98.5, 1.0])
    expected = (w_edge[0] - 64.0) * 2 - 0.5, (w_edge[1] - 64.0) * 2 - 0.5
    assert np.hypot(got[0] - expected[0], got[1] - expected[1]) < 0.2


@pytest.mark.parametrize("zoom", [1.0, 2.0, 3.0])
def test_inputs_are_left_untouched(zoom):
    """The output is made in place only on arrays uncrop made itself (at zoom = ratio the
    resampling hands back the blended input)."""
    wide, src, crop = _setup()
    blended = np.clip(src + 0.3, 0.0, 1.5).astype(np.float32)  # out of range: clipping shows
    kept = blended.copy(), wide.copy()
    out = uncrop(wide, blended, crop, RATIO, zoom=zoom)
    assert out is not blended and out.max() <= 1.0
    for before, after in zip(kept, (blended, wide)):
        np.testing.assert_array_equal(after, before)


# Strip versus whole (hzsr.uncrop is local: it computes output rows from W and the working
# grid read whole). Tolerance 1e-5: a strip warps with its matrix's offset moved by its first
# row, and OpenCV computes sample positions in float32 (m0 x + m1 y + m2), so positions differ
# in the last bits (~1e-5 px at these sizes; at 12 MP the node's outputs differ by at most
# 3.5e-5). Random inputs show any misplaced row or cut ramp at full scale (errors ~0.1-1).
UNCROP_STRIP_ROWS = [1, 2, 7, 16, 45, 60]  # 61 output rows: strips ending in 1-2 rows, one strip


def _uncrop_inputs(rng, zoom, footprint=None, working_wh=(70, 61), eight_bit=False):
    wide = rng.random((61, 70, 3), dtype=np.float32)
    if eight_bit:  # as image.read gives it (a CompactImage)
        wide = np.rint(wide * 255).astype(np.uint8)
    crop = central_rect(70, 61, RATIO)
    blended = rng.random((working_wh[1], working_wh[0], 3), dtype=np.float32)
    return {"wide": wide, "blended": blended,
            "crop": crop, "ratio": RATIO, "zoom": zoom, "footprint": footprint}


def _turned_footprint(crop, working_wh, degrees):
    """A footprint (T pixel edges -> W's) of T placed over ``crop``, turned about its centre."""
    x0, y0, x1, y1 = crop
    scale = np.diag([(x1 - x0) / working_wh[0], (y1 - y0) / working_wh[1], 1.0])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = np.radians(degrees)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    return centre @ turn @ np.linalg.inv(centre) @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]]) @ scale


@pytest.mark.parametrize("strip_rows", UNCROP_STRIP_ROWS)
@pytest.mark.parametrize("zoom", [RATIO, 1.8, 3.0])  # at, below (a seam ramp) and above the ratio
@pytest.mark.parametrize("turned", [False, True])
@pytest.mark.parametrize("eight_bit", [False, True])
def test_uncrop_in_strips_equals_whole(strip_rows, zoom, turned, eight_bit):
    from strip_check import assert_strips_match_whole

    rng = np.random.default_rng(strip_rows)
    inputs = _uncrop_inputs(rng, zoom, eight_bit=eight_bit)
    if turned:
        inputs["footprint"] = _turned_footprint(inputs["crop"], (70, 61), 3.0)
    assert_strips_match_whole(uncrop.__nodegraph_spec__, inputs, dict(feather=0.2), strip_rows,
                              atol=1e-5)


@pytest.mark.parametrize("strip_rows", [3, 40])
def test_uncrop_at_tele_density_in_strips_equals_whole(strip_rows):
    from strip_check import assert_strips_match_whole

    inputs = _uncrop_inputs(np.random.default_rng(0), 1.8, working_wh=(140, 122))
    assert_strips_match_whole(uncrop.__nodegraph_spec__, inputs, dict(pixel_size="tele"),
                              strip_rows, atol=1e-5)


def test_uncrop_that_shrinks_the_working_grid_runs_whole():
    from strip_check import one_node_plan

    from nodegraph.execute import run_plan

    # zoom 1.2 of ratio 2: 0.6 output px per working px, under SHRINK_BELOW: each strip would
    # shrink the whole working grid again, so the node declines strips (frame None)
    inputs = _uncrop_inputs(np.random.default_rng(1), 1.2)
    result = run_plan(one_node_plan(uncrop.__nodegraph_spec__, inputs), strip_rows=5)
    assert result.records["node"].strips == 0
    np.testing.assert_array_equal(result.outputs["image"], uncrop(**inputs))


@pytest.mark.parametrize("shift", [(-9.0, 0.0), (7.0, -5.0), (0.0, 0.0)])
@pytest.mark.parametrize("zoom", [RATIO, 1.8])
def test_base_and_t_resampled_only_where_the_ramp_needs_them_equal_the_plain_mix(shift, zoom):
    """uncrop_image resamples W's base only over the columns where the seam ramp is below 1 and
    T's grid only where it is above 0: the result equals the plain whole-width
    clip(base + ramp (fused - base)), with T's footprint shifted so that its edge crosses the
    output on one side or two (or, at the ratio unshifted, not at all). Tolerance: the parts
    are warped with their origin moved by whole columns (see the strip tests above)."""
    from nodegraph.nodes.hzsr.uncrop import resample_working, seam_ramp, uncrop_geometry, uncrop_image

    inputs = _uncrop_inputs(np.random.default_rng(1), zoom, eight_bit=True)
    x0, y0, x1, y1 = inputs["crop"]
    scale = np.diag([(x1 - x0) / 70, (y1 - y0) / 61, 1.0])
    inputs["footprint"] = np.array([[1, 0, x0 + shift[0] / 4], [0, 1, y0 + shift[1] / 4], [0, 0, 1.0]]) @ scale
    args = (inputs["wide"], inputs["blended"], inputs["crop"], zoom)
    view, wh, to_working = uncrop_geometry(inputs["wide"].shape, inputs["blended"].shape, inputs["crop"],
                                           zoom, "wide", inputs["footprint"])
    base = resample_region(compact_to_float(inputs["wide"]), view, wh)
    fused = resample_working(inputs["blended"], to_working, wh)
    ramp = seam_ramp(to_working, (70, 61), wh, 0.2 * min(wh))
    expected = np.clip(fused if ramp is None else base + ramp[..., None] * (fused - base), 0, 1)
    assert ramp is None or (ramp == 1).any() and (ramp < 1).any()
    got = uncrop_image(*args, feather=0.2, footprint=inputs["footprint"])
    np.testing.assert_allclose(got, expected, atol=3e-5, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_inside_working_grid_equals_the_warp_of_the_whole_grid(seed):
    """The nearest-neighbour coverage of the working grid, warped from the part of the grid the
    output reaches, equals the warp of all of it: affine and projective maps, outputs partly
    outside, wholly inside and wholly outside the grid, and strips of them."""
    from nodegraph.nodes.hzsr.uncrop import _from_origin, _warp, inside_working_grid

    rng = np.random.default_rng(seed)
    working_wh, out_wh = (int(rng.integers(40, 90)), int(rng.integers(40, 90))), (83, 67)
    angle, scale = rng.uniform(-0.2, 0.2), rng.uniform(0.5, 1.6)
    matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle), rng.uniform(-40, 40)],
                       [scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-40, 40)],
                       [rng.uniform(-4e-4, 4e-4) if seed % 2 else 0.0,
                        rng.uniform(-4e-4, 4e-4) if seed % 2 else 0.0, 1.0]])
    if seed == 4:
        matrix[:2, 2] += 500.0  # wholly outside
    whole = np.ones((working_wh[1], working_wh[0]), np.uint8)
    everywhere = _warp(whole, matrix, out_wh, cv2.INTER_NEAREST)
    assert not everywhere.any() if seed == 4 else everywhere.any()
    for first, last in ((0, out_wh[1]), (10, 37), (50, 67)):
        strip = matrix @ _from_origin(0, first)
        expected = _warp(whole, strip, (out_wh[0], last - first), cv2.INTER_NEAREST)
        np.testing.assert_array_equal(inside_working_grid(strip, working_wh, (out_wh[0], last - first)),
                                      expected)
