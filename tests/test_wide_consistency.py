"""hzsr.wide_consistency: the area operator and its back-projection against plain dense-matrix
references, the exact projection at whole pixel ratios, convergence at fractional ones."""
from __future__ import annotations

import numpy as np
import pytest

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.wide_consistency import (
    enforce_wide_consistency,
    gather_taps,
    gather_taps_reference,
    pixel_overlaps,
    spread_weights,
    wide_consistency,
    wide_pixels_in_view,
)


def _overlap_matrix(start: float, scale: float, count: int, length: int) -> np.ndarray:
    """(count, length): how much of output pixel j lies in W pixel i, by plain interval maths."""
    matrix = np.zeros((count, length))
    for i in range(count):
        a, b = start + i * scale, start + (i + 1) * scale
        for j in range(length):
            matrix[i, j] = max(0.0, min(b, j + 1) - max(a, j))
    return matrix


def _dense_area(start, scale, count, length):
    return _overlap_matrix(start, scale, count, length) / scale


def _dense_spread(start, scale, count, length):
    overlap = _overlap_matrix(start, scale, count, length).T
    total = overlap.sum(axis=1, keepdims=True)
    return np.divide(overlap, total, out=np.zeros_like(overlap), where=total > 0)


@pytest.mark.parametrize("start, scale, count, length", [
    (0.0, 2.0, 10, 20), (0.5, 1.5, 12, 19), (1.3, 2.37, 8, 22), (0.0, 1.0, 9, 9), (2.75, 4.6, 5, 27),
])
def test_area_and_spread_match_dense_references(start, scale, count, length):
    rng = np.random.default_rng(0)
    image = rng.random((length, 2, 3)).astype(np.float32)
    area = gather_taps(image, *pixel_overlaps(start, scale, count, length), axis=0)
    np.testing.assert_allclose(area, np.einsum("ij,jkc->ikc", _dense_area(start, scale, count, length),
                                               image), atol=1e-5)
    residual = rng.standard_normal((count, 2, 3)).astype(np.float32)
    spread = gather_taps(residual, *spread_weights(start, scale, count, length), axis=0)
    np.testing.assert_allclose(spread, np.einsum("ij,jkc->ikc", _dense_spread(start, scale, count, length),
                                                 residual), atol=1e-5)
    # along columns too
    image2 = rng.random((4, length, 3)).astype(np.float32)
    np.testing.assert_allclose(gather_taps(image2, *pixel_overlaps(start, scale, count, length), axis=1),
                               np.einsum("rjc,ij->ric", image2, _dense_area(start, scale, count, length)),
                               atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_gather_taps_kernel_matches_numpy(axis):
    rng = np.random.default_rng(5)
    image = rng.random((23, 31, 3)).astype(np.float32)
    length = image.shape[axis]
    index = rng.integers(0, length, (17, 3))
    weight = rng.random((17, 3)).astype(np.float32)
    np.testing.assert_allclose(gather_taps(image, index, weight, axis),
                               gather_taps_reference(image, index, weight, axis), atol=1e-5)


def _random_scene(rng, shape):
    return (0.3 + 0.4 * rng.random(shape)).astype(np.float32)   # no clipping in one step


@pytest.mark.parametrize("scale", [2, 3])
def test_whole_pixel_ratio_is_the_exact_orthogonal_projection(scale):
    rng = np.random.default_rng(1)
    h, w = 6, 7
    image = _random_scene(rng, (h * scale, w * scale, 1))
    wide = _random_scene(rng, (h, w, 1))
    out = enforce_wide_consistency(image, wide, (0.0, 0.0, float(scale), float(scale)), 1)
    # x + A^T (A A^T)^-1 (w - A x) with A the dense 2-D area operator (Kronecker of the axes)
    area = np.kron(_dense_area(0.0, scale, h, h * scale), _dense_area(0.0, scale, w, w * scale))
    x = image[..., 0].ravel().astype(np.float64)
    expected = x + area.T @ np.linalg.solve(area @ area.T, wide[..., 0].ravel() - area @ x)
    np.testing.assert_allclose(out[..., 0].ravel(), expected, atol=1e-5)
    np.testing.assert_allclose((area @ out[..., 0].ravel()).reshape(h, w), wide[..., 0], atol=1e-5)


def test_detail_below_w_sampling_is_kept():
    """A pattern that averages to zero over every W pixel passes unchanged."""
    rng = np.random.default_rng(2)
    wide = _random_scene(rng, (5, 6, 3))
    base = np.repeat(np.repeat(wide, 2, axis=0), 2, axis=1)
    checker = 0.1 * (np.indices((10, 12)).sum(axis=0) % 2 * 2 - 1)[..., None].astype(np.float32)
    out = enforce_wide_consistency(base + checker, wide, (0.0, 0.0, 2.0, 2.0), 1)
    np.testing.assert_allclose(out, base + checker, atol=1e-6)


def test_fractional_ratio_converges():
    rng = np.random.default_rng(3)
    start, scale, h, w = 0.6, 2.37, 9, 11
    length_y, length_x = 24, 29
    wide = _random_scene(rng, (h, w, 1))
    image = _random_scene(rng, (length_y, length_x, 1))
    area = np.kron(_dense_area(start, scale, h, length_y), _dense_area(start, scale, w, length_x))

    def inconsistency(y):
        return np.abs(area @ y[..., 0].ravel() - wide[..., 0].ravel()).mean()

    errors = [inconsistency(enforce_wide_consistency(image, wide, (start, start, scale, scale), n))
              for n in range(5)]
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[3] < 0.05 * errors[0]


def test_wide_pixels_in_view_keeps_whole_pixels():
    (x0, y0, x1, y1), (left, top, sx, sy) = wide_pixels_in_view((10.5, 20.0, 30.5, 35.0), (40, 30))
    assert (x0, y0, x1, y1) == (11, 20, 30, 35)
    assert (sx, sy) == (2.0, 2.0) and (left, top) == (1.0, 0.0)


def test_node_reads_w_as_samples_and_passes_through_when_off():
    rng = np.random.default_rng(4)
    wide = rng.integers(50, 200, (40, 60, 3)).astype(np.uint8)
    view = wide[10:30, 15:45].astype(np.float32) / 255   # zoom 2: the central half, 2 px per W px
    image = np.repeat(np.repeat(view, 2, axis=0), 2, axis=1)
    image += 0.05 * rng.standard_normal(image.shape).astype(np.float32)
    assert wide_consistency(image, wide, 2.0, iterations=0) is image
    out = wide_consistency(image, wide, 3.0, 2.0, iterations=1)   # zoom 2 given, ratio ignored
    np.testing.assert_allclose(out.reshape(20, 2, 30, 2, 3).mean(axis=(1, 3)), view, atol=1e-5)
    assert np.abs(out - image).max() > 0.01
    coarse = rng.random((20, 30, 3)).astype(np.float32)   # coarser than W: nothing to enforce
    assert wide_consistency(coarse, wide, 1.0) is coarse


def test_zoom_below_one_is_refused():
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(InputError, match="zoom must be >= 1"):
        wide_consistency(image, np.zeros((8, 8, 3), np.uint8), 2.0, 0.5)
