"""hzsr.keep_wide_band: the fusion's residual kept only above W's band."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.wide_band import density_on_grid, keep_wide_band, keep_wide_band_luminance
from nodegraph.nodes.ops.luminance import luminance


def test_luminance_matches_a_plain_reference_on_random_planes():
    rng = np.random.default_rng(0)
    y_src, y_fusion = (rng.random((53, 71), dtype=np.float32) for _ in range(2))
    residual = y_fusion.astype(np.float64) - y_src
    # OpenCV's BORDER_REFLECT is SciPy's "reflect" (the edge sample repeated)
    expected = y_src + residual - gaussian_filter(residual, 1.7, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(keep_wide_band_luminance(y_src, y_fusion, 1.7), expected, atol=2e-4)


def test_coarse_changes_are_dropped_and_fine_detail_is_kept():
    y_src = np.full((64, 64), 0.4, np.float32)
    shift = np.float32(0.1)  # a change over the whole frame: W's band
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32) * 0.1 - 0.05  # Nyquist
    assert np.abs(keep_wide_band_luminance(y_src, y_src + shift, 2.0) - y_src).max() < 1e-6
    kept = keep_wide_band_luminance(y_src, y_src + checker, 2.0) - y_src
    # away from the corners, where the reflected border is no checkerboard
    np.testing.assert_allclose(kept[2:-2, 2:-2], checker[2:-2, 2:-2], atol=1e-3)


def test_node_uses_the_density_of_the_working_grid_and_keeps_chroma():
    rng = np.random.default_rng(1)
    src = rng.random((40, 60, 3), dtype=np.float32) * 0.5 + 0.25
    fused = np.clip(src + rng.normal(0, 0.05, src.shape).astype(np.float32), 0, 1)
    crop = (10.0, 5.0, 40.0, 25.0)  # 30 W px wide on a 60 px grid: d = 2
    assert density_on_grid(60, crop) == 2.0
    out = keep_wide_band(src, fused, crop, band_sigma=0.75)
    np.testing.assert_allclose(luminance(out), keep_wide_band_luminance(luminance(src), luminance(fused), 1.5),
                               atol=1e-5)
    # only luminance changes: the chroma is the fused image's
    assert np.abs((out - fused) - (luminance(out) - luminance(fused))[..., None]).max() < 1e-5
    assert keep_wide_band(src, fused, crop, band_sigma=0.0) is fused


def test_a_crop_without_width_is_refused():
    with pytest.raises(InputError, match="no width"):
        density_on_grid(60, (10.0, 5.0, 10.0, 25.0))
