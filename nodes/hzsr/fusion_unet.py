"""Learned luminance fusion (HZSR section 3.2): Y_fusion = UNet(Y_src, Ỹ_ref, M_occ), run by onnxruntime.

The network (``nodes/train/model.py``; model card in ``nodes/hzsr/models/MODEL_CARD.md``) is a
5-level UNet, residual on Y_src, working on a 4x space-to-depth stem; it needs inputs whose
height and width are multiples of 64. Colour: chroma (U, V) stays that of I_src, only Y is
replaced (``ops.luminance.replace_luminance``).

Tiled inference, exact and memory-bounded, in stages: a UNet's output depends on far-away
input only through its coarse levels, so the model is cut at its finest skip connection
(:mod:`nodegraph.nodes.ops.onnx_stages`) into an encoder (stem + first level), the deep
levels, and a decoder (last level + head). The image (edge-padded to a multiple of 64) is cut
into cores of about ``tile`` px on an 8 px grid; the encoder runs on each core with 8 px of
context, the deep levels on the whole 1/4-resolution ``skip`` plane (in windows with their
reach), the decoder on each core with 16 px (the detail bands' radius, 12 px, rounded to the
grid): every pixel sees exactly what it would see in one whole-image pass, at 1.06-1.13x the
pixels instead of 1.6-2.9x with the whole network's 192 px of context around every core.
Up to MAX_TILES_AT_ONCE = 4 tiles run at a time, sharing the ``threads`` cores (on two cores:
two tiles, one onnxruntime thread each). At 12 MP on 2 cores: 0.6x the
node's time of whole-network tiles (1024 px cores, 192 px context), the same output bit for
bit, ~45 MB more peak memory (the ``skip`` plane, dropped row by row as the decoder passes).

A model whose graph cannot be cut (:func:`~nodegraph.nodes.ops.onnx_stages.unet_stages`
returns None: another architecture) runs whole, tile by tile: each core inside a window grown
by ``overlap`` px on every side, snapped to the 64 px grid, only the core kept. The bundled
network's output at a pixel depends on the input within RECEPTIVE_PX = 192 px of the 64 px
grid cell that holds the pixel (measured by an impulse, ``tests/test_fusion_unet.py``), so
with ``overlap`` >= 192 tiles meet without seams and the result equals the untiled one;
such a model is faster with ``tile`` 1024-2048.

The bundled model, like every model ``nodegraph train fusion`` writes, has its fixed
detail-band blurs moved out of the graph (``split_bands`` in ``nodes/train/export.py``):
:func:`network_feed` computes them per window with OpenCV (:func:`detail_bands`), ~0.6x the
time per window of running them inside onnxruntime; a one-input model (an older export) runs
as it is. Its pixel (un)shuffles are ONNX SpaceToDepth / DepthToSpace
(``space_to_depth_layout``), which the cut looks for. Each call makes its own onnxruntime
sessions with arenas, freed with the sessions when the call ends (~10-30 ms to make; at
12 MP ~70-90 MB less peak memory than a kept session without an arena:
:mod:`nodegraph.nodes.ops.onnx_sessions`). A staged network's windows are alike, so its
arenas are not shrunk between them: each window reuses the pages the last one had mapped
(shrinking after every window made each fault its activations in again, ~130k page faults
and ~0.4 s of system time at 12 MP), and each is shrunk once when its stage is done (kept
until the decoder's end, the encoder's and the deep stage's free regions cost ~15 MB of
peak). The whole-network tiles are shrunk after each run. The model file's content is part
of the cache key.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from nodegraph import CompactMask, Image, Out, Param, node
from nodegraph.cores import thread_share
from nodegraph.errors import InputError
from nodegraph.memory import release_free_heap
from nodegraph.nodes.ops.luminance import luminance, replace_luminance
from nodegraph.nodes.ops.onnx_sessions import (
    model_fingerprint,
    new_arena_session,
    onnx_session,
    run_releasing,
)
from nodegraph.nodes.ops.onnx_stages import UNetStages, unet_stages
from nodegraph.types import compact_mask_to_float

MULTIPLE = 64            # input sides must be multiples of this (stem 4 x 2^4 downsamplings)
RECEPTIVE_PX = 192       # context beyond a pixel's 64 px cell that its output depends on (module doc)
# hzsr.blend spreads M_blend_raw by at most its Gaussian's support (4 x smooth_sigma <= 200 px):
# a core whose surroundings within this margin have M_blend_raw = 0 gets M_blend = 0 exactly.
BLEND_SUPPORT_PX = 256
BUNDLED_MODEL = "models/fusion_unet.onnx"
MAX_TILES_AT_ONCE = 4  # staged tiles run concurrently, each on cores / this many threads
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


def _spans(length: int, padded: int, tile: int, overlap: int,
           grid: int = MULTIPLE) -> list[tuple[int, int, int, int]]:
    """(core0, core1, win0, win1) along one axis: cores cover [0, length) in near-equal pieces
    of about ``tile`` that start and end on the ``grid`` (the last ends at ``length``);
    windows are the cores grown by ``overlap``, snapped outwards to that grid, inside
    [0, padded). Cores on the grid need no snapping at 192 px of overlap: cut anywhere, the
    windows at 1024 px tiles and 12 MP were 7 % more pixels (and their largest 15 % more)."""
    cells = padded // grid
    n = min(cells, max(1, -(-length // tile)))
    cuts = [min(length, round(i * cells / n) * grid) for i in range(n + 1)]
    spans = []
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        w0 = max(0, (c0 - overlap) // grid * grid)
        w1 = min(padded, -(-(c1 + overlap) // grid) * grid)
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
    taps = band_taps(session)

    def feed(x):
        bands = np.empty((len(x), len(taps), *x.shape[2:]), np.float32)
        for item, item_bands in zip(x, bands):
            detail_bands(item[1], taps, out=item_bands)
        return {names[0]: x, BANDS_INPUT: bands}

    return feed


def band_taps(session) -> np.ndarray | None:
    """The detail-band taps of a model split by train.export.split_bands (None for another)."""
    taps = session.get_modelmeta().custom_metadata_map.get(DETAIL_TAPS_KEY)
    return None if taps is None else np.array(json.loads(taps), np.float32)


def _window_input(fill_window, h: int, w: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(1, 3, h', w') network input of the window ``rows`` x ``cols`` (starting inside the
    image): ``fill_window`` writes the part inside the image, the rest is edge-padded, which
    equals cropping an edge-padded whole image."""
    inside_h, inside_w = min(rows[1], h) - rows[0], min(cols[1], w) - cols[0]
    x = np.empty((1, 3, rows[1] - rows[0], cols[1] - cols[0]), np.float32)
    fill_window(slice(rows[0], rows[0] + inside_h), slice(cols[0], cols[0] + inside_w),
                x[0, :, :inside_h, :inside_w])
    x[0, :, :inside_h, inside_w:] = x[0, :, :inside_h, inside_w - 1:inside_w]
    x[0, :, inside_h:] = x[0, :, inside_h - 1:inside_h]
    return x


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
            x = _window_input(fill_window, h, w, (wr0, wr1), (wc0, wc1))
            y = run_releasing(session, feed(x))[0]
            del x
            emit(rows, cols, y[0, 0, r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0])


