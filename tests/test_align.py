"""hzsr.align: crop geometry, known translations of a real photo (the cheap path), loud failure."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from nodegraph import cores
from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.align import (
    align,
    luminance_plane,
    place_tele,
    robust_translation,
    wide_on_grid,
)
from nodegraph.nodes.ops import colour
from nodegraph.nodes.ops.colour import match_colour
from nodegraph.nodes.ops.geometry import central_rect, resample_region
from nodegraph.nodes.ops.luminance import luminance
from nodegraph.nodes.ops.matching import register_tele
from nodegraph.types import compact_to_float


def _scene():
    return skimage.data.astronaut().astype(np.float32) / 255.0


def _pair(dx, dy, tele_scale=1.0):
    """W = the whole scene at half size; T = its central half at full resolution, whose
    content is displaced so that T must be translated by (dx, dy) to line up with W."""
    scene = _scene()
    h, w = scene.shape[:2]
    wide = cv2.resize(scene, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    moved = cv2.warpAffine(scene, np.float32([[1, 0, -dx], [0, 1, -dy]]), (w, h),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    tele = np.clip(moved[h // 4: 3 * h // 4, w // 4: 3 * w // 4], 0, 1)
    if tele_scale != 1.0:
        size = (round(tele.shape[1] * tele_scale), round(tele.shape[0] * tele_scale))
        tele = cv2.resize(tele, size, interpolation=cv2.INTER_AREA)
    return wide, np.ascontiguousarray(tele, dtype=np.float32)


def _align(wide, tele, ratio):
    return align(wide, tele, ratio, mode="auto", transform="similarity", feature_long_side=1000,
                 fast_threshold=10, tolerance_px=2.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_luminance_plane_equals_luminance_of_the_float_image(dtype, monkeypatch):
    """Converted in blocks of rows (a block smaller than the image here, odd sizes): exactly
    the luminance of the whole image converted to float."""
    monkeypatch.setattr("nodegraph.nodes.hzsr.align.LUMINANCE_BLOCK_PIXELS", 1000)
    rng = np.random.default_rng(3)
    if dtype == np.float32:
        image = rng.random((97, 131, 3), dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max + 1, (97, 131, 3), dtype=dtype)
    np.testing.assert_array_equal(luminance_plane(image), luminance(compact_to_float(image)))


def test_registration_on_luminance_planes_equals_registration_on_rgb():
    """hzsr.align registers the luminance planes (read once); the footprint is the RGB one's."""
    wide, tele = _pair(3.0, -2.0)
    wide8 = np.rint(wide * 255).astype(np.uint8)
    rgb = register_tele(compact_to_float(wide8), tele)
    planes = register_tele(luminance_plane(wide8), luminance(tele))
    np.testing.assert_array_equal(planes.matrix, rgb.matrix)
    assert planes.correlation == rgb.correlation


def test_central_rect_and_resample_pixel_centres():
    assert central_rect(400, 300, 2.0) == (100.0, 75.0, 300.0, 225.0)
    assert central_rect(400, 300, 1.0) == (0.0, 0.0, 400.0, 300.0)
    ramp = np.tile(np.arange(64, dtype=np.float32)[None, :, None] / 64.0, (8, 1, 3))
    same = resample_region(ramp, (0, 0, 64, 8), (64, 8))
    np.testing.assert_allclose(same, ramp, atol=1e-6)
    # 2x upsampling of a linear ramp: output centre u sits at x = (u + 0.5) / 2 - 0.5.
    up = resample_region(ramp, (16, 0, 48, 8), (64, 16))
    u = np.arange(8, 56)
    # OpenCV quantises sample positions to 1/32 px: 1/32 px of this ramp is 5e-4.
    np.testing.assert_allclose(up[4, u, 0], (16 + (u + 0.5) / 2 - 0.5) / 64.0, atol=1e-3)
    # ...but without a systematic offset: pixel centres are aligned.
    assert abs(up[4, u, 0].mean() - ((16 + (u + 0.5) / 2 - 0.5) / 64.0).mean()) < 1e-4


