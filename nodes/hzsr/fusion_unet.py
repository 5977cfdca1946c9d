"""Learned luminance fusion (HZSR section 3.2): Y_fusion = UNet(Y_src, Ỹ_ref, M_occ), run by onnxruntime.

The network (``nodes/train/model.py``; model card in ``nodes/hzsr/models/MODEL_CARD.md``) is a
5-level UNet, residual on Y_src, working on a 4x space-to-depth stem; it needs inputs whose
height and width are multiples of 64. Colour: chroma (U, V) stays that of I_src, only Y is
replaced (``ops.luminance.replace_luminance``).

Tiled inference, exact and memory-bounded: the image (edge-padded to a multiple of 64) is cut
into cores of ``tile`` px; each core is run inside a window grown by ``overlap`` px on every
side, rounded out to the 64 px grid of the network, and only the core is kept
(crop-the-centre). Because windows start on the network's 64 px grid and the overlap covers
the receptive-field radius of the bundled network (256 px), every kept pixel sees exactly the
input it would see in a single whole-image pass: tiles meet without seams and the result
equals the untiled one up to float rounding. Peak memory follows the window size, not the
image size. One onnxruntime session per (model content, threads) is kept for the process
(:mod:`nodegraph.nodes.ops.onnx_sessions`); the model file's content is part of the cache key.
"""
from __future__ import annotations

import os

import numpy as np

from nodegraph import Image, Mask, Out, Param, node
from nodegraph.errors import InputError
from nodegraph.nodes.ops.luminance import luminance, replace_luminance
from nodegraph.nodes.ops.onnx_sessions import model_fingerprint, onnx_session

MULTIPLE = 64            # input sides must be multiples of this (stem 4 x 2^4 downsamplings)
BUNDLED_MODEL = "models/fusion_unet.onnx"
_HERE = os.path.dirname(os.path.abspath(__file__))


def resolve_model(model: str) -> str:
    """A relative ``model`` is looked up next to this module first (the bundled model), then in
    the working directory; raises InputError when neither exists."""
    candidates = [model] if os.path.isabs(model) else [os.path.join(_HERE, model), model]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise InputError(f"fusion model {model!r} not found (looked in {', '.join(candidates)})")


def _spans(length: int, padded: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(core0, core1, win0, win1) along one axis: cores cover [0, length) in near-equal pieces
    of at most ``tile``; windows are the cores grown by ``overlap`` and snapped outwards to
    the 64 px grid, inside [0, padded)."""
    n = max(1, -(-length // tile))
    cuts = [round(i * length / n) for i in range(n + 1)]
    spans = []
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        w0 = max(0, (c0 - overlap) // MULTIPLE * MULTIPLE)
        w1 = min(padded, -(-(c1 + overlap) // MULTIPLE) * MULTIPLE)
        spans.append((c0, c1, w0, w1))
    return spans


def fuse_luminance(y_src: np.ndarray, y_ref: np.ndarray, m_occ: np.ndarray, session,
                   tile: int = 2048, overlap: int = 256) -> np.ndarray:
    """Y_fusion (H, W) float32 from the three (H, W) planes, tiled as in the module doc.

    ``tile`` <= 0 runs the whole (padded) image in one pass.
    """
    h, w = y_src.shape
    hp, wp = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE
    planes = np.stack([y_src, y_ref, m_occ]).astype(np.float32, copy=False)
    # edge padding to the network's grid; the padded rows/columns are cropped away again
    x = np.pad(planes, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")[None]
    name_in = session.get_inputs()[0].name
    if tile <= 0:
        return session.run(None, {name_in: x})[0][0, 0, :h, :w].astype(np.float32, copy=False)
    out = np.empty((h, w), np.float32)
    for r0, r1, wr0, wr1 in _spans(h, hp, tile, overlap):
        for c0, c1, wc0, wc1 in _spans(w, wp, tile, overlap):
            window = np.ascontiguousarray(x[:, :, wr0:wr1, wc0:wc1])
            y = session.run(None, {name_in: window})[0]
            out[r0:r1, c0:c1] = y[0, 0, r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0]
    return out


def _model_fingerprint(params: dict) -> str:
    try:
        return model_fingerprint(resolve_model(params["model"]))
    except InputError:
        return f"missing:{params['model']}"


@node("hzsr.fusion_unet", version=1, fingerprint=_model_fingerprint)
def fusion_unet(src: Image, ref_warped: Image, M_occ: Mask, *,
                model: str = Param(BUNDLED_MODEL,
                                   doc="ONNX fusion model; a relative path is looked up next to "
                                       "this module first (the bundled model), then in the "
                                       "working directory"),
                tile: int = Param(2048, range=(0, 16384), unit="px",
                                  doc="core size of the tiles (0 = one whole-image pass); "
                                      "bounds peak memory"),
                overlap: int = Param(256, range=(0, 1024), unit="px",
                                     doc="context added around each tile; >= 256 (the bundled "
                                         "network's receptive-field radius) makes tiling exact"),
                threads: int = Param(0, range=(0, 256),
                                     doc="onnxruntime intra-op threads (0 = OMP_NUM_THREADS if set, else all cores)"),
                ) -> Out(fused=Image):
    """Learned fusion on luminance: Y_fusion = Y_src + UNet(Y_src, Ỹ_ref, M_occ); UV from I_src.

    Y_src = luminance(I_src), Ỹ_ref = luminance(Ĩ_ref) (the warped reference), M_occ the
    occlusion mask; the network was trained to take T's detail where Ĩ_ref is aligned and to
    keep a clean upsampling of W where M_occ marks it unreliable.
    """
    session = onnx_session(resolve_model(model), threads)
    y_fusion = fuse_luminance(luminance(src), luminance(ref_warped), M_occ, session, tile, overlap)
    return replace_luminance(src, y_fusion)
