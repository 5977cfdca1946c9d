"""Real captures for training the fusion: registered low/high pairs and a user's own W/T pairs.

Two sources of real optics, both turned into (target, W capture on the target's grid) pairs
that ``simulate.make_sample`` combines with the rig's second view of the target:

- *aligned pairs* (``NNNL.png`` / ``NNNH.png``, City100 of Chen et al., CVPR 2019): the same
  scene at a short (L: the real blur, noise and ISP of a wide capture) and a long focal
  length (H: the real detail), registered by the dataset's authors and stored at the same
  size. H is the target, L the W capture.
- *user pairs* (SelfDZSR++, Zhang et al.: self-supervised learning from dual zoomed
  observations): folders with ``wide.*`` and ``tele.*`` and no ground truth. T's whole frame
  is the target and W's matching region (found by the pipeline's own registration:
  ``hzsr.ratio`` then ``hzsr.align``) the W capture, resampled onto T's grid.

In both, the target is registered to the W capture by *patch-wise* flow
(:func:`patchwise_flow`): DIS flow between the two, reduced to the median of each
``cell`` x ``cell`` patch and interpolated, so parallax and the residual misregistration of the
pair (City100: median 0.3-1.2 px, up to ~5 px) are removed at patch scale without the
pixel-level artefacts of a dense warp ending up in the label. What is left is sub-patch
misalignment, for which the loss includes CoBi.
"""
from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.align import align_images
from nodegraph.nodes.hzsr.flow import estimate_flow
from nodegraph.nodes.hzsr.ratio import resolve_ratio
from nodegraph.nodes.image_io import read_image

from . import ALIGNED_VALIDATION
from .simulate import load_photo, render_view

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass
class RealPair:
    """A target (the real T-side detail) and a W capture registered to it on the same grid.

    ``w_density``: T's pixel density over W's in ``w_capture`` (None: W stored on T's grid at
    an unknown density, to be resampled by a drawn zoom, as City100's L)."""
    name: str
    target: np.ndarray
    w_capture: np.ndarray
    w_density: float | None = None


def patchwise_flow(src: np.ndarray, target: np.ndarray, cell: int = 32,
                   work_size: tuple[int, int] = (384, 512)) -> np.ndarray:
    """Flow F (H, W, 2) with target(x + F(x)) ~ src(x): DIS flow (``hzsr.flow``), the median of
    each ``cell`` x ``cell`` patch, bilinearly interpolated between patch centres."""
    forward, _, _ = estimate_flow(src, target, "dis", work_size)
    h, w = src.shape[:2]
    rows, cols = max(1, h // cell), max(1, w // cell)
    cells = forward[:rows * cell, :cols * cell].reshape(rows, cell, cols, cell, 2)
    medians = np.median(cells, axis=(1, 3)).astype(np.float32)
    return cv2.resize(medians, (w, h), interpolation=cv2.INTER_LINEAR)


def register_target(w_capture: np.ndarray, target: np.ndarray, cell: int = 32) -> np.ndarray:
    """``target`` resampled (Lanczos) onto ``w_capture``'s geometry by :func:`patchwise_flow`."""
    return render_view(target, patchwise_flow(w_capture, target, cell))


def load_aligned_pairs(folder: str, validation: tuple[str, ...] = ALIGNED_VALIDATION
                       ) -> tuple[list[RealPair], list[RealPair]]:
    """(training, validation) pairs of ``NNNH.png`` / ``NNNL.png`` in ``folder``, the targets
    patch-wise registered to L; ``validation`` names the held-out NNN. InputError if none."""
    train, val = [], []
    for high_path in sorted(glob.glob(os.path.join(folder, "*H.png"))):
        stem = os.path.basename(high_path)[:-len("H.png")]
        low_path = os.path.join(folder, stem + "L.png")
        if not os.path.isfile(low_path):
            continue
        high, low = load_photo(high_path), load_photo(low_path)
        if high.shape != low.shape:
            raise InputError(f"{low_path}: size {low.shape[1]}x{low.shape[0]} differs from "
                             f"{os.path.basename(high_path)}'s; aligned pairs must match")
        pair = RealPair(stem, register_target(low, high), low)
        (val if stem in validation else train).append(pair)
    if not train:
        raise InputError(f"--aligned-pairs {folder}: no NNNH.png / NNNL.png training pairs there")
    return train, val


def _find(folder: str, stem: str) -> str | None:
    for ext in IMAGE_EXTENSIONS:
        for name in (stem + ext, stem + ext.upper()):
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def pair_folders(root: str) -> list[str]:
    """``root`` itself if it holds wide.* and tele.*, else its subfolders that do (sorted)."""
    if _find(root, "wide") and _find(root, "tele"):
        return [root]
    return sorted(d for d in glob.glob(os.path.join(root, "*"))
                  if os.path.isdir(d) and _find(d, "wide") and _find(d, "tele"))


def register_user_pair(folder: str, max_side: int = 1400) -> RealPair:
    """A user's W/T pair as a :class:`RealPair`: T (colour-matched to W and translated by
    ``hzsr.align``) is the target, W's footprint of T resampled onto T's grid the W capture.

    The footprint comes from the pipeline: ``hzsr.ratio``'s prior (EXIF focal lengths, else
    unknown) and ``hzsr.align``'s registration (T stays on its own grid). Raises InputError naming
    the folder when registration fails. T larger than ``max_side`` is area-downscaled first
    (and W with it), as the rig's photos are.
    """
    wide, wide_focal = read_image(_find(folder, "wide"))
    tele, tele_focal = read_image(_find(folder, "tele"))
    scale = max_side / max(tele.shape[:2])
    if scale < 1.0:
        tele = cv2.resize(tele, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        wide = cv2.resize(wide, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    try:
        ratio, _ = resolve_ratio(wide_focal, tele_focal, None)  # a prior, None if unknown
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # align's note; a failure raises InputError
            aligned = align_images(wide, tele, ratio)
    except InputError as err:
        raise InputError(f"{folder}: {err}") from None
    inside = np.argwhere(aligned["coverage"] == 255)  # uint8: all of the pixel in W's frame
    if len(inside) == 0:
        raise InputError(f"{folder}: tele covers no pixel of wide's footprint")
    (y0, x0), (y1, x1) = inside.min(axis=0), inside.max(axis=0) + 1
    src = aligned["src"][y0:y1, x0:x1]
    target = aligned["ref"][y0:y1, x0:x1]
    crop = aligned["crop"]
    density = tele.shape[1] / (crop[2] - crop[0])
    return RealPair(os.path.basename(os.path.normpath(folder)), register_target(src, target),
                    np.ascontiguousarray(src), float(density))


def load_user_pairs(root: str) -> tuple[list[RealPair], list[str]]:
    """(registered pairs, one line per pair folder that could not be used) under ``root``."""
    pairs, skipped = [], []
    for folder in pair_folders(root):
        try:
            pairs.append(register_user_pair(folder))
        except InputError as err:
            skipped.append(str(err))
    return pairs, skipped