def _translation(out, scale=1.0):
    """The footprint's translation in W px, for a T grid scaled by ``scale`` from the scene's."""
    return out["footprint"][:2, 2], out["footprint"][0, 0] * scale


@pytest.mark.parametrize("shift", [(7.3, -4.6), (-20.5, 12.25), (0.0, 0.0)])
def test_recovers_known_translation_within_half_pixel(shift):
    wide, tele = _pair(*shift)
    out = _align(wide, tele, 2.0)
    # T pixel u shows the scene at u + 128 + shift, i.e. W at (u + 128 + shift) / 2
    translation, scale = _translation(out)
    assert scale == pytest.approx(0.5)
    assert np.hypot(*(translation - (64.0 + np.array(shift) / 2))) < 0.25  # 0.5 T px
    assert out["src"].shape == tele.shape and out["ref"].shape == tele.shape
    assert out["overlap"] == 1.0 and out["coverage"].dtype == np.uint8 and out["coverage"].min() == 255
    # ref lines up with src: far smaller residual than the unshifted tele.
    inner = (slice(40, -40), slice(40, -40))
    assert np.abs(out["ref"] - out["src"])[inner].mean() < 0.03


def test_tele_at_different_resolution_uses_tele_grid():
    shift = (6.0, 3.0)  # in full-resolution scene pixels
    wide, tele = _pair(*shift, tele_scale=0.75)
    out = _align(wide, tele, 2.0)
    assert out["src"].shape == tele.shape == (192, 192, 3)
    translation, _ = _translation(out)
    assert np.hypot(*(translation - (64.0 + np.array(shift) / 2))) < 0.35


def test_large_tele_detects_on_downscaled_copy_and_scales_shift_back():
    wide, tele = _pair(9.0, -5.0)
    big = cv2.resize(tele, (512, 512), interpolation=cv2.INTER_CUBIC)  # 2x T grid
    out = align(wide, np.clip(big, 0, 1), 2.0, mode="crop_translate", transform="similarity",
                feature_long_side=256, fast_threshold=10, tolerance_px=2.0)
    translation, _ = _translation(out)
    assert np.hypot(*(translation - (64.0 + np.array([9.0, -5.0]) / 2))) < 0.5


def test_unrelated_tele_fails_loudly_instead_of_falling_back():
    wide, _ = _pair(0, 0)
    unrelated = skimage.data.coffee().astype(np.float32)[:256, :256] / 255.0
    with pytest.raises(InputError, match="cannot register tele onto wide"):
        _align(wide, np.ascontiguousarray(unrelated), 2.0)


def test_colour_match_equalises_mean_and_std():
    rng = np.random.default_rng(0)
    wide = rng.random((50, 50, 3)).astype(np.float32) * 0.5 + 0.2
    tele = wide * np.float32([1.2, 0.9, 0.7]) + np.float32([0.05, 0.0, -0.05])
    matched = match_colour(tele, tele, wide)
    np.testing.assert_allclose(matched.mean(axis=(0, 1)), wide.mean(axis=(0, 1)), atol=1e-4)
    np.testing.assert_allclose(matched, wide, atol=1e-4)
    flat = np.full((4, 4, 3), 0.3, np.float32)  # zero variance: gain 1, no NaN
    assert np.isfinite(match_colour(flat, flat, wide)).all()


@pytest.mark.parametrize("block_pixels", [1 << 20, 1000])
@pytest.mark.parametrize("banded_pixels", [1 << 21, 1])
def test_colour_match_in_place_equals_a_new_image(monkeypatch, block_pixels, banded_pixels):
    """hzsr.align matches T's colour in its own float copy of T: the same values as a new image,
    and as the per-channel map written out in NumPy (statistics in float64), whole or in blocks
    of rows (1000 px: 7 rows of 131, the last block short), in one band or one per core."""
    monkeypatch.setattr(colour, "TRANSFORM_BLOCK_PIXELS", block_pixels)
    monkeypatch.setattr(cores, "BANDED_PIXELS", banded_pixels)
    rng = np.random.default_rng(5)
    tele = rng.random((257, 131, 3), dtype=np.float32)
    wide = rng.random((40, 30, 3), dtype=np.float32) * 0.6 + 0.3
    expected = match_colour(tele, tele[::3], wide)
    scratch = tele.copy()
    matched = match_colour(scratch, scratch[::3].copy(), wide, out=scratch)
    assert matched is scratch
    np.testing.assert_array_equal(matched, expected)
    region, wide64 = tele[::3].reshape(-1, 3).astype(np.float64), wide.reshape(-1, 3).astype(np.float64)
    gain = wide64.std(axis=0) / region.std(axis=0)
    plain = tele * gain + (wide64.mean(axis=0) - region.mean(axis=0) * gain)
    np.testing.assert_allclose(matched, np.clip(plain, 0.0, 1.0), atol=2e-6)


