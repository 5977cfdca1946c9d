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
from nodegraph.nodes.ops.colour import match_colour
from nodegraph.nodes.ops.geometry import central_rect, resample_region
from nodegraph.nodes.ops.luminance import to_uint8_gray
from nodegraph.nodes.ops.matching import match_keypoints

MIN_INLIERS = 12
MIN_INLIER_FRACTION = 0.1





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
        warnings.warn(stacklevel=2, message=f"tele does not overlap wide: only {n_inliers} of {len(inliers)} feature "
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
