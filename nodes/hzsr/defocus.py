"""Defocus mask M_defocus from the flow as a depth proxy (HZSR §3.3, SPEC §4.7).

W and T are roughly fronto-parallel, so F_fwd is a disparity and pixels on T's focal plane
share one flow vector. The focus flow F_fwd(x_f) is the centre of the largest k-means cluster
of the flow vectors inside the focus ROI, and

    M_defocus(x) = sigmoid((||F_fwd(x) - F_fwd(x_f)||_2^2 - gamma) / sigma_f)

is ~0 on T's focal plane and ~1 on layers whose disparity differs by more than sqrt(gamma) px.

Defaults: the blur circle of a point off T's focal plane and its disparity to that plane
both scale with 1/Z - 1/Z_f, with the lens aperture A and the W-T baseline B respectively, so
blur diameter ~ (A / B) * disparity difference. Phone telephotos have A ~ 3 mm (f ~ 9 mm at
f/2.8) and B ~ 10-15 mm, i.e. blur ~ disparity / 4; blur stays invisible below ~2 px, hence a
tolerance of about 8 px of disparity (gamma near 64 px^2). The shipped defaults (the node's
parameters) allow about 12 px: measured on the dev cases, whose stereo baselines are far wider
than a phone's (docs/tuning.md). Distances are in flow px (``ops.flow_fields.flow_unit``);
set gamma from the camera pair when A and B are known.

ROI convention: ``focus_roi`` is in T's pixels (as an autofocus module reports it); the
working grid is T's grid translated by ``shift`` (hzsr.align: ref(x) = T(x - shift)), so T
pixel p sits at p + shift and roi_on_grid = roi + (dx, dy, dx, dy), clipped to the grid.
"""
from __future__ import annotations

import math
import warnings

import cv2
import numpy as np

from nodegraph import CompactFlow, CompactMask, Out, Param, Rect, Shift, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.flow_fields import as_coarse, flow_geometry, flow_in_row, flow_row, flow_unit, sample_flow
from nodegraph.types import CoarseFlow

KMEANS_SEED = 0
KMEANS_ATTEMPTS = 3
KMEANS_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.01)