def test_channel_statistics_equal_numpy_in_float64():
    rng = np.random.default_rng(9)
    samples = (rng.random((5000, 3)) * [0.2, 0.5, 1.0] + [0.1, 0.0, -0.3]).astype(np.float32)
    mean, std = colour.channel_mean_std(samples[::7])  # a strided view, as hzsr.align passes
    exact = samples[::7].astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, exact.std(axis=0), rtol=1e-9)


def test_align_leaves_float_inputs_untouched_and_matches_samples():
    """T given as 8-bit samples (colour-matched in the node's own float copy) or as floats (the
    caller's, left as they were): the same outputs."""
    wide, tele = _pair(2.0, 1.0)
    tele8 = np.rint(tele * 255).astype(np.uint8)
    tele_float = compact_to_float(tele8)
    before = tele_float.copy()
    from_float = _align(wide, tele_float, 2.0)
    from_samples = _align(wide, tele8, 2.0)
    np.testing.assert_array_equal(tele_float, before)
    for port in ("src", "ref", "coverage"):
        np.testing.assert_array_equal(from_samples[port], from_float[port])


def test_robust_translation_ignores_outliers():
    rng = np.random.default_rng(3)
    good = np.array([4.0, -2.0]) + rng.normal(0, 0.3, (60, 2))
    bad = rng.uniform(-50, 50, (40, 2))
    shift, inliers = robust_translation(np.vstack([good, bad]))
    assert np.hypot(*(shift - [4.0, -2.0])) < 0.15 and inliers[:60].mean() > 0.95
    empty_shift, empty_inliers = robust_translation(np.zeros((0, 2)))
    assert empty_inliers.size == 0 and tuple(empty_shift) == (0.0, 0.0)


def test_ratio_below_one_is_an_input_error():
    wide, tele = _pair(0, 0)
    with pytest.raises(InputError, match="ratio"):
        _align(wide, tele, 0.5)


