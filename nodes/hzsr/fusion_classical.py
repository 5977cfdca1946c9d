"""Classical (model-free) fusion on luminance: detail transfer from Ĩ_ref (SPEC §4.9).

The ablation baseline for the learned UNet, with the same ports. W's crop lacks the detail
above its optical band; the aligned T has it. G is a Gaussian that models W's optics as seen
on the working grid; T's detail is what G removes from Ỹ_ref, and it is added to Y_src:

    Y_fusion = Y_src + (1 - M_occ) * g * (Ỹ_ref - G(Ỹ_ref))

W keeps its whole signal (its low band is colour-correct and never misplaced); where T is
misaligned only T's fine detail can be wrong, and M_occ, then the blend masks, remove it.
G's width is estimated from the images unless given: the sigma for which G(Ỹ_ref) is closest
to Y_src (least squares over a central region, on pixels with M_occ < 0.5), i.e. T blurred to
W's optical resolution. It depends on the zoom ratio and on W's lens, which is why it is
measured, not fixed. (Measured on the dev cases, keeping W's own high band this way loses far
less on occluded pixels than swapping bands, G(Y_src) + Ỹ_ref - G(Ỹ_ref).)
Chroma (U, V) comes from I_src via ops.luminance.replace_luminance.
"""
from __future__ import annotations

import numpy as np

from nodegraph import CompactMask, Image, Out, Param, node
from nodegraph.kernels import kernel, prange
from nodegraph.nodes.ops.filters import lowpass
from nodegraph.nodes.ops.luminance import luminance, replace_luminance
from nodegraph.types import compact_mask_to_float

SIGMA_CANDIDATES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
ESTIMATION_SIDE = 768  # px of the central region used to estimate W's blur


@kernel(parallel=True)
def _detail_transfer_kernel(y_src, y_ref, low_ref, m_occ, gain, out):
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = y_src[i, j] + (1.0 - m_occ[i, j]) * gain * (y_ref[i, j] - low_ref[i, j])


def estimate_optical_sigma(y_src: np.ndarray, y_ref: np.ndarray, m_occ: np.ndarray) -> float:
    """Gaussian sigma (working px) that best turns Ỹ_ref into Y_src: W's blur relative to T."""
    h, w = y_src.shape
    y0, x0 = max(0, (h - ESTIMATION_SIDE) // 2), max(0, (w - ESTIMATION_SIDE) // 2)
    window = (slice(y0, y0 + ESTIMATION_SIDE), slice(x0, x0 + ESTIMATION_SIDE))
    src, ref = y_src[window], y_ref[window]
    usable = m_occ[window] < 0.5
    if usable.sum() < 64:
        usable = np.ones_like(usable)
    errors = [float(np.mean((lowpass(ref, s) - src)[usable] ** 2)) for s in SIGMA_CANDIDATES]
    return SIGMA_CANDIDATES[int(np.argmin(errors))]


def detail_transfer(y_src, y_ref, m_occ, sigma, gain):
    """Y_fusion from Y_src, Ỹ_ref, M_occ (Numba for the per-pixel combine), float32 (H, W)."""
    y_src, y_ref, m_occ = (np.ascontiguousarray(a, dtype=np.float32) for a in (y_src, y_ref, m_occ))
    out = np.empty_like(y_src)
    _detail_transfer_kernel(y_src, y_ref, lowpass(y_ref, sigma), m_occ, np.float32(gain), out)
    return out


def classical_fusion_luminance(y_src, y_ref, m_occ, sigma: float | None, gain: float) -> np.ndarray:
    """Y_fusion of the node from luminance planes; ``sigma`` None = estimated from the images."""
    if sigma is None:
        sigma = estimate_optical_sigma(y_src, y_ref, m_occ)
    return detail_transfer(y_src, y_ref, m_occ, sigma, gain)


def detail_transfer_reference(y_src, y_ref, m_occ, sigma, gain):
    """Plain NumPy version of :func:`detail_transfer` (same low-pass), for the tests."""
    return (y_src + (1.0 - m_occ) * gain * (y_ref - lowpass(y_ref, sigma))).astype(np.float32)


@node("hzsr.fusion_classical", version=3)
def fusion_classical(src: Image, ref_warped: Image, M_occ: CompactMask, M_blend_raw: CompactMask = None, *,
                     sigma: float | None = Param(None, range=(0.0, 20.0), unit="px (working grid)",
                                                 doc="Gaussian G modelling W's optics on the "
                                                     "working grid; empty = estimated from the "
                                                     "images"),
                     gain: float = Param(1.15, range=(0.0, 2.0),
                                         doc="detail gain g (1 = T's detail as is; 1.15 measured, docs/tuning.md)")
                     ) -> Out(fused=Image):
    """Model-free fusion: Y_fusion = Y_src + (1 - M_occ) g (Ỹ_ref - G Ỹ_ref).

    T's detail above W's optical band (G estimated from the images unless ``sigma`` is
    given) added to W's luminance; occluded pixels keep Y_src. Fusion is on luminance only;
    chroma from I_src (HZSR §3.2). ``M_blend_raw`` is accepted so that both fusion nodes share
    their ports; this fusion is cheap enough to run everywhere, so it does not read it.
    """
    y_fusion = classical_fusion_luminance(luminance(src), luminance(ref_warped),
                                          compact_mask_to_float(M_occ), sigma, gain)
    return replace_luminance(src, y_fusion)
