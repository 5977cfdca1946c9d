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
# hzsr.blend spreads M_blend_raw by at most its Gaussian's support (4 x smooth_sigma <= 200 px):
# a core whose surroundings within this margin have M_blend_raw = 0 gets M_blend = 0 exactly.
BLEND_SUPPORT_PX = 256
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


def _run_tiles(window_planes, h: int, w: int, session, tile: int, overlap: int,
               emit, skip=None) -> None:
    """Run the network window by window (module doc) and hand each core's Y_fusion to ``emit``.

    ``window_planes(rows, cols)`` gives the (3, h', w') network input of a window clipped to
    the image; the rows and columns the window reaches beyond it (up to the 64 px grid) are
    edge-padded here, which equals cropping an edge-padded whole image. ``emit(rows, cols, y)``
    receives the core's slices and its (h', w') result; a core for which ``skip(rows, cols)``
    is true is not run at all (``emit`` gets None).
    """
    hp, wp = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE
    name_in = session.get_inputs()[0].name
    whole = [(0, h, 0, hp)] if tile <= 0 else None
    for r0, r1, wr0, wr1 in whole or _spans(h, hp, tile, overlap):
        for c0, c1, wc0, wc1 in ([(0, w, 0, wp)] if whole else _spans(w, wp, tile, overlap)):
            rows, cols = slice(r0, r1), slice(c0, c1)
            if skip is not None and skip(rows, cols):
                emit(rows, cols, None)
                continue
            planes = window_planes(slice(wr0, min(wr1, h)), slice(wc0, min(wc1, w)))
            pad = ((0, 0), (0, wr1 - min(wr1, h)), (0, wc1 - min(wc1, w)))
            x = np.pad(planes, pad, mode="edge")[None] if any(p[1] for p in pad) else planes[None]
            y = session.run(None, {name_in: np.ascontiguousarray(x, dtype=np.float32)})[0]
            emit(rows, cols, y[0, 0, r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0])


def fuse_luminance(y_src: np.ndarray, y_ref: np.ndarray, m_occ: np.ndarray, session,
                   tile: int = 2048, overlap: int = 256) -> np.ndarray:
    """Y_fusion (H, W) float32 from the three (H, W) planes, tiled as in the module doc.

    ``tile`` <= 0 runs the whole (padded) image in one pass.
    """
    out = np.empty(y_src.shape, np.float32)

    def window_planes(rows, cols):
        return np.stack([y_src[rows, cols], y_ref[rows, cols], m_occ[rows, cols]])

    def emit(rows, cols, y):
        out[rows, cols] = y

    _run_tiles(window_planes, *y_src.shape, session, tile, overlap, emit)
    return out


def fuse_image(src: np.ndarray, ref_warped: np.ndarray, m_occ: np.ndarray, session,
               tile: int, overlap: int, m_blend_raw: np.ndarray | None = None) -> np.ndarray:
    """I_fusion (H, W, 3): Y_fusion of the tiles with I_src's chroma; luminance is computed per
    window, so no full-size plane is made. Where ``m_blend_raw`` is 0 on a core and within
    BLEND_SUPPORT_PX of it, the network is not run and I_src is kept (M_blend is 0 there, so
    the blend takes I_src whatever the fusion gives)."""
    out = np.empty(src.shape, np.float32)

    def window_planes(rows, cols):
        return np.stack([luminance(src[rows, cols]), luminance(ref_warped[rows, cols]),
                         m_occ[rows, cols].astype(np.float32, copy=False)])

    def emit(rows, cols, y):
        out[rows, cols] = src[rows, cols] if y is None else replace_luminance(src[rows, cols], y)

    def unused(rows, cols):
        near = (slice(max(0, rows.start - BLEND_SUPPORT_PX), rows.stop + BLEND_SUPPORT_PX),
                slice(max(0, cols.start - BLEND_SUPPORT_PX), cols.stop + BLEND_SUPPORT_PX))
        return not m_blend_raw[near].any()

    _run_tiles(window_planes, *src.shape[:2], session, tile, overlap, emit,
               None if m_blend_raw is None else unused)
    return out


def _model_fingerprint(params: dict) -> str:
    try:
        return model_fingerprint(resolve_model(params["model"]))
    except InputError:
        return f"missing:{params['model']}"


@node("hzsr.fusion_unet", version=2, fingerprint=_model_fingerprint)
def fusion_unet(src: Image, ref_warped: Image, M_occ: Mask, M_blend_raw: Mask = None, *,
                model: str = Param(BUNDLED_MODEL,
                                   doc="ONNX fusion model; a relative path is looked up next to "
                                       "this module first (the bundled model), then in the "
                                       "working directory"),
                tile: int = Param(1024, range=(0, 16384), unit="px",
                                  doc="core size of the tiles (0 = one whole-image pass); "
                                      "bounds peak memory (~0.4 GB at 1024) and the grain at "
                                      "which unused cores are skipped"),
                overlap: int = Param(256, range=(0, 1024), unit="px",
                                     doc="context added around each tile; >= 256 (the bundled "
                                         "network's receptive-field radius) makes tiling exact"),
                threads: int = Param(0, range=(0, 256),
                                     doc="onnxruntime intra-op threads (0 = OMP_NUM_THREADS if set, else all cores)"),
                ) -> Out(fused=Image):
    """Learned fusion on luminance: Y_fusion = Y_src + UNet(Y_src, Ỹ_ref, M_occ); UV from I_src.

    Y_src = luminance(I_src), Ỹ_ref = luminance(Ĩ_ref) (the warped reference), M_occ the
    occlusion mask; the network was trained to take T's detail where Ĩ_ref is aligned and to
    keep a clean upsampling of W where M_occ marks it unreliable. With ``M_blend_raw`` linked
    (hzsr.blend_raw_weight, computed before the fusion), a tile core where it is 0 on the core
    and within 256 px around it (sky, occluded, outside T) is not run and keeps I_src: M_blend
    is 0 there for every blend setting, so the blend would discard it anyway.
    """
    session = onnx_session(resolve_model(model), threads)
    return fuse_image(src, ref_warped, M_occ, session, tile, overlap, M_blend_raw)