def test_robust_translation_votes_like_a_plain_loop():
    rng = np.random.default_rng(5)
    displacements = np.vstack([rng.normal([3.2, -1.1], 0.6, (400, 2)),
                               rng.uniform(-40, 40, (250, 2))]).astype(np.float32)
    tolerance = 1.5
    # every 1st..Nth displacement a hypothesis (max_candidates 200: every 4th), most votes wins
    candidates = displacements[::len(displacements) // 200]
    votes = [sum(np.hypot(*(d - c)) <= tolerance for d in displacements) for c in candidates]
    best = candidates[int(np.argmax(votes))]
    inliers = np.hypot(*(displacements - best).T) <= tolerance
    centre = displacements[inliers].mean(axis=0)
    inliers = np.hypot(*(displacements - centre).T) <= tolerance
    shift, found = robust_translation(displacements, tolerance, max_candidates=200)
    np.testing.assert_array_equal(found, inliers)
    np.testing.assert_allclose(shift, displacements[inliers].mean(axis=0), rtol=1e-6)


def test_wide_on_grid_equals_a_resample_then_area_shrink():
    # the cheap path's W luminance on the (coarser) feature grid, against the plain way: the
    # region resampled onto a grid `block` times finer, then area-shrunk by `block`
    rgb = cv2.GaussianBlur(np.random.default_rng(2).random((400, 600, 3)).astype(np.float32), (0, 0), 3)
    y = luminance(rgb)
    rect = (101.5, 80.25, 501.5, 330.25)   # 400 x 250 W px onto 100 x 62.5: 4 W px per cell
    fine = resample_region(y, rect, (200, 125))
    plain = cv2.resize(fine, (100, 62), interpolation=cv2.INTER_AREA)[:62]
    ours = wide_on_grid(rgb, rect, (100, 62))
    assert np.abs(ours - plain)[2:-2, 2:-2].mean() < 0.004 and np.abs(ours - plain)[2:-2, 2:-2].max() < 0.03
    # reading only the part of W it needs equals shrinking all of W's luminance first
    whole = resample_region(cv2.resize(y, (150, 100), interpolation=cv2.INTER_AREA),
                            tuple(v / 4 for v in rect), (100, 62))
    np.testing.assert_allclose(ours, whole, atol=1e-6, rtol=0)
    for near_edge in [(0.0, 3.0, 580.0, 390.0), (20.0, 0.0, 600.0, 400.0)]:
        np.testing.assert_allclose(
            wide_on_grid(rgb, near_edge, (140, 96)),
            resample_region(cv2.resize(y, (150, 100), interpolation=cv2.INTER_AREA),
                            tuple(v / 4 for v in near_edge), (140, 96)), atol=1e-6, rtol=0)
    # a grid at W's own density or finer is resampled as it is
    np.testing.assert_allclose(wide_on_grid(rgb, rect, (300, 200)), resample_region(y, rect, (300, 200)),
                               atol=1e-6, rtol=0)
    # 8-bit W (as decoded) gives what its float conversion gives
    rgb8 = (rgb * 255).astype(np.uint8)
    np.testing.assert_array_equal(wide_on_grid(rgb8, rect, (100, 62)),
                                  wide_on_grid(rgb8.astype(np.float32) / 255, rect, (100, 62)))


def test_cheap_path_on_a_feature_grid_coarser_than_w():
    # T 512 px matched on a 128 px feature grid: W's region (256 px) is area-shrunk by 2 first
    scene = cv2.resize(_scene(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    shift = (10.0, -6.0)  # scene px
    wide = cv2.resize(scene, (512, 512), interpolation=cv2.INTER_AREA)
    moved = cv2.warpAffine(scene, np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]]), (1024, 1024),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    tele = np.ascontiguousarray(np.clip(moved[256:768, 256:768], 0, 1))
    out = align(wide, tele, 2.0, mode="crop_translate", transform="similarity", feature_long_side=128,
                fast_threshold=10, tolerance_px=2.0)
    translation, scale = _translation(out)
    assert scale == pytest.approx(0.5)
    assert np.hypot(*(translation - (128.0 + np.array(shift) / 2))) < 0.5  # 1 T px


@pytest.mark.parametrize("footprint", [
    np.array([[0.4, -0.014, 150.0], [0.014, 0.4, 90.0], [0.0, 0.0, 1.0]]),   # turned 2 degrees
    np.array([[0.4, 0.0, 420.0], [0.0, 0.4, -30.0], [0.0, 0.0, 1.0]]),       # partly outside W
    np.array([[0.41, 0.01, 160.0], [-0.005, 0.39, 100.0], [1e-5, 2e-5, 1.0]]),  # a homography
])
def test_place_tele_reads_only_the_part_of_w_under_the_footprint(footprint):
    """I_src from the part of 8-bit W the footprint covers equals the warp of all of W as float."""
    rng = np.random.default_rng(4)
    wide8 = (cv2.GaussianBlur(rng.random((300, 500, 3)).astype(np.float32), (0, 0), 2) * 255).astype(np.uint8)
    tele = rng.random((250, 400, 3), dtype=np.float32)
    out = place_tele(wide8, tele, footprint)
    centre_to_edge = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    to_wide = np.linalg.inv(centre_to_edge) @ footprint @ centre_to_edge
    whole = cv2.warpPerspective(wide8.astype(np.float32) / 255, to_wide, (400, 250),
                                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(out["src"], np.clip(whole, 0, 1), atol=1e-4, rtol=0)
