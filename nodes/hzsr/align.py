"""Crop + FAST global alignment of the tele image T onto the wide image W (SPEC §4 step 2).

HZSR coarse alignment: crop W to T's field of view (the central 1/ratio of W), resample it
bicubically to T's pixel grid (the *working grid*) -> I_src; find the global 2D translation
between I_src and T from FAST keypoint matches, colour-match T to W and translate it by that
shift -> I_ref. Dense alignment (flow) then only has to remove the residual parallax.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np

from nodegraph import Image, Mask, Out, Param, Rect, Scalar, Shift, node
from nodegraph.errors import InputError
from nodes.hzsr.luma import luminance

MIN_INLIERS = 12
MIN_INLIER_FRACTION = 0.1


def central_rect(width: int, height: int, zoom: float) -> tuple[float, float, float, float]:
    """The central 1/zoom region (x0, y0, x1, y1) of a width x height image, in pixel-edge coordinates."""
    cw, ch = width / zoom, height / zoom
    x0, y0 = (width - cw) / 2.0, (height - ch) / 2.0
    return (x0, y0, x0 + cw, y0 + ch)


def rect_to_grid_matrix(rect, out_wh) -> np.ndarray:
    """2x3 affine matrix from output-grid pixels to source pixels for ``rect`` spread over ``out_wh``.

    Pixel centres are aligned: output pixel centre u maps to x0 + (u + 0.5) * (x1 - x0) / W_out - 0.5
    (the convention of the SPEC §3 bicubic baseline), so fractional rectangles are exact.
    """
    x0, y0, x1, y1 = (float(v) for v in rect)
    sx, sy = (x1 - x0) / out_wh[0], (y1 - y0) / out_wh[1]
    return np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])


def resample_region(image: np.ndarray, rect, out_wh, interpolation: int = cv2.INTER_CUBIC,
                    border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Resample the (possibly fractional) region ``rect`` of ``image`` to ``out_wh`` = (width, height).

    Bicubic by default, pixel centres aligned; the result is clipped to [0, 1] because bicubic
    overshoots at edges.
    """
    out = cv2.warpAffine(image, rect_to_grid_matrix(rect, out_wh), (int(out_wh[0]), int(out_wh[1])),
                         flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def gray8(image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """8-bit luminance of ``image``, area-resized to ``shape`` (h, w) when given (OpenCV's
    FAST and flow methods work on 8-bit single-channel images)."""
    y = luminance(image)
    if shape is not None and y.shape != tuple(shape):
        y = cv2.resize(y, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def to_uint8_gray(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """8-bit luminance of ``image`` downscaled so its long side is at most ``long_side``; (gray, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    return gray8(image, shape), scale


def match_keypoints(gray_a: np.ndarray, gray_b: np.ndarray, *, fast_threshold: int = 10,
                    max_keypoints: int = 4000, ratio_test: float = 0.8
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Matched point pairs (N, 2) float32 in a and b: FAST corners + ORB descriptors.

    Matches pass Lowe's ratio test and are mutual nearest neighbours (cross check), which
    keeps random matches between unrelated images rare.
    """
    fast = cv2.FastFeatureDetector_create(threshold=fast_threshold, nonmaxSuppression=True)
    orb = cv2.ORB_create()
    described = []
    for gray in (gray_a, gray_b):
        keypoints = sorted(fast.detect(gray, None), key=lambda k: -k.response)[:max_keypoints]
        for k in keypoints:
            k.size = 31.0  # ORB's patch size: FAST gives no scale
        keypoints, descriptors = orb.compute(gray, keypoints)
        described.append((keypoints, descriptors))
    (kp_a, des_a), (kp_b, des_b) = described
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    forward = matcher.knnMatch(des_a, des_b, k=2)
    backward = {m[0].queryIdx: m[0].trainIdx for m in matcher.knnMatch(des_b, des_a, k=1) if m}
    pairs = [(m[0].queryIdx, m[0].trainIdx) for m in forward
             if len(m) == 2 and m[0].distance < ratio_test * m[1].distance
             and backward.get(m[0].trainIdx) == m[0].queryIdx]
    if not pairs:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    ia, ib = np.array(pairs).T
    pa = np.array([kp_a[i].pt for i in ia], np.float32)
    pb = np.array([kp_b[i].pt for i in ib], np.float32)
    return pa, pb


def robust_translation(displacements: np.ndarray, tolerance: float = 2.0,
                       max_candidates: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Dominant translation of (N, 2) displacements by RANSAC-style voting; (shift, inlier mask).

    Every displacement (up to ``max_candidates``, evenly sampled) is a hypothesis; the one
    with the most displacements within ``tolerance`` px wins and the shift is the mean of its
    inliers (sub-pixel, unlike the integer FAST positions). Mean rather than a least-squares
    fit over all matches because parallax makes the other depth planes outliers, not noise.
    """
    if len(displacements) == 0:
        return np.zeros(2), np.zeros(0, bool)
    step = max(1, len(displacements) // max_candidates)
    candidates = displacements[::step]
    distances = np.linalg.norm(candidates[:, None, :] - displacements[None, :, :], axis=2)
    best = candidates[np.argmax((distances <= tolerance).sum(axis=1))]
    inliers = np.linalg.norm(displacements - best, axis=1) <= tolerance
    # A second vote around the inlier mean removes the bias of the integer-valued hypothesis.
    centre = displacements[inliers].mean(axis=0)
    inliers = np.linalg.norm(displacements - centre, axis=1) <= tolerance
    return displacements[inliers].mean(axis=0), inliers


def match_colour(tele: np.ndarray, tele_region: np.ndarray, wide_region: np.ndarray) -> np.ndarray:
    """T with each channel's mean and standard deviation matched to W's (HZSR colour match).

    The statistics come from the two overlapping regions at W's optical resolution, so T's
    extra fine detail does not count as contrast to be removed.
    """
    mu_t = tele_region.reshape(-1, 3).mean(axis=0)
    sd_t = tele_region.reshape(-1, 3).std(axis=0)
    mu_w = wide_region.reshape(-1, 3).mean(axis=0)
    sd_w = wide_region.reshape(-1, 3).std(axis=0)
    gain = np.where(sd_t > 1e-6, sd_w / np.maximum(sd_t, 1e-6), 1.0)
    # One per-channel affine map in a single OpenCV pass (speed at 12 MP).
    affine = np.hstack([np.diag(gain), (mu_w - mu_t * gain)[:, None]])
    matched = cv2.transform(np.ascontiguousarray(tele, dtype=np.float32), affine)
    return np.clip(matched, 0.0, 1.0, out=matched)


def align_images(wide: np.ndarray, tele: np.ndarray, ratio: float, *, feature_long_side: int = 1000,
                 fast_threshold: int = 10, tolerance_px: float = 2.0) -> dict:
    """Crop W to T's field of view and find/apply the global translation of T (see the module doc)."""
    if not ratio or ratio < 1.0:
        raise InputError(f"zoom ratio must be >= 1, got {ratio!r}")
    th, tw = tele.shape[:2]
    crop = central_rect(wide.shape[1], wide.shape[0], ratio)
    src = resample_region(wide, crop, (tw, th))

    gray_src, scale = to_uint8_gray(src, feature_long_side)
    gray_ref, _ = to_uint8_gray(tele, feature_long_side)
    p_src, p_ref = match_keypoints(gray_src, gray_ref, fast_threshold=fast_threshold)
    # ref(x) = T(x - shift) lines T up with src, so shift = p_src - p_ref for a matched point.
    shift_small, inliers = robust_translation(p_src - p_ref, tolerance_px)
    n_inliers = int(inliers.sum())
    if n_inliers < MIN_INLIERS or n_inliers < MIN_INLIER_FRACTION * len(inliers):
        warnings.warn(f"tele does not overlap wide: only {n_inliers} of {len(inliers)} feature "
                      f"matches agree on a translation (need {MIN_INLIERS}); using zero shift, "
                      "the output falls back to upsampled W")
        shift, overlap = np.zeros(2), 0.0
    else:
        shift, overlap = shift_small / scale, 1.0

    translate = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    coverage = cv2.warpAffine(np.ones((th, tw), np.float32), translate, (tw, th),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Colour statistics over the overlap only, at W's optical resolution (its crop size).
    low_wh = (max(1, round(crop[2] - crop[0])), max(1, round(crop[3] - crop[1])))
    seen = cv2.resize(coverage, low_wh, interpolation=cv2.INTER_AREA) > 0.999
    src_low = cv2.resize(src, low_wh, interpolation=cv2.INTER_AREA)[seen]
    tele_on_src = cv2.warpAffine(tele, translate, (tw, th), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    tele_low = cv2.resize(tele_on_src, low_wh, interpolation=cv2.INTER_AREA)[seen]
    if len(src_low) < 16:  # the translation left (almost) no common area
        src_low, tele_low = src.reshape(-1, 3), tele.reshape(-1, 3)
    # Global means and deviations need no more than ~250k samples (speed at 12 MP).
    step = max(1, len(src_low) // 250_000)
    ref = match_colour(tele_on_src, tele_low[::step], src_low[::step])
    return {"src": src, "ref": ref, "coverage": np.clip(coverage, 0.0, 1.0),
            "crop": tuple(float(v) for v in crop), "shift": (float(shift[0]), float(shift[1])),
            "overlap": overlap, "inliers": n_inliers, "matches": len(inliers)}


@node("hzsr.align", version=1)
def align(wide: Image, tele: Image, ratio: Scalar, *,
          feature_long_side: int = Param(1000, range=(200, 8000), unit="px",
                                         doc="features are detected on copies downscaled to this "
                                             "long side (speed); the shift is scaled back"),
          fast_threshold: int = Param(10, range=(1, 100), unit="8-bit levels",
                                      doc="FAST corner contrast threshold"),
          tolerance_px: float = Param(2.0, range=(0.25, 20.0), unit="px",
                                      doc="inlier distance of the translation vote, at feature scale"),
          ) -> Out(src=Image, ref=Image, coverage=Mask, crop=Rect, shift=Shift, overlap=Scalar):
    """Crop W to T's FOV on T's grid (I_src) and FAST-align + colour-match T to it (I_ref).

    ``src`` is W's central 1/ratio region (``crop``, in W pixels) bicubically resampled to
    T's pixel grid. ``ref`` is T with per-channel mean/std matched to W, translated by the
    global ``shift`` found from FAST keypoint matches (mutual, ratio-tested ORB descriptors;
    RANSAC-style translation vote), border replicated; ``coverage`` is 1 where ref holds real
    T pixels. Too few agreeing matches: warns, zero shift, ``overlap`` = 0 (else 1).
    """
    out = align_images(wide, tele, float(ratio), feature_long_side=feature_long_side,
                       fast_threshold=fast_threshold, tolerance_px=tolerance_px)
    return {k: out[k] for k in ("src", "ref", "coverage", "crop", "shift", "overlap")}
