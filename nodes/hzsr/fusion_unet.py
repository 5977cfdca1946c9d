"""Learned luminance fusion (HZSR section 3.2): Y_fusion = UNet(Y_src, Ỹ_ref, M_occ), run by onnxruntime.

The network (``nodes/train/model.py``; model card in ``nodes/hzsr/models/MODEL_CARD.md``) is a
5-level UNet, residual on Y_src, working on a 4x space-to-depth stem; it needs inputs whose
height and width are multiples of 64. Colour: chroma (U, V) stays that of I_src, only Y is
replaced (``ops.luminance.replace_luminance``).

Tiled inference, exact and memory-bounded: the image (edge-padded to a multiple of 64) is cut
into cores of about ``tile`` px that start and end on the network's 64 px grid; each core is
run inside a window grown by ``overlap`` px on every side (rounded out to that grid when
``overlap`` is not a multiple of 64), and only the core is kept
(crop-the-centre). The bundled network's output at a pixel depends on the input within
RECEPTIVE_PX = 192 px of the 64 px grid cell that holds the pixel (measured by an impulse,
``tests/test_fusion_unet.py``; the 4x stem and four 2x levels make the grid). Windows start
and end on that grid, so with ``overlap`` >= 192 every kept pixel sees exactly the input it
would see in a single whole-image pass: tiles meet without seams and the result equals the
untiled one. Peak memory follows the window size, not the image size: each window's input is
built in place in one array, and the output written in place.

The bundled model, like every model ``nodegraph train fusion`` writes, has its fixed
detail-band blurs moved out of the graph (``split_bands`` in ``nodes/train/export.py``):
:func:`network_feed` computes them per window with OpenCV (:func:`detail_bands`), ~0.6x the
time per window of running them inside onnxruntime; a one-input model (an older export) runs
as it is. Its pixel (un)shuffles are ONNX SpaceToDepth / DepthToSpace
(``space_to_depth_layout``), which changes nothing here. Each call makes its own onnxruntime
session with an arena, shrunk after every window and freed with the session when the call
ends (~10-30 ms to make; at 12 MP ~70-90 MB less peak memory than a kept session without an
arena: :mod:`nodegraph.nodes.ops.onnx_sessions`); the model file's content is part of the
cache key.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np

from nodegraph import CompactMask, Image, Out, Param, node
from nodegraph.errors import InputError
from nodegraph.nodes.ops.luminance import luminance, replace_luminance
from nodegraph.nodes.ops.onnx_sessions import model_fingerprint, onnx_session, run_releasing
from nodegraph.types import compact_mask_to_float

MULTIPLE = 64            # input sides must be multiples of this (stem 4 x 2^4 downsamplings)
RECEPTIVE_PX = 192       # context beyond a pixel's 64 px cell that its output depends on (module doc)
# hzsr.blend spreads M_blend_raw by at most its Gaussian's support (4 x smooth_sigma <= 200 px):
# a core whose surroundings within this margin have M_blend_raw = 0 gets M_blend = 0 exactly.
BLEND_SUPPORT_PX = 256
BUNDLED_MODEL = "models/fusion_unet.onnx"
BANDS_INPUT, DETAIL_TAPS_KEY = "bands", "detail_taps"  # a model split by train.export.split_bands
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
    of about ``tile`` that start and end on the 64 px grid (the last ends at ``length``);
    windows are the cores grown by ``overlap``, snapped outwards to that grid, inside
    [0, padded). Cores on the grid need no snapping at 192 px of overlap: cut anywhere, the
    windows at 1024 px tiles and 12 MP were 7 % more pixels (and their largest 15 % more)."""
    cells = padded // MULTIPLE
    n = min(cells, max(1, -(-length // tile)))
    cuts = [min(length, round(i * cells / n) * MULTIPLE) for i in range(n + 1)]
    spans = []
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        w0 = max(0, (c0 - overlap) // MULTIPLE * MULTIPLE)
        w1 = min(padded, -(-(c1 + overlap) // MULTIPLE) * MULTIPLE)
        spans.append((c0, c1, w0, w1))
    return spans


def detail_bands(y_ref: np.ndarray, taps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(k, H, W) band-pass layers [Ỹ_ref - G_1, G_1 - G_2, ..., G_(k-1) - G_k] of an (H, W) plane,
    G_i = the separable Gaussian of ``taps[i]`` (k rows of odd length, zero-padded to a common
    one) with replicated edges: the network's ``DetailBands`` (nodes/train/model.py) computed
    by OpenCV instead of inside the ONNX graph (tools/fusion_layout.py says why). Written
    into ``out`` (k, H, W) float32 when given; two levels are alive at a time, not k + 1."""
    taps = np.asarray(taps, np.float32)
    out = np.empty((len(taps), *y_ref.shape), np.float32) if out is None else out
    finer = y_ref
    for band, row in zip(out, taps):
        nonzero = np.flatnonzero(row)
        kernel = row[nonzero[0]:nonzero[-1] + 1]  # the zero padding changes no value
        coarser = cv2.sepFilter2D(y_ref, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
        np.subtract(finer, coarser, out=band)
        finer = coarser
    return out


def network_feed(session):
    """``feed(x) -> {input name: array}`` for an (N, 3, h, w) float32 network input ``x``: the
    input itself, plus, for a model whose detail bands were moved out of its graph (inputs ``x``
    and ``bands``, taps in its metadata), the bands of each item's Ỹ_ref channel."""
    names = [i.name for i in session.get_inputs()]
    if len(names) == 1:
        return lambda x: {names[0]: x}
    taps = np.array(json.loads(session.get_modelmeta().custom_metadata_map[DETAIL_TAPS_KEY]), np.float32)

    def feed(x):
        bands = np.empty((len(x), len(taps), *x.shape[2:]), np.float32)
        for item, item_bands in zip(x, bands):
            detail_bands(item[1], taps, out=item_bands)
        return {names[0]: x, BANDS_INPUT: bands}

    return feed


def _run_tiles(fill_window, h: int, w: int, session, tile: int, overlap: int,
               emit, skip=None) -> None:
    """Run the network window by window (module doc) and hand each core's Y_fusion to ``emit``.

    ``fill_window(rows, cols, planes)`` writes the network input of a window clipped to the
    image into ``planes`` (3, h', w'); the rows and columns the window reaches beyond it (up to
    the 64 px grid) are edge-padded here, which equals cropping an edge-padded whole image.
    The input is built in place, one window-sized array: a window's buffers are what the
    node's peak memory is made of besides its output. ``emit(rows, cols, y)`` receives the
    core's slices and its (h', w') result; a core for which ``skip(rows, cols)`` is true is not
    run at all (``emit`` gets None).
    """
    hp, wp = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE
    feed = network_feed(session)
    whole = [(0, h, 0, hp)] if tile <= 0 else None
    for r0, r1, wr0, wr1 in whole or _spans(h, hp, tile, overlap):
        for c0, c1, wc0, wc1 in ([(0, w, 0, wp)] if whole else _spans(w, wp, tile, overlap)):
            rows, cols = slice(r0, r1), slice(c0, c1)
            if skip is not None and skip(rows, cols):
                emit(rows, cols, None)
                continue
            inside_h, inside_w = min(wr1, h) - wr0, min(wc1, w) - wc0
            x = np.empty((1, 3, wr1 - wr0, wc1 - wc0), np.float32)
            fill_window(slice(wr0, wr0 + inside_h), slice(wc0, wc0 + inside_w), x[0, :, :inside_h, :inside_w])
            x[0, :, :inside_h, inside_w:] = x[0, :, :inside_h, inside_w - 1:inside_w]  # edge padding
            x[0, :, inside_h:] = x[0, :, inside_h - 1:inside_h]
            y = run_releasing(session, feed(x))[0]
            del x
            emit(rows, cols, y[0, 0, r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0])


def fuse_luminance(y_src: np.ndarray, y_ref: np.ndarray, m_occ: np.ndarray, session,
                   tile: int = 2048, overlap: int = RECEPTIVE_PX) -> np.ndarray:
    """Y_fusion (H, W) float32 from the three (H, W) planes, tiled as in the module doc.

    ``tile`` <= 0 runs the whole (padded) image in one pass.
    """
    out = np.empty(y_src.shape, np.float32)

    def fill_window(rows, cols, planes):
        for plane, source in zip(planes, (y_src, y_ref, m_occ)):
            plane[...] = source[rows, cols]

    def emit(rows, cols, y):
        out[rows, cols] = y

    _run_tiles(fill_window, *y_src.shape, session, tile, overlap, emit)
    return out


def fuse_image(src: np.ndarray, ref_warped: np.ndarray, m_occ: np.ndarray, session,
               tile: int, overlap: int, m_blend_raw: np.ndarray | None = None) -> np.ndarray:
    """I_fusion (H, W, 3): Y_fusion of the tiles with I_src's chroma; luminance is computed per
    window, and the masks (float32, or 8-bit as a CompactMask holds them) are converted per
    window, so no full-size plane is made. Where ``m_blend_raw`` is 0 on a core and within
    BLEND_SUPPORT_PX of it, the network is not run and I_src is kept (M_blend is 0 there, so
    the blend takes I_src whatever the fusion gives)."""
    out = np.empty(src.shape, np.float32)

    def fill_window(rows, cols, planes):
        planes[0] = luminance(src[rows, cols])
        planes[1] = luminance(ref_warped[rows, cols])
        planes[2] = compact_mask_to_float(m_occ[rows, cols])

    def emit(rows, cols, y):
        if y is None:
            out[rows, cols] = src[rows, cols]
        else:
            replace_luminance(src[rows, cols], y, out=out[rows, cols])

    def unused(rows, cols):
        near = (slice(max(0, rows.start - BLEND_SUPPORT_PX), rows.stop + BLEND_SUPPORT_PX),
                slice(max(0, cols.start - BLEND_SUPPORT_PX), cols.stop + BLEND_SUPPORT_PX))
        return not m_blend_raw[near].any()

    _run_tiles(fill_window, *src.shape[:2], session, tile, overlap, emit,
               None if m_blend_raw is None else unused)
    return out


def _model_fingerprint(params: dict) -> str:
    try:
        return model_fingerprint(resolve_model(params["model"]))
    except InputError:
        return f"missing:{params['model']}"


@node("hzsr.fusion_unet", version=2, fingerprint=_model_fingerprint)
def fusion_unet(src: Image, ref_warped: Image, M_occ: CompactMask, M_blend_raw: CompactMask = None, *,
                model: str = Param(BUNDLED_MODEL,
                                   doc="ONNX fusion model; a relative path is looked up next to "
                                       "this module first (the bundled model), then in the "
                                       "working directory"),
                tile: int = Param(1024, range=(0, 16384), unit="px",
                                  doc="core size of the tiles (0 = one whole-image pass); "
                                      "bounds peak memory (~0.2 GB at 1024 besides the "
                                      "output) and the grain at "
                                      "which unused cores are skipped"),
                overlap: int = Param(RECEPTIVE_PX, range=(0, 1024), unit="px",
                                     doc="context added around each tile; >= 192 (the bundled "
                                         "network's receptive field beyond its 64 px grid) makes "
                                         "tiling exact; less is faster and approximate"),
                threads: int = Param(0, range=(0, 256),
                                     doc="onnxruntime intra-op threads (0 = OMP_NUM_THREADS if set, else all cores)"),
                ) -> Out(fused=Image):
    """Learned fusion on luminance: Y_fusion = Y_src + UNet(Y_src, Ỹ_ref, M_occ); UV from I_src.

    Y_src = luminance(I_src), Ỹ_ref = luminance(Ĩ_ref) (the warped reference), M_occ the
    occlusion mask; the network was trained to take T's detail where Ĩ_ref is aligned and to
    keep a clean upsampling of W where M_occ marks it unreliable. With ``M_blend_raw`` linked
    (hzsr.blend_raw_weight, computed before the fusion), a tile core where it is 0 on the core
    and within 256 px around it (sky, occluded, outside T) is not run and keeps I_src: M_blend
    is 0 there for every blend setting, so the blend would discard it anyway. Both masks are
    read as stored (a CompactMask: 8 bits) and converted window by window.
    """
    session = onnx_session(resolve_model(model), threads, arena=True)
    return fuse_image(src, ref_warped, M_occ, session, tile, overlap, M_blend_raw)
