"""Registration of T in W (ops.matching.register_tele, hzsr.align): known footprints of a real
photo, the loud failure on unrelated photos, and the modes of hzsr.align."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.align import align_images
from nodegraph.nodes.ops.geometry import footprint_corners, footprint_width
from nodegraph.nodes.ops.matching import plausible_footprint, register_tele

SCENE_TO_WIDE = 1.5  # W is the scene downsampled by this: T can be up to 1.5x denser than W


def _scene(name="coffee"):
    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def _similarity(scale, degrees, tx, ty):
    c, s = scale * np.cos(np.radians(degrees)), scale * np.sin(np.radians(degrees))
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def _pair(ratio, density, degrees, offset=(0.0, 0.0), tele_aspect=1.5, name="coffee", seed=0):
    """W = the scene downsampled; T = the scene seen through a known footprint (T -> W,
    pixel edges) with field-of-view ratio ``ratio`` and ``density`` T px per W px, turned
    by ``degrees``, centred at W's centre + ``offset`` (W px); noise on both."""
    scene = _scene(name)
    sh, sw = scene.shape[:2]
    ww, wh = round(sw / SCENE_TO_WIDE), round(sh / SCENE_TO_WIDE)
    wide = cv2.resize(scene, (ww, wh), interpolation=cv2.INTER_AREA)
    width_in_wide = ww / ratio
    tw = round(width_in_wide * density)
    th = round(tw / tele_aspect)
    scale = width_in_wide / tw
    centre_t = np.array([tw / 2, th / 2])
    rotate = _similarity(scale, degrees, 0, 0)
    moved = rotate[:2, :2] @ centre_t
    footprint = _similarity(scale, degrees, ww / 2 + offset[0] - moved[0], wh / 2 + offset[1] - moved[1])
    # T pixel centre -> scene pixel centre (scene = W scaled by SCENE_TO_WIDE)
    centre = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    to_scene = np.linalg.inv(centre) @ np.diag([SCENE_TO_WIDE, SCENE_TO_WIDE, 1.0]) @ footprint @ centre
    source = scene
    if density < SCENE_TO_WIDE:  # T coarser than the scene: blur before sampling (no aliasing)
        source = cv2.GaussianBlur(scene, (0, 0), 0.5 * SCENE_TO_WIDE / density)
    tele = cv2.warpPerspective(source, to_scene, (tw, th), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(seed)
    wide = np.clip(wide + rng.normal(0, 0.01, wide.shape), 0, 1).astype(np.float32)
    tele = np.clip(tele * 0.9 + 0.05 + rng.normal(0, 0.01, tele.shape), 0, 1).astype(np.float32)
    return wide, tele, footprint


@pytest.mark.parametrize("ratio,density,degrees,offset", [
    (1.3, 1.0, 0.0, (3.0, -2.0)),
    (2.0, 1.5, 2.0, (-10.0, 5.0)),      # T denser than W, turned 2 degrees
    (3.0, 0.6, -2.0, (8.0, 6.0)),       # T sparser than W
    (4.5, 1.4, 0.0, (-20.0, -12.0)),
    (6.0, 1.5, 2.0, (15.0, 10.0)),
])
def test_recovers_known_footprint(ratio, density, degrees, offset):
    wide, tele, truth = _pair(ratio, density, degrees, offset)
    tele_wh = (tele.shape[1], tele.shape[0])
    for prior in (None, 3.0):  # no prior, and a wrong one: the prior only orders the search
        found = register_tele(wide, tele, prior)
        assert found.agrees
        corners, expected = footprint_corners(found.matrix, tele_wh), footprint_corners(truth, tele_wh)
        assert np.abs(corners - expected).max() < 1.0, (corners, expected)
        assert wide.shape[1] / footprint_width(corners, tele_wh) == pytest.approx(ratio, rel=0.01)


def test_align_measures_ratio_density_and_puts_t_on_its_own_density():
    wide, tele, _ = _pair(2.0, 1.5, 2.0)
    out = align_images(wide, tele, None, mode="features")
    assert out["ratio"] == pytest.approx(2.0, rel=0.01)
    assert out["density"] == pytest.approx(1.5, rel=0.01)
    crop = out["crop"]
    h, w = out["src"].shape[:2]
    assert w == pytest.approx((crop[2] - crop[0]) * 1.5, abs=1)
    # T warped onto the working grid lines up with W's crop where it covers it
    covered = out["coverage"] == 255
    assert covered.mean() > 0.8
    gray_src = cv2.GaussianBlur(out["src"], (0, 0), 2)[covered]
    gray_ref = cv2.GaussianBlur(out["ref"], (0, 0), 2)[covered]
    assert np.abs(gray_src - gray_ref).mean() < 0.03


def test_unrelated_photos_fail_loudly():
    wide = _scene("astronaut")
    tele = np.ascontiguousarray(_scene("rocket")[100:300, 150:450])
    assert not register_tele(wide, tele).agrees
    with pytest.raises(InputError, match="cannot register tele onto wide.*align.mode=pre_aligned"):
        align_images(wide, tele, None)
    with pytest.raises(InputError, match="cannot register"):
        align_images(wide, tele, 2.0)  # a prior does not make a match


def test_cheap_path_used_when_prior_is_right_and_verified():
    wide, tele, _ = _pair(2.0, 1.5, 0.0, offset=(4.0, -3.0))
    out = align_images(wide, tele, 2.0)
    assert "FAST" in out["how"]
    assert out["ratio"] == pytest.approx(2.0, rel=0.002)
    # a wrong prior: the cheap path rejects it and features take over
    out = align_images(wide, tele, 2.4)
    assert "SIFT" in out["how"] or "correlation" in out["how"]
    assert out["ratio"] == pytest.approx(2.0, rel=0.01)
    with pytest.raises(InputError, match="crop_translate failed"):
        align_images(wide, tele, 2.4, mode="crop_translate")


def test_pre_aligned_trusts_t_and_needs_a_ratio():
    wide, tele, _ = _pair(3.0, 1.2, 0.0)
    out = align_images(wide, tele, 3.0, mode="pre_aligned")
    assert out["ratio"] == pytest.approx(3.0)
    assert out["src"].shape == tele.shape and np.array_equal(out["coverage"], np.full(tele.shape[:2], 255))
    cw = out["crop"][2] - out["crop"][0]
    assert cw == pytest.approx(wide.shape[1] / 3.0)
    # T's aspect, not W's: the crop's height follows T's
    assert (out["crop"][3] - out["crop"][1]) == pytest.approx(cw * tele.shape[0] / tele.shape[1])
    with pytest.raises(InputError, match="pre_aligned needs the field-of-view ratio"):
        align_images(wide, tele, None, mode="pre_aligned")


def test_plausible_footprint_rejects_stretched_and_folded_maps():
    assert plausible_footprint(_similarity(0.5, 2.0, 10, 10), (100, 80))
    assert not plausible_footprint(np.diag([0.5, 0.4, 1.0]), (100, 80))         # non-square pixels
    assert not plausible_footprint(np.array([[0.5, 0, 0], [0, -0.5, 0], [0, 0, 1.0]]) @
                                   np.array([[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1.0]]), (100, 80))
