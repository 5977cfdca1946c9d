"""Learned single-image 3x super-resolution of W from linear light (after Zoom to Learn, Zhang et
al. 2019), run by onnxruntime: the upsampler for where T does not reach and for I_src.

The network (``nodes/train/zoom_to_learn.py``, trained with L1 + CoBi on real City100 pairs
whose short-focal captures were *unprocessed* into noisy raw mosaics and demosaiced again)
takes a linear RGB image (what ``image.read_raw`` gives) and returns the sRGB-encoded image at
3x the size: E_sr = bicubic_3x(encode_srgb(L)) + residual(L). Model card:
``nodes/hzsr/models/ZOOM_TO_LEARN_CARD.md``.

Tiling: the image is cut into cores of ``tile`` input pixels, each run with ``CONTEXT`` pixels
of context on every side (more than the network's receptive-field radius: 6 3x3 convolutions
plus the bicubic kernel), so tiles meet without seams.

Self-ensemble (Lim et al., EDSR, 2017: "geometric self-ensemble"): the network is run on the
eight rotations and mirror images of the input and the outputs, turned back, are averaged. It
costs 8x the time and gained +0.057 dB Y-PSNR on the City100 validation pairs (model card).
"""
from __future__ import annotations

from pathlib import Path as _FsPath

import numpy as np

from nodegraph import Image, Out, Param, node
from nodegraph.nodes.ops.onnx_sessions import model_fingerprint, onnx_session
from nodegraph.nodes.ops.raw import srgb_to_linear

BUNDLED_MODEL = _FsPath(__file__).parent / "models" / "zoom_to_learn.onnx"
SCALE = 3
CONTEXT = 12  # input pixels of context around each tile: > receptive-field radius (6 + 2)


def zoom_linear(linear: np.ndarray, session, tile: int = 256, self_ensemble: bool = True) -> np.ndarray:
    """sRGB-encoded (3H, 3W, 3) float32 SR of a linear (H, W, 3) image, tiled and (by default)
    self-ensembled as in the module doc."""
    if not self_ensemble:
        return _zoom_tiled(linear, session, tile)
    total = np.zeros((SCALE * linear.shape[0], SCALE * linear.shape[1], 3), np.float32)
    for turns in range(4):
        for mirrored in (False, True):
            view = np.rot90(linear, turns)
            view = view[:, ::-1] if mirrored else view
            result = _zoom_tiled(np.ascontiguousarray(view), session, tile)
            total += np.rot90(result[:, ::-1] if mirrored else result, -turns)
    return total / 8


def _zoom_tiled(linear: np.ndarray, session, tile: int) -> np.ndarray:
    h, w = linear.shape[:2]
    out = np.empty((SCALE * h, SCALE * w, 3), np.float32)
    padded = np.pad(linear, ((CONTEXT, CONTEXT), (CONTEXT, CONTEXT), (0, 0)), mode="reflect")
    name = session.get_inputs()[0].name
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            window = padded[y0:y1 + 2 * CONTEXT, x0:x1 + 2 * CONTEXT]
            batch = np.ascontiguousarray(window.transpose(2, 0, 1)[None], dtype=np.float32)
            result = session.run(None, {name: batch})[0][0].transpose(1, 2, 0)
            c = SCALE * CONTEXT
            out[SCALE * y0:SCALE * y1, SCALE * x0:SCALE * x1] = result[c:result.shape[0] - c,
                                                                       c:result.shape[1] - c]
    return np.clip(out, 0.0, 1.0)


def _model_fingerprint(params: dict) -> str:
    return model_fingerprint(params.get("model") or str(BUNDLED_MODEL))


@node("hzsr.zoom_to_learn", version=2, fingerprint=_model_fingerprint)
def zoom_to_learn(image: Image, *,
                  space: str = Param("srgb", choices=("srgb", "linear"),
                                     doc="colour encoding of the input, kept for the output: srgb "
                                         "(a JPEG/PNG) or linear (image.read_raw)"),
                  model: str | None = Param(None, doc="ONNX model file; default: the bundled model"),
                  tile: int = Param(256, range=(32, 4096), unit="px", doc="input tile size"),
                  self_ensemble: bool = Param(True, doc="average the outputs for the input's 8 "
                                                        "rotations and mirror images: +0.06 dB, 8x the time"),
                  threads: int = Param(0, range=(0, 64), doc="onnxruntime intra-op threads (0 = all cores)"),
                  ) -> Out(image=Image):
    """Learned 3x super-resolution of one image: (H, W, 3) -> (3H, 3W, 3), float32 in [0, 1].

    The network sees linear light L (an sRGB input is linearised with the inverse sRGB curve
    first) and predicts E_sr = bicubic_3x(sRGB(L)) + residual; the output is E_sr, or
    sRGB^-1(E_sr) when ``space`` is linear.
    """
    linear = image if space == "linear" else srgb_to_linear(image)
    encoded = zoom_linear(linear, onnx_session(model or str(BUNDLED_MODEL), threads), tile, self_ensemble)
    return encoded if space == "srgb" else srgb_to_linear(encoded)