def focus_roi_on_grid(shape: tuple[int, int], focus_roi, shift) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1), x1/y1 exclusive, of the focus ROI on the working grid.

    Default ROI: the central 25 % of T's area (half its width by half its height). A ROI
    that misses the grid falls back to the grid's central 25 %, with a warning.
    """
    h, w = shape
    central = (w / 4, h / 4, 3 * w / 4, 3 * h / 4)
    dx, dy = shift if shift is not None else (0.0, 0.0)
    x0, y0, x1, y1 = focus_roi if focus_roi is not None else central
    box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
    xa, ya = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    xb, yb = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if xb <= xa or yb <= ya:
        warnings.warn(f"focus ROI {tuple(focus_roi or central)} shifted by ({dx}, {dy}) lies "
                      f"outside the {w}x{h} working grid; using its central 25 %", stacklevel=2)
        xa, ya = int(w // 4), int(h // 4)
        xb, yb = max(int(math.ceil(3 * w / 4)), xa + 1), max(int(math.ceil(3 * h / 4)), ya + 1)
    return xa, ya, xb, yb


def focus_flow(flow_fwd: np.ndarray | CoarseFlow, roi: tuple[int, int, int, int], k: int,
               max_samples: int) -> np.ndarray:
    """F_fwd(x_f): centre of the largest k-means cluster of the ROI's flow vectors, (2,) float32.

    The ROI is subsampled on a regular grid to at most ~``max_samples`` vectors; k-means runs
    with a fixed seed, k-means++ initialisation and a fixed number of attempts (reproducible).
    """
    x0, y0, x1, y1 = roi
    step = max(1, int(math.ceil(math.sqrt((y1 - y0) * (x1 - x0) / max_samples))))
    samples = sample_flow(flow_fwd, (y0, y1), (x0, x1), step).reshape(-1, 2)
    if len(samples) == 1:  # OpenCV would read a single 1x2 sample as two 1-D samples
        return samples[0].copy()
    k = max(1, min(k, len(samples)))
    cv2.setRNGSeed(KMEANS_SEED)
    _, labels, centres = cv2.kmeans(samples, k, None, KMEANS_CRITERIA, KMEANS_ATTEMPTS,
                                    cv2.KMEANS_PP_CENTERS)
    largest = np.bincount(labels.ravel(), minlength=k).argmax()
    return centres[largest].astype(np.float32)


@kernel(parallel=True)
def _defocus_kernel(field, geometry, focus, gamma, sigma_f, out):
    for i in prange(out.shape[0]):
        row = np.empty((field.shape[1], 2), np.float32)
        flow_row(field, geometry, i, row)
        for j in range(out.shape[1]):
            fx, fy = flow_in_row(row, geometry, j)
            dx = fx - focus[0]
            dy = fy - focus[1]
            t = (dx * dx + dy * dy - gamma) / sigma_f
            # the two branches of the logistic function that never overflow exp
            if t >= 0:
                out[i, j] = 1.0 / (1.0 + math.exp(-t))
            else:
                e = math.exp(t)
                out[i, j] = e / (1.0 + e)


def defocus_mask(flow_fwd: np.ndarray | CoarseFlow, focus: np.ndarray, gamma: float,
                 sigma_f: float) -> np.ndarray:
    """M_defocus = sigmoid((||F_fwd(x) - focus||^2 - gamma) / sigma_f), float32 (H, W) (Numba);
    F_fwd full-size (H, W, 2) or coarse (read at full size)."""
    flow = as_coarse(flow_fwd)
    out = np.empty(flow.shape[:2], np.float32)
    _defocus_kernel(flow.field, flow_geometry(flow), np.asarray(focus, np.float32), np.float32(gamma),
                    np.float32(sigma_f), out)
    return out


def defocus_mask_reference(flow_fwd, focus, gamma, sigma_f):
    """Plain NumPy version of :func:`defocus_mask`, for the tests."""
    d2 = np.sum((flow_fwd.astype(np.float64) - np.asarray(focus, np.float64)) ** 2, axis=-1)
    t = (d2 - gamma) / sigma_f
    return (0.5 * (1.0 + np.tanh(0.5 * t))).astype(np.float32)  # = sigmoid(t), overflow-free


def _load_kernels() -> None:
    """M_defocus's Numba kernel loaded from its cache (the node's warm-up)."""
    flow = np.zeros((8, 8, 2), np.float32)
    defocus_mask(flow, np.zeros(2, np.float32), 1.0, 1.0)
    sample_flow(flow, (0, 8), (0, 8), 2)


@node("hzsr.defocus", version=4, warm_up=_load_kernels)
def defocus(flow_fwd: CompactFlow, focus_roi: Rect = None, shift: Shift = None, *,
            gamma: float = Param(144.0, range=(0.0, 10000.0), unit="flow px^2",
                                 doc="tolerance gamma on the squared flow difference to the "
                                     "focal plane; 144 -> within ~12 flow px counts as in focus "
                                     "(measured, docs/tuning.md; phone rigs may want less)"),
            sigma_f: float = Param(36.0, range=(0.01, 10000.0), unit="flow px^2",
                                   doc="softness sigma_f of the sigmoid: M goes 0.12 -> 0.88 "
                                       "over gamma -/+ 2 sigma_f (~8.5 -> 14.7 flow px)"),
            k: int = Param(3, range=(1, 16), doc="number of k-means clusters in the focus ROI"),
            max_samples: int = Param(20000, range=(100, 1000000),
                                     doc="flow vectors k-means sees at most (ROI subsampled)")
            ) -> Out(M_defocus=CompactMask):
    """Defocus mask M_defocus = sigmoid((||F_fwd(x) - F_fwd(x_f)||^2 - gamma) / sigma_f) (HZSR §3.3).

    F_fwd(x_f) is the centre of the largest k-means cluster of F_fwd inside the focus ROI
    (T pixels, default T's central 25 %; mapped onto the working grid by + shift).
    """
    roi = focus_roi_on_grid(flow_fwd.shape[:2], focus_roi, shift)
    focus = focus_flow(flow_fwd, roi, k, max_samples)
    unit2 = flow_unit(flow_fwd.shape) ** 2  # gamma, sigma_f are in px^2 of the flow's resolution
    return defocus_mask(flow_fwd, focus, gamma * unit2, sigma_f * unit2)
