"""geometry.translate_cubic (the uncrop's resampling of T's grid when it is only shifted)
against a plain float64 bicubic with clamped taps and against cv2.warpAffine."""
import cv2
import numpy as np
import pytest

from nodegraph.nodes.ops.geometry import CUBIC_A, cubic_taps, translate_cubic, translation_of


def bicubic_reference(image: np.ndarray, shift, out_wh) -> np.ndarray:
    """Output (x, y) = sum over the 4x4 source pixels around (x + shift_x, y + shift_y) of
    image[clamp(row), clamp(col)] times the Keys kernel (a = CUBIC_A) of their distance, float64."""
    def keys(d):
        d = np.abs(d)
        return np.where(d <= 1, (CUBIC_A + 2) * d**3 - (CUBIC_A + 3) * d**2 + 1,
                        np.where(d < 2, CUBIC_A * (d**3 - 5 * d**2 + 8 * d - 4), 0.0))

    h, w = image.shape[:2]
    xs, ys = np.arange(out_wh[0]) + shift[0], np.arange(out_wh[1]) + shift[1]
    x_base, y_base = np.floor(xs).astype(int), np.floor(ys).astype(int)
    out = np.zeros((out_wh[1], out_wh[0], *image.shape[2:]))
    for i in range(-1, 3):
        rows = np.clip(y_base + i, 0, h - 1)
        wy = keys(ys - (y_base + i))
        for j in range(-1, 3):
            cols = np.clip(x_base + j, 0, w - 1)
            wx = keys(xs - (x_base + j))
            weight = wy[:, None] * wx[None, :]
            out += image[rows][:, cols].astype(np.float64) * (weight[..., None] if image.ndim == 3 else weight)
    return out


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9375, 0.999])
def test_cubic_taps_are_the_keys_kernel_and_sum_to_one(fraction):
    taps = cubic_taps(fraction)
    distances = fraction - np.array([-1.0, 0.0, 1.0, 2.0])
    d = np.abs(distances)
    keys = np.where(d <= 1, (CUBIC_A + 2) * d**3 - (CUBIC_A + 3) * d**2 + 1,
                    CUBIC_A * (d**3 - 5 * d**2 + 8 * d - 4))
    np.testing.assert_allclose(taps, keys, atol=1e-6)
    assert abs(float(taps.sum(dtype=np.float64)) - 1.0) < 1e-6
    if fraction == 0.0:
        assert taps.tolist() == [0.0, 1.0, 0.0, 0.0]


SHIFTS = [(0.37, -0.81), (5.2, 3.49), (-3.3, 2.0), (0.0, 0.0), (2.0, -1.0),  # inside, integer
          (-0.6, -0.4), (61.5, 3.25), (-70.2, 1.1), (3.3, 55.7), (-1.0, -1.0), (30.5, -48.75)]


@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize("shift", SHIFTS)
def test_translate_cubic_equals_the_plain_bicubic_and_the_warp(shift, channels):
    """Random images (one or three channels), shifts that keep the source inside, cross one or
    two edges, or leave it entirely; the output larger than the image in one axis. Against
    the float64 reference 5e-6: the filter's float32 sums are within 2e-6, the pixels left to
    the warp (source beyond the image) carry its float32 weights (4e-6 measured); against the
    warp itself (float32 coordinates below 80 px) 2e-5."""
    rng = np.random.default_rng(int(abs(shift[0]) * 10 + abs(shift[1])))
    image = rng.random((47, 64) if channels is None else (47, 64, channels), dtype=np.float32)
    out_wh = (71, 40)
    got = translate_cubic(image, shift, out_wh)
    assert got.dtype == np.float32 and got.shape == (40, 71, *image.shape[2:])
    np.testing.assert_allclose(got, bicubic_reference(image, shift, out_wh), rtol=0, atol=5e-6)
    warped = cv2.warpAffine(image, np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]), out_wh,
                            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(got, warped.reshape(got.shape), rtol=0, atol=2e-5)


def test_translate_cubic_into_views_of_strips_equals_the_whole():
    """Strips of rows and columns (the uncrop's), each written into a view of one output, equal
    the whole at once bit for bit: the part read carries the taps' reach."""
    rng = np.random.default_rng(5)
    image = rng.random((90, 120, 3), dtype=np.float32)
    shift = (7.3, -4.6)
    whole = translate_cubic(image, shift, (120, 90))
    canvas = np.full((90, 120, 3), -1.0, np.float32)
    for top in range(0, 90, 13):
        for left in range(0, 120, 50):
            bottom, right = min(90, top + 13), min(120, left + 50)
            view = canvas[top:bottom, left:right]
            assert translate_cubic(image, (shift[0] + left, shift[1] + top), (right - left, bottom - top),
                                   out=view) is view
    np.testing.assert_array_equal(canvas, whole)


@pytest.mark.parametrize("matrix, expected", [
    (np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -3.0]]), (2.5, -3.0)),
    (np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]), (2.5, -3.0)),
    (np.array([[1.0001, 0.0, 2.5], [0.0, 1.0, -3.0]]), None),
    (np.array([[1.0, 0.01, 2.5], [0.0, 1.0, -3.0]]), None),
    (np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -3.0], [1e-6, 0.0, 1.0]]), None),
])
def test_translation_of_only_pure_translations(matrix, expected):
    assert translation_of(matrix) == expected
