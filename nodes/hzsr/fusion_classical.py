"""Classical (model-free) fusion on luminance: detail transfer from Ĩ_ref (SPEC §4.9).

The ablation baseline for the learned UNet, with the same ports. W's crop lacks the detail
above its optical band; T has it. Split both luminances at that band with a Gaussian low-pass
G (sigma ~ half the W pixel pitch on the working grid) and swap the high band:

    Y_fusion = Y_src + (1 - M_occ) * g * [(Ỹ_ref - G(Ỹ_ref)) - (Y_src - G(Y_src))]

With g = 1 and M_occ = 0 this is G(Y_src) + (Ỹ_ref - G(Ỹ_ref)): W's low band (colour-correct,
never misplaced) plus T's detail. Where M_occ = 1 T has nothing to give and Y_src is kept
unchanged. Chroma (U, V) comes from I_src via luma.replace_luminance.
"""
from __future__ import annotations

import cv2
import numba
import numpy as np

from nodegraph import Image, Mask, Out, Param, node

from .luma import luminance, replace_luminance


@numba.njit(parallel=True, cache=True)
def _detail_transfer_kernel(y_src, low_src, y_ref, low_ref, m_occ, gain, out):
    for i in numba.prange(out.shape[0]):
        for j in range(out.shape[1]):
            detail = (y_ref[i, j] - low_ref[i, j]) - (y_src[i, j] - low_src[i, j])
            out[i, j] = y_src[i, j] + (1.0 - m_occ[i, j]) * gain * detail


def _lowpass(y: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) if sigma > 0 else y


def detail_transfer(y_src, y_ref, m_occ, sigma, gain):
    """Y_fusion from Y_src, Ỹ_ref, M_occ (Numba for the per-pixel combine), float32 (H, W)."""
    y_src, y_ref, m_occ = (np.ascontiguousarray(a, dtype=np.float32) for a in (y_src, y_ref, m_occ))
    out = np.empty_like(y_src)
    _detail_transfer_kernel(y_src, _lowpass(y_src, sigma), y_ref, _lowpass(y_ref, sigma), m_occ,
                            np.float32(gain), out)
    return out


def detail_transfer_reference(y_src, y_ref, m_occ, sigma, gain):
    """Plain NumPy version of :func:`detail_transfer` (same low-pass), for the tests."""
    detail = (y_ref - _lowpass(y_ref, sigma)) - (y_src - _lowpass(y_src, sigma))
    return (y_src + (1.0 - m_occ) * gain * detail).astype(np.float32)


@node("hzsr.fusion_classical", version=1)
def fusion_classical(src: Image, ref_warped: Image, M_occ: Mask, *,
                     sigma: float = Param(1.5, range=(0.0, 20.0), unit="px (working grid)",
                                          doc="Gaussian low-pass splitting W's band from T's "
                                              "detail; ~ratio/2 (1.5 at 3x)"),
                     gain: float = Param(1.0, range=(0.0, 2.0),
                                         doc="detail gain g (1 = T's detail as is)")
                     ) -> Out(fused=Image):
    """Model-free fusion: Y_fusion = Y_src + (1 - M_occ) g [(Ỹ_ref - G Ỹ_ref) - (Y_src - G Y_src)].

    W's low band plus T's high band, split by a Gaussian of ``sigma`` px; occluded pixels keep
    Y_src. Fusion is on luminance only; chroma from I_src (HZSR §3.2).
    """
    y_fusion = detail_transfer(luminance(src), luminance(ref_warped), M_occ, sigma, gain)
    return replace_luminance(src, y_fusion)
