"""Registration of the tele image T onto the wide image W (SPEC §4 step 2).

T's *footprint* is where T's frame lies in W: a 3x3 map of pixel-edge coordinates (T -> W),
a similarity (scale, rotation, translation) or a homography. Three ways to find it
(``mode``):

- ``crop_translate``: the paper's cheap path. T covers W's centre at the prior ratio (with
  T's aspect); W's region is resampled to T's grid, FAST keypoints are matched and a robust
  global translation voted. Verified: the translation must explain at least
  TRANSLATION_SHARE of the matches a similarity explains (same tolerance).
- ``features``: SIFT hypotheses over candidate ratios (the prior first) verified and refined
  densely by correlation (``ops.matching.register_tele``): any ratio 1.2-8, any T size or
  aspect, small rotations; the prior only orders the search.
- ``pre_aligned``: T is trusted to cover exactly W's centre at the prior ratio (with T's
  aspect); nothing is matched.
- ``auto`` (default): ``crop_translate`` when a prior ratio exists and it verifies, else
  ``features``.

The *working grid* is T's own pixel grid, so all of T's detail is kept untouched (T's
pixel density, T px per W px, is measured: it may differ from the field-of-view ratio):
I_src is W resampled onto it through the footprint (bicubic), I_ref is T colour-matched to W,
``coverage`` 1 where W's frame reaches. When T cannot be registered the node fails with
one line naming what failed and what to try: it never passes an upsampled W off as a fused
result.
"""
from __future__ import annotations

import cv2
import numpy as np

from nodegraph import Any, CompactImage, CompactMask, Image, Out, Param, Rect, Scalar, Shift, node, note
from nodegraph.errors import InputError
from nodegraph.nodes.ops.colour import match_colour
from nodegraph.nodes.ops.geometry import (
    KERNEL_REACH,
    bounding_rect,
    centred_rect,
    footprint_corners,
    footprint_width,
    rect_to_edge_matrix,
    resample_region,
)
from nodegraph.nodes.ops.luminance import gray8, luminance, to_uint8_gray
from nodegraph.nodes.ops.matching import (
    MIN_CORRELATION,
    fit_transform,
    match_keypoints,
    register_tele,
)
from nodegraph.types import compact_to_float, quantize_mask

MODES = ("auto", "features", "crop_translate", "pre_aligned")
MIN_INLIERS = 12
MIN_INLIER_FRACTION = 0.1
TRANSLATION_SHARE = 0.7  # of a similarity's inliers a translation must explain (cheap path)
# The cheap path's keypoints per image, strongest first. Matching is brute force (binary ORB
# descriptors), so its cost grows with the square: at 12 MP 2000 took 0.13 s against 0.27 s
# for 4000 and moved the translation by only 0.02 px, but through the flow and the defocus
# mask that moved mb14_motorcycle_x2 by +0.11 dB (visible) and -0.04 dB (occluded, to -0.197
# against the -0.2 bar): kept at 4000.
FAST_KEYPOINTS = 4000

LUMINANCE_BLOCK_PIXELS = 1 << 20  # luminance_plane's block: a 12 MB float temporary


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
    # squared distances per axis: no (candidates, N, 2) array and no square roots
    dx = candidates[:, 0, None] - displacements[None, :, 0]
    dy = candidates[:, 1, None] - displacements[None, :, 1]
    votes = np.count_nonzero(dx * dx + dy * dy <= tolerance * tolerance, axis=1)
    best = candidates[np.argmax(votes)]
    inliers = np.linalg.norm(displacements - best, axis=1) <= tolerance
    # A second vote around the inlier mean removes the bias of the integer-valued hypothesis.
    centre = displacements[inliers].mean(axis=0)
    inliers = np.linalg.norm(displacements - centre, axis=1) <= tolerance
    return displacements[inliers].mean(axis=0), inliers


