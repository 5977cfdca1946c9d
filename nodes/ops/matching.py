"""Keypoint matching and robust registration between two 8-bit gray images.

One matcher for the whole project: keypoints from FAST (no scale; the paper's cheap path,
where both images are already on one pixel grid) or SIFT (scale and rotation invariant;
registration of any W/T pair), described, matched by Lowe's ratio test and kept only when
mutual nearest neighbours (cross check), which keeps random matches between unrelated images
rare. ``register_tele`` fits T's footprint in W on SIFT matches by RANSAC.

Coordinates: points are returned in OpenCV keypoint convention (pixel centre at integer
coordinates); transforms between full-size images are expressed in pixel-EDGE coordinates
(centre + 0.5), where a downscale by s is a plain multiplication by s.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from nodegraph.nodes.ops.luminance import gray8, to_uint8_gray

# A RANSAC fit needs this many agreeing SIFT matches to be a hypothesis worth verifying
# (few: flat scenes give few keypoints; the correlation test below is what decides).
MIN_HYPOTHESIS_INLIERS = 5
# Dense verification: T and W must correlate at least this much under the footprint found
# (ECC coefficient: 1 = same image up to gain/offset). Measured on photos that are neither
# dev cases nor real pairs (scikit-image's and City100 training photos, T = a central crop
# of another photo, 72 unrelated pairs): at most 0.66; true footprints (tests, with noise,
# blur and rotation) >= 0.9.
MIN_CORRELATION = 0.8
ECC_LONG_SIDE = 800       # W's long side for verification
ECC_FINE_LONG_SIDE = 1024  # T's long side for the final refinement
ECC_MARGIN = 0.1           # W around the footprint hypothesis, fraction of its size
CONFIDENT_CORRELATION = 0.9
# Real T and W pixels are square up to lens distortion and a few degrees of tilt.
MAX_ANISOTROPY = 1.05
TEMPLATE_LONG_SIDE = 360
TEMPLATE_RATIOS = tuple(1.1 * 1.05 ** i for i in range(42))  # 1.1 ... 8.1, 5 % steps
# T covers as little as 1/36 of W's area: W needs many keypoints for enough to fall there.
MAX_WIDE_KEYPOINTS = 20000
ECC_ITERATIONS = 100
# T is shrunk to its expected size in W for each candidate field-of-view ratio; SIFT's own
# scale invariance bridges the factor ~1.4 to the nearest candidate (covers 1.1-9).
CANDIDATE_RATIOS = (1.6, 3.2, 6.4)


@dataclass
class Features:
    """Keypoints (N, 2) float32 (pixel centres at integers) and their descriptors."""
    points: np.ndarray
    descriptors: np.ndarray | None
    norm: int


def detect(gray: np.ndarray, detector: str = "sift", *, fast_threshold: int = 10,
           max_keypoints: int = 4000) -> Features:
    """Keypoints and descriptors of an 8-bit gray image: ``sift`` or ``fast`` (+ ORB descriptors)."""
    if detector == "sift":
        # A low contrast threshold (0.01, OpenCV's default 0.04) keeps keypoints in the
        # flat, low-contrast scenes where T's small footprint in W holds few corners.
        sift = cv2.SIFT_create(nfeatures=max_keypoints, contrastThreshold=0.01)
        keypoints, descriptors = sift.detectAndCompute(gray, None)
        norm = cv2.NORM_L2
    elif detector == "fast":
        fast = cv2.FastFeatureDetector_create(threshold=fast_threshold, nonmaxSuppression=True)
        keypoints = sorted(fast.detect(gray, None), key=lambda k: -k.response)[:max_keypoints]
        for k in keypoints:
            k.size = 31.0  # ORB's patch size: FAST gives no scale
        keypoints, descriptors = cv2.ORB_create().compute(gray, keypoints)
        norm = cv2.NORM_HAMMING
    else:
        raise ValueError(f"unknown detector {detector!r}")
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return Features(points, descriptors if len(points) >= 2 else None, norm)


def match_features(a: Features, b: Features, ratio_test: float = 0.8
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Matched point pairs (N, 2) float32 in a and b: ratio test + mutual nearest neighbours."""
    empty = np.zeros((0, 2), np.float32)
    if a.descriptors is None or b.descriptors is None:
        return empty, empty
    # SIFT's float descriptors: approximate nearest neighbours (FLANN k-d trees), ~20x
    # faster than brute force with thousands of keypoints; ORB's binary ones: brute force.
    matcher = (cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
               if a.norm == cv2.NORM_L2 else cv2.BFMatcher(a.norm))
    forward = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    backward = {m[0].queryIdx: m[0].trainIdx
                for m in matcher.knnMatch(b.descriptors, a.descriptors, k=1) if m}
    pairs = [(m[0].queryIdx, m[0].trainIdx) for m in forward
             if len(m) == 2 and m[0].distance < ratio_test * m[1].distance
             and backward.get(m[0].trainIdx) == m[0].queryIdx]
    if not pairs:
        return empty, empty
    ia, ib = np.array(pairs).T
    return a.points[ia], b.points[ib]


