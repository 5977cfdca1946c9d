"""hzsr.ratio: the field-of-view prior, override > EXIF focal ratio > unknown; clear failures.
(The measured ratio: tests/test_registration.py.)"""
from __future__ import annotations

import pytest

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.ratio import ratio


def test_override_wins():
    with pytest.warns(UserWarning, match="given explicitly"):
        assert ratio(26.0, 52.0, 3.0) == 3.0


def test_exif_focal_ratio():
    with pytest.warns(UserWarning, match="EXIF"):
        assert ratio(26.0, 78.0, None) == pytest.approx(3.0)


def test_no_exif_means_unknown_prior():
    with pytest.warns(UserWarning, match="unknown"):
        assert ratio(None, None, None) is None
    with pytest.warns(UserWarning, match="unknown"):  # one focal length is not a ratio
        assert ratio(26.0, None, None) is None


def test_ratio_below_one_rejected():
    with pytest.raises(InputError, match="below 1"):
        ratio(52.0, 26.0, None)
    with pytest.raises(InputError, match="below 1"):
        ratio(None, None, 0.8)


def test_bundled_sample_ratio_from_exif_and_measured():
    from pathlib import Path

    from nodegraph.nodes.hzsr.align import align_images
    from nodegraph.nodes.image_io import read_image

    sample = Path(__file__).resolve().parent.parent / "nodes" / "hzsr" / "sample"
    (wide, f_wide), (tele, f_tele) = read_image(sample / "wide.jpg"), read_image(sample / "tele.jpg")
    assert (f_wide, f_tele) == (26.0, 52.0)
    with pytest.warns(UserWarning, match="EXIF"):
        assert ratio(f_wide, f_tele, None) == 2.0
    assert align_images(wide, tele, None, mode="features")["ratio"] == pytest.approx(2.0, rel=0.02)
    assert sum(p.stat().st_size for p in sample.glob("*.jpg")) < 200_000


@pytest.mark.parametrize("wide_mm, tele_mm", [(26.0, 100000.0), (100000.0, 26.0), (1e-3, 52.0)])
def test_implausible_exif_ratio_is_ignored_with_a_note(wide_mm, tele_mm):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = ratio(wide_mm, tele_mm, None)
    notes = [str(w.message) for w in caught]
    assert value is None  # the prior is unknown: registration searches all ratios
    assert "ignoring the field-of-view ratio" in notes[0] and "not a plausible camera pair" in notes[0]
    assert "implausible EXIF focal lengths" in notes[-1]


def test_ratio_above_max_ratio_is_refused():
    with pytest.raises(InputError, match="above 20, the largest accepted"):
        ratio(None, None, 25.0)
    with pytest.warns(UserWarning, match="given explicitly"):
        assert ratio(None, None, 25.0, max_ratio=30.0) == 25.0


def test_tele_thinner_than_any_feature_fails_registration_clearly():
    import numpy as np
    import skimage.data

    from nodegraph.nodes.hzsr.align import align_images
    wide = skimage.data.astronaut().astype(np.float32) / 255.0
    with pytest.raises(InputError, match="cannot register tele onto wide"):
        align_images(wide, np.ones((32, 4000, 3), np.float32), None)
