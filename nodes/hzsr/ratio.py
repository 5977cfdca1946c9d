"""The zoom ratio between W and T: how many times narrower T's field of view is.

Sources, in order of trust: an explicit override; the ratio of the 35 mm-equivalent focal
lengths in EXIF (T / W); an estimate from matched features, where the scale of the
similarity transform mapping T's pixels into W's gives ratio = width_W / (width_T * scale).
An EXIF ratio above ``max_ratio`` (or below its inverse) is implausible for a camera pair (a
focal length of 100000 mm in a file gives 3846) and is ignored with a note; the features
decide instead.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from nodegraph import Image, Out, Param, Scalar, node, note
from nodegraph.errors import InputError
from nodegraph.nodes.ops.luminance import to_uint8_gray

MIN_INLIERS = 12
ORB_PATCH = 31  # px: ORB describes 31x31 patches; its pyramid fails on images thinner than that
# T is pre-shrunk to its expected size in W for each candidate ratio, so ORB's own 8-level
# pyramid (x1.2 per level) only has to bridge the gap to the nearest candidate.
CANDIDATE_RATIOS = (1.5, 2.5, 4.0, 6.5)


def similarity_scale(gray_tele: np.ndarray, gray_wide: np.ndarray,
                     ratio_test: float = 0.8) -> tuple[float, int]:
    """(scale of the RANSAC similarity T -> W, number of inliers); (nan, 0) when it fails."""
    if min(gray_tele.shape + gray_wide.shape) < ORB_PATCH:
        return float("nan"), 0
    orb = cv2.ORB_create(nfeatures=3000, patchSize=ORB_PATCH)
    kp_t, des_t = orb.detectAndCompute(gray_tele, None)
    kp_w, des_w = orb.detectAndCompute(gray_wide, None)
    if des_t is None or des_w is None or len(kp_t) < 2 or len(kp_w) < 2:
        return float("nan"), 0
    pairs = [m[0] for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_t, des_w, k=2)
             if len(m) == 2 and m[0].distance < ratio_test * m[1].distance]
    if len(pairs) < MIN_INLIERS:
        return float("nan"), 0
    p_t = np.float32([kp_t[m.queryIdx].pt for m in pairs])
    p_w = np.float32([kp_w[m.trainIdx].pt for m in pairs])
    matrix, inliers = cv2.estimateAffinePartial2D(p_t, p_w, method=cv2.RANSAC,
                                                  ransacReprojThreshold=3.0)
    if matrix is None:
        return float("nan"), 0
    return float(np.hypot(matrix[0, 0], matrix[1, 0])), int(inliers.sum())


def estimate_ratio_from_features(wide: np.ndarray, tele: np.ndarray,
                                 long_side: int = 1500) -> tuple[float, int]:
    """(zoom ratio, inliers) from ORB matches between T and W; (nan, best inliers) if too few agree."""
    gray_wide, _ = to_uint8_gray(wide, long_side)
    width_w = gray_wide.shape[1]
    best = (float("nan"), 0)
    for candidate in CANDIDATE_RATIOS:
        # T as large as it appears in W at this candidate ratio (never enlarged).
        gray_tele, _ = to_uint8_gray(tele, max(8, round(max(tele.shape[:2]) * min(
            1.0, width_w / candidate / tele.shape[1]))))
        scale, inliers = similarity_scale(gray_tele, gray_wide)
        if inliers > best[1] and scale > 0:
            best = (width_w / (gray_tele.shape[1] * scale), inliers)
    if best[1] < MIN_INLIERS:
        return float("nan"), best[1]
    return best


def resolve_ratio(wide: np.ndarray, tele: np.ndarray, wide_focal_35mm: float | None,
                  tele_focal_35mm: float | None, override: float | None,
                  max_ratio: float = 20.0) -> tuple[float, str]:
    """(ratio, sentence naming its source): override > EXIF focal ratio > features.

    An EXIF ratio above ``max_ratio`` or below ``1 / max_ratio`` is ignored with a note; any
    other ratio above ``max_ratio``, or below 1, raises InputError.
    """
    exif_ratio, exif_source, without_exif = None, "", "no EXIF focal lengths"
    if wide_focal_35mm and tele_focal_35mm:
        exif_ratio = float(tele_focal_35mm) / float(wide_focal_35mm)
        exif_source = (f"from the EXIF 35 mm focal lengths ({tele_focal_35mm:g} mm / "
                       f"{wide_focal_35mm:g} mm)")
    if override is None and exif_ratio is not None and not 1 / max_ratio <= exif_ratio <= max_ratio:
        note(f"ignoring the zoom ratio {exif_ratio:.4g} {exif_source}: not a plausible camera "
             f"pair (parameter max_ratio: {max_ratio:g})")
        exif_ratio, without_exif = None, "implausible EXIF focal lengths"
    if override is not None:
        ratio, source = float(override), "given explicitly"
    elif exif_ratio is not None:
        ratio, source = exif_ratio, exif_source
    else:
        ratio, inliers = estimate_ratio_from_features(wide, tele)
        if not np.isfinite(ratio):
            raise InputError(f"cannot determine the zoom ratio: {without_exif}, and only "
                             f"{inliers} feature matches agree between the images; give the "
                             "ratio explicitly")
        source = f"estimated from {inliers} matched features ({without_exif})"
    if not ratio >= 1.0:
        raise InputError(f"zoom ratio {ratio:.4g} ({source}) is below 1: T must be the "
                         "narrower view; swapped inputs?")
    if not ratio <= max_ratio:
        raise InputError(f"zoom ratio {ratio:.4g} ({source}) is above {max_ratio:g}, the largest "
                         "accepted (parameter max_ratio)")
    return ratio, source


# T is the narrower view, so a given ratio below 1 (or not finite) is refused before any work.
RATIO = Scalar.within(1.0, math.inf)


# Bypassed, the node passes the given ratio through (never a focal length, the default rule's
# first Scalar input); without one, validation refuses the bypass.
@node("hzsr.ratio", version=1, bypass={"ratio": "ratio"})
def ratio(wide: Image, tele: Image, wide_focal_35mm: Scalar = None,
          tele_focal_35mm: Scalar = None, ratio: RATIO = None, *,
          max_ratio: float = Param(20.0, range=(1.0, 100.0),
                                   doc="largest plausible ratio; EXIF focal lengths giving more, "
                                       "or less than its inverse, are ignored (with a note)")
          ) -> Out(ratio=Scalar):
    """Zoom ratio of T over W (1 <= ratio <= max_ratio): override > EXIF focal ratio (T / W) >
    matched features.

    The feature estimate matches ORB keypoints of T against W (Lowe ratio test), fits a
    similarity with RANSAC (cv2.estimateAffinePartial2D) and converts its scale s into
    ratio = width_W / (width_T * s). Notes which source was used, and an EXIF ratio above
    ``max_ratio`` that it ignored; InputError if no source works.
    """
    value, source = resolve_ratio(wide, tele, wide_focal_35mm, tele_focal_35mm, ratio, max_ratio)
    note(f"zoom ratio {value:.4g} {source}")
    return value