def match_keypoints(gray_a: np.ndarray, gray_b: np.ndarray, *, detector: str = "fast",
                    fast_threshold: int = 10, max_keypoints: int = 4000,
                    ratio_test: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Matched point pairs (N, 2) float32 in a and b (see :func:`detect`, :func:`match_features`)."""
    a, b = (detect(g, detector, fast_threshold=fast_threshold, max_keypoints=max_keypoints)
            for g in (gray_a, gray_b))
    return match_features(a, b, ratio_test)


@dataclass
class Registration:
    """T's footprint in W: ``matrix`` (3x3) maps T pixel-edge coordinates to W's.

    ``inliers`` of ``matches`` SIFT matches agree with the feature fit it was refined from;
    ``correlation`` is the enhanced correlation coefficient of T and W under ``matrix``
    (1 = identical up to gain and offset); ``candidate`` the field-of-view ratio at which T
    was shrunk for matching.
    """
    matrix: np.ndarray
    inliers: int
    matches: int
    correlation: float
    candidate: float

    @property
    def agrees(self) -> bool:
        return self.correlation >= MIN_CORRELATION


def fit_transform(p_from: np.ndarray, p_to: np.ndarray, model: str, tolerance: float
                  ) -> tuple[np.ndarray | None, int]:
    """RANSAC fit (3x3 matrix or None, inlier count) of a ``similarity`` or ``homography``."""
    if len(p_from) < 4:
        return None, 0
    if model == "similarity":
        matrix, inliers = cv2.estimateAffinePartial2D(p_from, p_to, method=cv2.RANSAC,
                                                      ransacReprojThreshold=tolerance,
                                                      maxIters=4000, confidence=0.999)
        if matrix is not None:
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    elif model == "homography":
        matrix, inliers = cv2.findHomography(p_from, p_to, cv2.USAC_MAGSAC, tolerance,
                                             maxIters=4000, confidence=0.999)
    else:
        raise ValueError(f"unknown transform model {model!r}")
    if matrix is None:
        return None, 0
    return matrix.astype(np.float64), int(inliers.sum())


def _scaled(matrix: np.ndarray, scale_from: float, scale_to: float) -> np.ndarray:
    """``matrix`` (pixel edges) re-expressed between copies scaled by scale_from and scale_to."""
    return np.diag([scale_to, scale_to, 1.0]) @ matrix @ np.diag([1 / scale_from, 1 / scale_from, 1.0])


def plausible_footprint(matrix: np.ndarray, tele_wh) -> bool:
    """Whether a T -> W map could come from two cameras: T's pixels stay square (the linear
    part at T's centre has singular values within MAX_ANISOTROPY of each other) and T's
    frame stays a convex quadrilateral. ECC may otherwise stretch a wrong footprint until
    an unrelated patch correlates."""
    w, h = tele_wh
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ matrix.T
    if np.any(corners[:, 2] <= 0):
        return False
    xy = corners[:, :2] / corners[:, 2:]
    edges = np.roll(xy, -1, axis=0) - xy
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return False
    # Jacobian of the projective map at T's centre
    cx, cy = w / 2, h / 2
    q = matrix @ np.array([cx, cy, 1.0])
    jacobian = (matrix[:2, :2] - np.outer(q[:2] / q[2], matrix[2, :2])) / q[2]
    singular = np.linalg.svd(jacobian, compute_uv=False)
    return singular[1] > 0 and singular[0] / singular[1] <= MAX_ANISOTROPY


def refine_by_correlation(wide: np.ndarray, tele: np.ndarray, matrix: np.ndarray, model: str,
                          tele_scale: float) -> tuple[np.ndarray, float]:
    """(refined matrix, correlation) of T on W by ECC (Evangelidis & Psarakis 2008).

    T is compared at ``tele_scale`` of its size (<= 1) against the region of W around the
    footprint ``matrix`` (plus a margin for its error) resampled to the same density. ECC
    maximises the correlation coefficient over an affine map (similarity model) or a
    homography, invariant to the cameras' gain and offset. (matrix, -1) when it diverges
    or ends in a map no camera pair gives (:func:`plausible_footprint`).
    """
    th, tw = tele.shape[:2]
    gray_tele, scale_tele = to_uint8_gray(tele, max(16, round(max(th, tw) * min(1.0, tele_scale))))
    corners = np.array([[0, 0, 1], [tw, 0, 1], [tw, th, 1], [0, th, 1]], np.float64) @ matrix.T
    if np.any(corners[:, 2] <= 0):
        return matrix, -1.0
    xy = corners[:, :2] / corners[:, 2:]
    margin = ECC_MARGIN * (xy.max(axis=0) - xy.min(axis=0))
    x0, y0 = np.maximum(np.floor(xy.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0) + margin), wide.shape[1::-1]).astype(int)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return matrix, -1.0
    # W's region at T's compared density: W px -> compared px
    density = scale_tele / np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
    region_wh = (max(8, round((x1 - x0) * density)), max(8, round((y1 - y0) * density)))
    gray_wide = gray8(wide[y0:y1, x0:x1], region_wh[::-1])
    to_region = np.array([[region_wh[0] / (x1 - x0), 0.0, -x0 * region_wh[0] / (x1 - x0)],
                          [0.0, region_wh[1] / (y1 - y0), -y0 * region_wh[1] / (y1 - y0)],
                          [0.0, 0.0, 1.0]])
    small = to_region @ matrix @ np.diag([1 / scale_tele, 1 / scale_tele, 1.0])
    # ECC works on pixel centres: edge -> centre conversion on both sides
    centre = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    warp = np.linalg.inv(centre) @ small @ centre
    motion = cv2.MOTION_HOMOGRAPHY if model == "homography" else cv2.MOTION_AFFINE
    start = (warp / warp[2, 2] if model == "homography" else warp[:2]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5)
    try:
        correlation, refined = cv2.findTransformECC(gray_tele.astype(np.float32),
                                                    gray_wide.astype(np.float32), start,
                                                    motion, criteria, None, 5)
    except cv2.error:  # ECC diverged (no overlap left) or the images are flat
        return matrix, -1.0
    refined = np.vstack([refined, [0.0, 0.0, 1.0]]) if refined.shape[0] == 2 else refined
    if not plausible_footprint(refined, gray_tele.shape[1::-1]):
        return matrix, -1.0
    small = centre @ refined.astype(np.float64) @ np.linalg.inv(centre)
    return np.linalg.inv(to_region) @ small @ np.diag([scale_tele, scale_tele, 1.0]), float(correlation)


def template_hypothesis(gray_wide: np.ndarray, scale_wide: float, tele: np.ndarray
                        ) -> np.ndarray:
    """3x3 footprint (pixel edges, T -> W) of the best normalised cross-correlation of T,
    shrunk to each ratio of a fine scale ladder, over the small W copy ``gray_wide`` (W
    scaled by ``scale_wide``); no rotation.

    The dense hypothesis for scenes too flat for keypoints (large uniform areas, edges
    without corners): every pixel counts, and ECC refines what the ladder's step leaves.
    """
    largest = gray_wide.shape[1] / TEMPLATE_RATIOS[0]
    gray_tele_large, _ = to_uint8_gray(tele, max(8, round(max(tele.shape[:2]) * min(
        1.0, largest / tele.shape[1]))))
    best = (-2.0, np.eye(3))
    for ratio in TEMPLATE_RATIOS:
        size = (max(1, round(gray_wide.shape[1] / ratio)),
                max(1, round(gray_wide.shape[1] / ratio * tele.shape[0] / tele.shape[1])))
        if size[0] > gray_wide.shape[1] or size[1] > gray_wide.shape[0] or min(size) < 8:
            continue
        gray_tele = cv2.resize(gray_tele_large, size, interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(gray_wide, gray_tele, cv2.TM_CCOEFF_NORMED)
        _, score, _, (x, y) = cv2.minMaxLoc(scores)
        if score > best[0]:
            sx, sy = size[0] / tele.shape[1], size[1] / tele.shape[0]
            best = (score, np.array([[sx / scale_wide, 0.0, x / scale_wide],
                                     [0.0, sy / scale_wide, y / scale_wide], [0.0, 0.0, 1.0]]))
    return best[1]


def register_tele(wide: np.ndarray, tele: np.ndarray, prior_ratio: float | None = None, *,
                  model: str = "similarity", long_side: int = 1600, tolerance_px: float = 2.0,
                  ) -> Registration:
    """T's footprint in W: hypotheses verified and refined by correlation (module doc).

    First a dense template-matching hypothesis (:func:`template_hypothesis`, cheap); unless
    ECC confirms it confidently, SIFT ones (:func:`_sift_search`). Each hypothesis is refined
    to ``model`` (similarity: an affine map; homography) by ECC with T at W's resolution
    (W capped at ``ECC_LONG_SIDE``); the highest correlation wins, and is refined once more
    with T at up to ``ECC_FINE_LONG_SIDE`` px (sub-pixel in T). ``wide`` and ``tele``: float
    RGB (H, W, 3) in [0, 1], or their luminance planes (H, W): only luminance is read, so
    planes computed once spare each step its own pass over the full-size images.
    """
    coarse = min(1.0, ECC_LONG_SIDE / max(wide.shape[:2]))  # W px -> compared px

    def verify(matrix: np.ndarray) -> tuple[np.ndarray, float]:
        density = 1.0 / np.sqrt(abs(np.linalg.det(matrix[:2, :2])))  # T px per W px
        return refine_by_correlation(wide, tele, matrix, model, coarse / density)

    gray_small, scale_small = to_uint8_gray(wide, TEMPLATE_LONG_SIDE)
    matrix, correlation = verify(template_hypothesis(gray_small, scale_small, tele))
    best = Registration(matrix, 0, 0, correlation, float("nan"))
    if best.correlation < CONFIDENT_CORRELATION:
        best = _sift_search(wide, tele, prior_ratio, model, long_side, tolerance_px, verify, best)
    if best.agrees:
        fine, correlation = refine_by_correlation(
            wide, tele, best.matrix, model, ECC_FINE_LONG_SIDE / max(tele.shape[:2]))
        if correlation >= MIN_CORRELATION:
            best.matrix = fine
    return best


def _sift_search(wide, tele, prior_ratio, model, long_side, tolerance_px, verify, best):
    """The SIFT part of :func:`register_tele`: the best ``verify``-ed hypothesis, or ``best``.

    W is matched at ``long_side`` px. For each candidate field-of-view ratio (the prior
    first; the others until one is confidently confirmed) T is shrunk to twice the size it
    would have in that copy (never enlarged), matched, and a similarity fitted by RANSAC
    (tolerance ``tolerance_px`` in the W copy's px).
    """
    gray_wide, scale_wide = to_uint8_gray(wide, long_side)
    features_wide = detect(gray_wide, "sift", max_keypoints=MAX_WIDE_KEYPOINTS)
    width_small = gray_wide.shape[1]
    candidates = list(CANDIDATE_RATIOS)
    if prior_ratio:
        candidates = [float(prior_ratio)] + [c for c in candidates
                                             if abs(np.log(c / prior_ratio)) > np.log(1.25)]
    for candidate in candidates:
        tele_long = max(tele.shape[:2]) * min(1.0, 2.0 * width_small / candidate / tele.shape[1])
        gray_tele, scale_tele = to_uint8_gray(tele, max(16, round(tele_long)))
        p_tele, p_wide = match_features(detect(gray_tele, "sift"), features_wide)
        # pixel centres -> edges, then each copy's scale -> full-size T and W
        # the hypothesis is always a similarity: RANSAC on few matches cannot be trusted with
        # a homography's 8 parameters; ECC then refines it densely to ``model``
        matrix, inliers = fit_transform((p_tele + 0.5) / scale_tele, (p_wide + 0.5) / scale_wide,
                                        "similarity", tolerance_px / scale_wide)
        if matrix is None or inliers < MIN_HYPOTHESIS_INLIERS:
            continue
        refined, correlation = verify(matrix)
        if correlation > best.correlation:
            best = Registration(refined, inliers, len(p_tele), correlation, candidate)
        if best.correlation >= CONFIDENT_CORRELATION:
            return best  # the remaining candidates cannot do meaningfully better
    return best