def wide_on_grid(wide: np.ndarray, rect, grid_wh) -> np.ndarray:
    """W's luminance over ``rect`` (pixel edges) resampled onto a ``grid_wh`` grid (bicubic),
    area-averaged first by the whole number of W pixels a grid pixel spans, so a grid coarser
    than W is not aliased (as resampling onto T's grid and area-shrinking that would do, at a
    fraction of the cost at 12 MP). ``wide`` as decoded (a CompactImage) or float: only the
    part of it the result reads is converted."""
    per_cell = min((rect[2] - rect[0]) / grid_wh[0], (rect[3] - rect[1]) / grid_wh[1])
    block = int(per_cell) if per_cell >= 2.0 else 1
    if block == 1:
        return resample_region(wide, rect, grid_wh, to_float=luminance_plane)
    # the block-aligned part of W that the bicubic read reaches (whole blocks, as the area
    # average of all of W would make them; the image's own edges where the part meets them)
    h, w = (d // block * block for d in wide.shape[:2])
    reach = (KERNEL_REACH + 1) * block
    x0, y0 = (max(0, int(np.floor(v)) - reach) // block * block for v in rect[:2])
    x1, y1 = (min(n, -(-(int(np.ceil(v)) + reach) // block) * block) for v, n in zip(rect[2:], (w, h)))
    y_part = luminance_plane(wide[y0:y1, x0:x1])
    y_part = cv2.resize(y_part, ((x1 - x0) // block, (y1 - y0) // block), interpolation=cv2.INTER_AREA)
    return resample_region(y_part, ((rect[0] - x0) / block, (rect[1] - y0) / block,
                                    (rect[2] - x0) / block, (rect[3] - y0) / block), grid_wh)


def luminance_plane(image: np.ndarray) -> np.ndarray:
    """Y (H, W) float32 of an RGB image as decoded (a CompactImage) or float, converted in
    blocks of rows: registration reads only luminance, and W's float copy (137 MB at 12 MP)
    would be made only to be reduced to it. Equal to ``luminance(compact_to_float(image))``."""
    if image.dtype == np.float32:
        return luminance(image)
    out = np.empty(image.shape[:2], np.float32)
    step = max(1, LUMINANCE_BLOCK_PIXELS // max(1, image.shape[1]))
    for top in range(0, image.shape[0], step):
        out[top:top + step] = luminance(compact_to_float(image[top:top + step]))
    return out


def centred_footprint(wide_wh, tele_wh, ratio: float) -> np.ndarray:
    """3x3 map (pixel edges, T -> W) placing T over W's centre at field-of-view ``ratio``."""
    rect = centred_rect(wide_wh[0], wide_wh[1], ratio, tele_wh[0] / tele_wh[1])
    return rect_to_edge_matrix(rect, tele_wh)


def crop_translate(wide: np.ndarray, tele: np.ndarray, ratio: float, feature_long_side: int,
                   fast_threshold: int, tolerance_px: float) -> tuple[np.ndarray | None, str]:
    """(footprint or None, why not) of the cheap path: central crop + FAST translation, verified."""
    th, tw = tele.shape[:2]
    centred = centred_footprint((wide.shape[1], wide.shape[0]), (tw, th), ratio)
    gray_ref, scale = to_uint8_gray(tele, feature_long_side)
    gray_src = gray8(wide_on_grid(wide, bounding_rect(footprint_corners(centred, (tw, th))),
                                  gray_ref.shape[1::-1]))
    p_src, p_ref = match_keypoints(gray_src, gray_ref, detector="fast",
                                   fast_threshold=fast_threshold, max_keypoints=FAST_KEYPOINTS)
    # ref(x) = T(x - shift) lines T up with src, so shift = p_src - p_ref for a matched point.
    shift_small, inliers = robust_translation(p_src - p_ref, tolerance_px)
    n_inliers = int(inliers.sum())
    if n_inliers < MIN_INLIERS or n_inliers < MIN_INLIER_FRACTION * len(inliers):
        return None, f"only {n_inliers} of {len(inliers)} FAST matches agree on a translation"
    # Verified when a similarity explains hardly more matches than the translation: a wrong
    # prior ratio leaves only a central cluster of the matches to a translation, while
    # parallax spoils a similarity as much as a translation.
    _, n_similarity = fit_transform(p_ref, p_src, "similarity", tolerance_px)
    if n_inliers < TRANSLATION_SHARE * n_similarity:
        return None, (f"a similarity explains {n_similarity} matches, the translation only "
                      f"{n_inliers} (the prior ratio is off, or T is turned)")
    shift = shift_small / scale  # T px: T pixel u sits at u + shift on the centred grid
    return centred @ np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]], [0.0, 0.0, 1.0]]), ""


def find_footprint(wide: np.ndarray, tele: np.ndarray, prior: float | None, mode: str,
                   transform: str, feature_long_side: int, fast_threshold: int,
                   tolerance_px: float) -> tuple[np.ndarray, str]:
    """(3x3 footprint T -> W, sentence saying how it was found) for ``mode`` (module doc)."""
    if mode not in MODES:
        raise InputError(f"align.mode must be one of {', '.join(MODES)}, got {mode!r}")
    wide_wh, tele_wh = (wide.shape[1], wide.shape[0]), (tele.shape[1], tele.shape[0])
    if mode in ("pre_aligned", "crop_translate") and not prior:
        raise InputError(f"align.mode={mode} needs the field-of-view ratio: give --set ratio=R "
                         "(or images with EXIF 35 mm focal lengths), or use align.mode=features")
    if mode == "pre_aligned":
        return centred_footprint(wide_wh, tele_wh, prior), "trusted as pre-aligned (no matching)"
    why_not = ""
    if mode in ("auto", "crop_translate") and prior:
        footprint, why_not = crop_translate(wide, tele, prior, feature_long_side, fast_threshold,
                                            tolerance_px)
        if footprint is not None:
            return footprint, "central crop + FAST translation"
        if mode == "crop_translate":
            raise InputError(f"align.mode=crop_translate failed: {why_not}; check --set ratio, "
                             "or use align.mode=features")
    found = register_tele(luminance_plane(wide), luminance(tele), prior, model=transform)
    if not found.agrees:
        best = (f"best correlation {found.correlation:.2f}" if found.correlation >= 0
                else "none converged")
        raise InputError(
            "cannot register tele onto wide: "
            + (f"the cheap path failed ({why_not}) and " if why_not else "")
            + f"no template or SIFT footprint correlates with W ({best}, need {MIN_CORRELATION})"
            "; are they the same scene? If T is already aligned to W's centre use --set "
            "align.mode=pre_aligned with --set ratio=R")
    hypothesis = (f"{found.inliers} of {found.matches} SIFT matches" if found.matches
                  else "template matching")
    return found.matrix, (f"{transform} from {hypothesis} refined by correlation "
                          f"{found.correlation:.3f}")


def place_tele(wide: np.ndarray, tele: np.ndarray, footprint: np.ndarray, *,
               overwrite_tele: bool = False) -> dict:
    """src, ref, coverage, crop, shift, overlap, ratio, density, footprint on T's grid (module
    doc). ``overwrite_tele``: ``tele`` (float) is the caller's own scratch copy, and ``ref`` is
    colour-matched in place in it (at 12 MP one 137 MB image fewer)."""
    th, tw = tele.shape[:2]
    corners = footprint_corners(footprint, (tw, th))
    width = footprint_width(corners, (tw, th))
    density = tw / width
    centre_to_edge = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    to_wide = np.linalg.inv(centre_to_edge) @ footprint @ centre_to_edge  # T -> W pixel centres
    wh = wide.shape[1::-1]
    # Only the part of W under the footprint (and the kernel's reach) is converted and read;
    # where the part meets W's edges they are W's own, so the warp equals that of all of W.
    x0, y0 = (min(max(0, int(np.floor(v)) - KERNEL_REACH), n - 1) for v, n in zip(corners.min(axis=0), wh))
    x1, y1 = (max(min(n, int(np.ceil(v)) + KERNEL_REACH + 1), low + 1)
              for v, n, low in zip(corners.max(axis=0), wh, (x0, y0)))
    to_part = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ to_wide
    part = compact_to_float(wide[y0:y1, x0:x1])
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    if np.allclose(to_part[2], [0.0, 0.0, 1.0], atol=1e-12):
        src = cv2.warpAffine(part, to_part[:2], (tw, th), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    else:
        src = cv2.warpPerspective(part, to_part, (tw, th), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    del part
    src = np.clip(src, 0.0, 1.0, out=src)  # in place: bicubic overshoots, no second 12 MP copy
    # Colour statistics over the overlap only, at W's optical resolution.
    low_wh = (max(1, round(tw / density)), max(1, round(th / density)))
    if np.all((corners >= 0) & (corners <= wh)):
        # built as the 8-bit mask the port stores: a 12 MP float plane of ones costs more
        coverage = np.full((th, tw), 255, np.uint8)
        overlap, seen = 1.0, None  # every sample at W's resolution
    else:  # part of T lies outside W's frame: nothing to fuse there
        covered = np.clip(cv2.warpPerspective(np.ones(wide.shape[:2], np.float32), to_wide, (tw, th),
                                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                              borderMode=cv2.BORDER_CONSTANT, borderValue=0),
                          0.0, 1.0)
        if covered.max() <= 0:
            raise InputError("the tele footprint found lies outside the wide frame")
        coverage, overlap = quantize_mask(covered), float(covered.mean())
        seen = cv2.resize(covered, low_wh, interpolation=cv2.INTER_AREA) > 0.999
    src_low, tele_low = (cv2.resize(image, low_wh, interpolation=cv2.INTER_AREA) for image in (src, tele))
    src_low, tele_low = ((low.reshape(-1, 3) if seen is None else low[seen]) for low in (src_low, tele_low))
    if len(src_low) < 16:  # (almost) no common area at W's resolution
        src_low, tele_low = src.reshape(-1, 3), tele.reshape(-1, 3)
    # Global means and deviations need no more than ~250k samples (speed at 12 MP).
    step = max(1, len(src_low) // 250_000)
    ref = match_colour(tele, tele_low[::step], src_low[::step], out=tele if overwrite_tele else None)
    # T's footprint as the axis-aligned W rectangle of T's shape and the footprint's area
    centre = footprint @ np.array([tw / 2, th / 2, 1.0])
    cx, cy = centre[:2] / centre[2]
    crop = (cx - width / 2, cy - width * th / tw / 2, cx + width / 2, cy + width * th / tw / 2)
    return {"src": src, "ref": ref, "coverage": coverage, "crop": tuple(float(v) for v in crop),
            "shift": (0.0, 0.0), "overlap": overlap, "ratio": wh[0] / width,
            "density": density, "footprint": footprint}


def align_images(wide: np.ndarray, tele: np.ndarray, prior: float | None, *, mode: str = "auto",
                 transform: str = "similarity", feature_long_side: int = 1000,
                 fast_threshold: int = 10, tolerance_px: float = 2.0) -> dict:
    """Find T's footprint in W and put both on the working grid (see the module doc)."""
    if prior is not None and not prior >= 1.0:
        raise InputError(f"field-of-view ratio must be >= 1, got {prior!r}")
    samples = tele.dtype != np.float32  # T as decoded: its float copy is made here, and reused
    tele = compact_to_float(tele)
    footprint, how = find_footprint(wide, tele, prior, mode, transform, feature_long_side,
                                    fast_threshold, tolerance_px)
    out = place_tele(wide, tele, footprint, overwrite_tele=samples)
    if not out["ratio"] >= 1.0:
        raise InputError(f"the tele footprint found ({how}) is wider than W (field-of-view ratio "
                         f"{out['ratio']:.3g} < 1): swapped inputs?")
    out["how"] = how
    return out


@node("hzsr.align", version=4)
def align(wide: CompactImage, tele: CompactImage, ratio: Scalar = None, *,
          mode: str = Param("auto", choices=MODES,
                            doc="auto: the cheap path when a prior ratio exists and it verifies, "
                                "else features; features: SIFT + correlation (any ratio 1.2-8, "
                                "rotation, T of any size); crop_translate: the paper's central "
                                "crop + FAST translation only; pre_aligned: T trusted to cover "
                                "W's centre at the ratio"),
          transform: str = Param("similarity", choices=("similarity", "homography"),
                                 doc="footprint model of the features path (a homography for "
                                     "tilted views)"),
          feature_long_side: int = Param(1000, range=(200, 8000), unit="px",
                                         doc="FAST keypoints (cheap path) are detected on copies "
                                             "downscaled to this long side; the shift is scaled back"),
          fast_threshold: int = Param(10, range=(1, 100), unit="8-bit levels",
                                      doc="FAST corner contrast threshold"),
          tolerance_px: float = Param(2.0, range=(0.25, 20.0), unit="px",
                                      doc="inlier distance of the translation vote, at feature scale"),
          ) -> Out(src=Image, ref=Image, coverage=CompactMask, crop=Rect, shift=Shift, overlap=Scalar,
                   ratio=Scalar, footprint=Any):
    """Register T in W and put both on the working grid: I_src (W) and I_ref (T, colour-matched).

    ``ratio`` in: the field-of-view prior (W width / width T covers in W; None = unknown).
    ``footprint`` by ``mode`` (module doc): 3x3, T pixel edges -> W's. The working grid is
    T's own (h, w): ``src`` (h, w, 3) W resampled onto it through the footprint (bicubic),
    ``ref`` T itself, untouched but for per-channel mean/std matched to W, ``coverage`` (h, w)
    the share of each pixel W's frame reaches (uint8, 255 = all), ``overlap`` its mean (0-1),
    ``shift`` (0, 0) (T px = working px),
    ``crop`` the footprint as the W rectangle (x0, y0, x1, y1) of T's shape and the same
    area, ``ratio`` out: the measured field-of-view ratio (W width / crop width); T's pixel
    density is T width / crop width. Failure: InputError naming what failed and what to try.
    """
    out = align_images(wide, tele, None if ratio is None else float(ratio), mode=mode,
                       transform=transform, feature_long_side=feature_long_side,
                       fast_threshold=fast_threshold, tolerance_px=tolerance_px)
    note(f"tele footprint {out['how']}: field-of-view ratio {out['ratio']:.4g}, T's pixel "
         f"density {out['density']:.3g}x W's")
    return {k: out[k] for k in ("src", "ref", "coverage", "crop", "shift", "overlap", "ratio",
                                "footprint")}
