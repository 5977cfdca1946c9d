"""Forward-backward occlusion mask M_occ (HZSR §3.1, SPEC §4.5; Alvarez et al. 2007).

M_occ(x) = min(s * ||W(W(x; F_fwd); F_bwd) - x||_2, 1).  Following x to x' = x + F_fwd(x)
and back by F_bwd(x') gives x' + F_bwd(x'), so the round-trip residual is
r(x) = ||F_fwd(x) + F_bwd(x + F_fwd(x))||_2, with F_bwd read by the warp's bilinear sampler.

One addition to the formula: a pixel whose forward target x' lies outside the reference frame
has no reference pixel at all (the warp would smear the border), so it is occluded by
definition (M_occ = 1) unless ``out_of_frame_occluded`` is switched off.
"""
from __future__ import annotations

import numpy as np

from nodegraph import CompactFlow, CompactMask, Out, Param, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.flow_fields import (
    as_coarse,
    fb_residual_at,
    fb_residual_reference,
    flow_geometry,
    flow_in_row,
    flow_row,
    flow_unit,
)
from nodegraph.types import CoarseFlow


@kernel(parallel=True)
def _occlusion_kernel(fwd, fwd_geometry, bwd, bwd_geometry, s, out_of_frame_occluded, out):
    for i in prange(out.shape[0]):
        row = np.empty((fwd.shape[1], 2), np.float32)
        flow_row(fwd, fwd_geometry, i, row)
        for j in range(out.shape[1]):
            fx, fy = flow_in_row(row, fwd_geometry, j)
            r, inside = fb_residual_at(fx, fy, bwd, bwd_geometry, i, j)
            if out_of_frame_occluded and not inside:
                out[i, j] = 1.0
            else:
                out[i, j] = min(s * r, np.float32(1.0))


def occlusion_mask(flow_fwd: np.ndarray | CoarseFlow, flow_bwd: np.ndarray | CoarseFlow, s: float,
                   out_of_frame_occluded: bool = True) -> np.ndarray:
    """M_occ = min(s * ||F_fwd(x) + F_bwd(x + F_fwd(x))||_2, 1), float32 (H, W) in [0, 1] (Numba).

    Flows full-size (H, W, 2) or coarse (read at full size, ``ops.flow_fields.flow_at``)."""
    fwd, bwd = as_coarse(flow_fwd), as_coarse(flow_bwd)
    if fwd.shape != bwd.shape:
        raise ValueError(f"flows must both be (H, W, 2) of one size, got {fwd.shape}, {bwd.shape}")
    out = np.empty(fwd.shape[:2], np.float32)
    _occlusion_kernel(fwd.field, flow_geometry(fwd), bwd.field, flow_geometry(bwd), np.float32(s),
                      bool(out_of_frame_occluded), out)
    return out



def occlusion_mask_reference(flow_fwd: np.ndarray, flow_bwd: np.ndarray, s: float,
                             out_of_frame_occluded: bool = True) -> np.ndarray:
    """Plain NumPy version of :func:`occlusion_mask`, for the tests."""
    residual, inside = fb_residual_reference(flow_fwd, flow_bwd)
    mask = np.minimum(s * residual, 1.0)
    if out_of_frame_occluded:
        mask[~inside] = 1.0
    return mask.astype(np.float32)


def _load_kernels() -> None:
    """M_occ's Numba kernel loaded from its cache (the node's warm-up)."""
    flow = np.zeros((8, 8, 2), np.float32)
    occlusion_mask(flow, flow, 0.05)


@node("hzsr.occlusion", version=4, warm_up=_load_kernels)
def occlusion(flow_fwd: CompactFlow, flow_bwd: CompactFlow, *,
              s: float = Param(0.05, range=(0.0, 10.0), unit="1/flow px",
                               doc="sensitivity s: a round-trip error of 1/s px of the flow's "
                                   "reference resolution (long side 512, see flow.flow_unit) "
                                   "or more is fully occluded"),
              out_of_frame_occluded: bool = Param(True, doc="M_occ = 1 where x + F_fwd(x) falls "
                                                            "outside the reference frame")
              ) -> Out(M_occ=CompactMask):
    """Occlusion mask M_occ = min(s * ||W(W(x; F_fwd); F_bwd) - x||_2, 1) (HZSR §3.1).

    Forward-backward consistency: where F_bwd does not bring x' = x + F_fwd(x) back to x,
    the pixel is seen by only one camera (or the flow is wrong there). F_bwd is read at x'
    with the same bilinear, border-clamped sampler as the warp; both fields are read at full
    size from the grid they were computed on. Distances are in px of the flow's reference
    resolution, so s holds at any image size.
    """
    return occlusion_mask(flow_fwd, flow_bwd, s / flow_unit(flow_fwd.shape), out_of_frame_occluded)