@dataclass
class StagedNetwork:
    """A fusion model cut into its three stages (:mod:`nodegraph.nodes.ops.onnx_stages`), with
    one onnxruntime session each: the fine stages run ``workers`` tiles at once (up to
    MAX_TILES_AT_ONCE, on the cores' share of threads each: on two cores two tiles of one
    thread, which kept both busier than one tile on two), the deep stage on all the cores."""
    stages: UNetStages
    encoder: object
    deep: object
    decoder: object
    workers: int
    taps: np.ndarray     # detail-band taps (0 rows for a model without a bands input)
    decoder_context: int  # px around a decoder tile: its stage's halo or the bands' radius


def staged_network(model_path: str, threads: int = 0) -> StagedNetwork | None:
    """The model at ``model_path`` as a :class:`StagedNetwork` (new sessions, with arenas, to be
    dropped after the call), or None when its graph cannot be cut: run it whole then."""
    stages = unet_stages(model_path)
    if stages is None:
        return None
    cores = threads or thread_share()
    # Each tile in flight holds ~25-45 MB of activations: more cores share the tiles' work
    # (intra-op threads) rather than holding more tiles at once.
    workers = min(cores, MAX_TILES_AT_ONCE)
    fine_threads = max(1, cores // workers)
    decoder = new_arena_session(stages.decoder, fine_threads)
    taps = band_taps(decoder)
    inputs = [i.name for i in decoder.get_inputs()]
    if inputs != (["x", BANDS_INPUT] if taps is not None else ["x"]) + [stages.skip, stages.deep_name]:
        return None
    taps = np.zeros((0, 1), np.float32) if taps is None else taps
    return StagedNetwork(stages, new_arena_session(stages.encoder, fine_threads),
                         new_arena_session(stages.deep, cores), decoder, workers, taps,
                         max(stages.decoder_halo, taps.shape[1] // 2))


def _near(rect, rects, margin: int) -> bool:
    """Whether the (r0, r1, c0, c1) ``rect`` lies within ``margin`` px of any of ``rects``."""
    r0, r1, c0, c1 = rect
    return any(r0 - margin < q1 and q0 < r1 + margin and c0 - margin < p1 and p0 < c1 + margin
               for q0, q1, p0, p1 in rects)


class _RowStrips:
    """A (1, C, H, W) plane held as horizontal strips, so the rows no reader needs any more
    can be dropped while the rest is still read (the skip plane during decoding)."""

    def __init__(self, bounds: list[tuple[int, int]], channels: int, width: int):
        self.strips = {b: np.zeros((1, channels, b[1] - b[0], width), np.float32) for b in bounds}

    def write(self, r0: int, r1: int, cols: slice, values: np.ndarray) -> None:
        for (s0, s1), strip in self.strips.items():
            if s0 < r1 and r0 < s1:
                lo, hi = max(r0, s0), min(r1, s1)
                strip[0, :, lo - s0:hi - s0, cols] = values[0, :, lo - r0:hi - r0]

    def read(self, r0: int, r1: int, cols: slice) -> np.ndarray:
        parts = [strip[:, :, max(r0, s0) - s0:min(r1, s1) - s0, cols]
                 for (s0, s1), strip in self.strips.items() if s0 < r1 and r0 < s1]
        return np.ascontiguousarray(parts[0]) if len(parts) == 1 else np.concatenate(parts, axis=2)

    def drop_before(self, row: int) -> None:
        for bounds in [b for b in self.strips if b[1] <= row]:
            del self.strips[bounds]


def _run_staged(fill_window, h: int, w: int, network: StagedNetwork, tile: int, emit, skip=None) -> None:
    """:func:`_run_tiles` for a :class:`StagedNetwork`: the same cores (on the deep stage's
    grid), each kept core's Y_fusion handed to ``emit``, equal to the whole network's.

    Encoder tiles cover the padded image with ``encoder_halo`` px of context, wherever a kept
    core's decoder window or the deep stage's reach from it may read their ``skip``; the deep
    stage runs on the ``skip`` plane in windows with its reach; decoder tiles run on kept
    cores only, with ``decoder_halo`` px (or the detail bands' radius, if larger), a row of
    cores at a time, and the ``skip`` rows above the next row's windows are dropped after it.
    """
    stages = network.stages
    hp, wp = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE
    grid, stem = stages.deep_step, stages.stem  # windows start on the deep stage's pixels
    row_cores = [(r0, r1) for r0, r1, _, _ in _spans(h, hp, tile, 0, grid)]
    col_cores = [(c0, c1) for c0, c1, _, _ in _spans(w, wp, tile, 0, grid)]
    cores = [(r0, r1, c0, c1) for r0, r1 in row_cores for c0, c1 in col_cores]
    kept = [core for core in cores
            if skip is None or not skip(slice(core[0], core[1]), slice(core[2], core[3]))]
    for core in cores:
        if core not in kept:
            emit(slice(core[0], core[1]), slice(core[2], core[3]), None)
    if not kept:
        return
    decoder_halo = network.decoder_context
    reach = decoder_halo + stem * stages.deep_reach  # input px a kept core's result depends on

    def padded_end(end, length, padded):  # a core that ends the image ends the padded plane
        return padded if end == length else end

    def window(core, halo, fill_padding):
        r0, r1, c0, c1 = core
        if fill_padding:
            r1, c1 = padded_end(r1, h, hp), padded_end(c1, w, wp)
        return ((max(0, (r0 - halo) // grid * grid), min(hp, -(-(r1 + halo) // grid) * grid)),
                (max(0, (c0 - halo) // grid * grid), min(wp, -(-(c1 + halo) // grid) * grid)))

    skip_rows = _RowStrips([(r0 // stem, padded_end(r1, h, hp) // stem) for r0, r1 in row_cores],
                           stages.skip_channels, wp // stem)

    def encode(core):
        rows, cols = window(core, stages.encoder_halo, fill_padding=True)
        out = network.encoder.run(None, {"x": _window_input(fill_window, h, w, rows, cols)})[0]
        r0, r1 = core[0] // stem, padded_end(core[1], h, hp) // stem
        c0, c1 = core[2] // stem, padded_end(core[3], w, wp) // stem
        rows, cols = (rows[0] // stem, rows[1] // stem), (cols[0] // stem, cols[1] // stem)
        skip_rows.write(r0, r1, slice(c0, c1), out[:, :, r0 - rows[0]:r1 - rows[0], c0 - cols[0]:c1 - cols[0]])

    def decode(core):
        rows, cols = window(core, decoder_halo, fill_padding=False)
        x = _window_input(fill_window, h, w, rows, cols)
        feed = {"x": x, stages.skip: skip_rows.read(rows[0] // stem, rows[1] // stem,
                                                     slice(cols[0] // stem, cols[1] // stem)),
                stages.deep_name: np.ascontiguousarray(
                    deep_plane[:, :, rows[0] // grid:rows[1] // grid, cols[0] // grid:cols[1] // grid])}
        if len(network.taps):
            feed[BANDS_INPUT] = detail_bands(x[0, 1], network.taps)[None]
        y = network.decoder.run(None, feed)[0]
        r0, r1, c0, c1 = core
        emit(slice(r0, r1), slice(c0, c1), y[0, 0, r0 - rows[0]:r1 - rows[0], c0 - cols[0]:c1 - cols[0]])

    pool = ThreadPoolExecutor(network.workers) if network.workers > 1 else None
    each = pool.map if pool else map
    try:
        list(each(encode, [core for core in cores if _near(core, kept, reach)]))
        # A stage done, a run on a tiny input that shrinks its arena at the end gives back every
        # region the stage's windows left free (kept, they cost ~15 MB of peak at 12 MP).
        run_releasing(network.encoder, {"x": np.zeros((1, 3, grid, grid), np.float32)})
        release_free_heap()
        deep_plane = _run_deep(network, skip_rows, hp // stem, wp // stem, tile)
        side = stages.deep_multiple
        run_releasing(network.deep, {stages.skip: np.zeros((1, stages.skip_channels, side, side), np.float32)})
        release_free_heap()
        for r0, r1 in row_cores:
            list(each(decode, [core for core in kept if core[0] == r0]))
            skip_rows.drop_before((r1 - decoder_halo) // grid * grid // stem)
            release_free_heap()  # the dropped rows, and the tiles' activations
    finally:
        if pool:
            pool.shutdown()


def _run_deep(network: StagedNetwork, skip_rows: _RowStrips, hs: int, ws: int, tile: int) -> np.ndarray:
    """The deep stage over the whole (``hs``, ``ws``) ``skip`` plane, in windows of about
    ``tile`` skip px (``tile`` x the stem input px) with its reach of context."""
    stages = network.stages
    ratio = stages.deep_step // stages.stem
    deep_plane = None
    for r0, r1, wr0, wr1 in _spans(hs, hs, tile, stages.deep_reach, stages.deep_multiple):
        for c0, c1, wc0, wc1 in _spans(ws, ws, tile, stages.deep_reach, stages.deep_multiple):
            out = network.deep.run(None, {stages.skip: skip_rows.read(wr0, wr1, slice(wc0, wc1))})[0]
            if deep_plane is None:
                deep_plane = np.empty((1, out.shape[1], hs // ratio, ws // ratio), np.float32)
            deep_plane[0, :, r0 // ratio:r1 // ratio, c0 // ratio:c1 // ratio] = \
                out[0, :, (r0 - wr0) // ratio:(r1 - wr0) // ratio, (c0 - wc0) // ratio:(c1 - wc0) // ratio]
    return deep_plane


def _run(fill_window, h: int, w: int, network, tile: int, overlap: int, emit, skip=None) -> None:
    """:func:`_run_staged` for a staged network (``tile`` <= 0: one core), else :func:`_run_tiles`."""
    if isinstance(network, StagedNetwork):
        _run_staged(fill_window, h, w, network, tile if tile > 0 else max(h, w), emit, skip)
    else:
        _run_tiles(fill_window, h, w, network, tile, overlap, emit, skip)


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

    _run(fill_window, *y_src.shape, session, tile, overlap, emit)
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

    _run(fill_window, *src.shape[:2], session, tile, overlap, emit,
               None if m_blend_raw is None else unused)
    return out


def _model_fingerprint(params: dict) -> str:
    try:
        return model_fingerprint(resolve_model(params["model"]))
    except InputError:
        return f"missing:{params['model']}"


def _stage_bundled_model() -> None:
    """onnx imported, the bundled model cut into its stages and the luminance kernel loaded
    from Numba's cache (the node's warm-up)."""
    unet_stages(resolve_model(BUNDLED_MODEL))
    replace_luminance(np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32))


@node("hzsr.fusion_unet", version=2, fingerprint=_model_fingerprint, warm_up=_stage_bundled_model)
def fusion_unet(src: Image, ref_warped: Image, M_occ: CompactMask, M_blend_raw: CompactMask = None, *,
                model: str = Param(BUNDLED_MODEL,
                                   doc="ONNX fusion model; a relative path is looked up next to "
                                       "this module first (the bundled model), then in the "
                                       "working directory"),
                tile: int = Param(512, range=(0, 16384), unit="px",
                                  doc="core size of the tiles (0 = one whole-image pass); "
                                      "bounds peak memory (~0.1 GB at 512 besides the "
                                      "output and the 1/4-resolution skip plane) and is the "
                                      "grain at which unused cores are skipped"),
                overlap: int = Param(RECEPTIVE_PX, range=(0, 1024), unit="px",
                                     doc="for a model that cannot be run in stages: context "
                                         "added around each tile; >= 192 (the bundled network's "
                                         "receptive field beyond its 64 px grid) makes tiling "
                                         "exact; less is faster and approximate"),
                threads: int = Param(0, range=(0, 256),
                                     doc="cores used: up to 4 tiles at a time share them (a "
                                         "model run whole: onnxruntime intra-op threads); 0 = "
                                         "OMP_NUM_THREADS if set, else all cores"),
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
    path = resolve_model(model)
    network = (staged_network(path, threads) if tile > 0 else None) or onnx_session(path, threads, arena=True)
    return fuse_image(src, ref_warped, M_occ, network, tile, overlap, M_blend_raw)
