"""hzsr.ratio: override > EXIF focal ratio > features; clear failures."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.ratio import estimate_ratio_from_features, ratio
from nodegraph.nodes.ops.geometry import central_rect, resample_region


def _pair(zoom, wide_scale=1.0, name="astronaut"):
    """W = the whole photo (resized by wide_scale); T = its central 1/zoom at full resolution."""
    scene = getattr(skimage.data, name)().astype(np.float32) / 255.0
    h, w = scene.shape[:2]
    wide = cv2.resize(scene, (round(w * wide_scale), round(h * wide_scale)),
                      interpolation=cv2.INTER_AREA)
    tele = resample_region(scene, central_rect(w, h, zoom), (round(w / zoom), round(h / zoom)))
    return wide, tele


def test_override_wins():
    wide, tele = _pair(2.0)
    with pytest.warns(UserWarning, match="given explicitly"):
        assert ratio(wide, tele, 26.0, 52.0, 3.0) == 3.0


def test_exif_focal_ratio():
    wide, tele = _pair(2.0)
    with pytest.warns(UserWarning, match="EXIF"):
        assert ratio(wide, tele, 26.0, 78.0, None) == pytest.approx(3.0)


@pytest.mark.parametrize("zoom,wide_scale,name", [(1.5, 0.5, "astronaut"), (2.0, 0.5, "astronaut"),
                                                   (3.0, 1.0, "astronaut"), (4.0, 1.0, "astronaut"),
                                                   (2.0, 1.0, "coffee"), (1.25, 0.5, "coffee")])
def test_features_recover_known_ratio_within_2_percent(zoom, wide_scale, name):
    wide, tele = _pair(zoom, wide_scale, name)
    with pytest.warns(UserWarning, match="matched features"):
        found = ratio(wide, tele, None, None, None)
    assert found == pytest.approx(zoom, rel=0.02)


def test_one_missing_focal_length_falls_back_to_features():
    wide, tele = _pair(2.0, 0.5)
    with pytest.warns(UserWarning, match="matched features"):
        assert ratio(wide, tele, 26.0, None, None) == pytest.approx(2.0, rel=0.02)


def test_unrelated_images_without_exif_fail_clearly():
    rng = np.random.default_rng(0)
    noise_a = rng.random((200, 300, 3)).astype(np.float32)
    flat = np.full((120, 160, 3), 0.5, np.float32)
    with pytest.raises(InputError, match="cannot determine the zoom ratio"):
        ratio(noise_a, flat, None, None, None)
    assert np.isnan(estimate_ratio_from_features(noise_a, flat)[0])


def test_ratio_below_one_rejected():
    wide, tele = _pair(2.0)
    with pytest.raises(InputError, match="below 1"):
        ratio(wide, tele, 52.0, 26.0, None)
    with pytest.raises(InputError, match="below 1"):
        ratio(wide, tele, None, None, 0.8)


def test_bundled_sample_ratio_from_exif():
    from pathlib import Path

    from nodegraph.nodes.image_io import read_image

    sample = Path(__file__).resolve().parent.parent / "nodes" / "hzsr" / "sample"
    (wide, f_wide), (tele, f_tele) = read_image(sample / "wide.jpg"), read_image(sample / "tele.jpg")
    assert (f_wide, f_tele) == (26.0, 52.0)
    with pytest.warns(UserWarning, match="EXIF"):
        assert ratio(wide, tele, f_wide, f_tele, None) == 2.0
    assert estimate_ratio_from_features(wide, tele)[0] == pytest.approx(2.0, rel=0.02)
    assert sum(p.stat().st_size for p in sample.glob("*.jpg")) < 200_000


@pytest.mark.parametrize("wide_mm, tele_mm", [(26.0, 100000.0), (100000.0, 26.0), (1e-3, 52.0)])
def test_implausible_exif_ratio_is_ignored_with_a_note(wide_mm, tele_mm):
    import warnings
    wide, tele = _pair(2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = ratio(wide, tele, wide_mm, tele_mm, None)
    notes = [str(w.message) for w in caught]
    assert value == pytest.approx(2.0, rel=0.02)
    assert "ignoring the zoom ratio" in notes[0] and "not a plausible camera pair" in notes[0]
    assert "matched features" in notes[-1]


def test_ratio_above_max_ratio_is_refused():
    wide, tele = _pair(2.0)
    with pytest.raises(InputError, match="above 20, the largest accepted"):
        ratio(wide, tele, None, None, 25.0)
    with pytest.warns(UserWarning, match="given explicitly"):
        assert ratio(wide, tele, None, None, 25.0, max_ratio=30.0) == 25.0


def test_images_thinner_than_orb_patches_give_no_estimate():
    wide, _ = _pair(2.0)
    assert np.isnan(estimate_ratio_from_features(wide, np.ones((32, 4000, 3), np.float32))[0])
