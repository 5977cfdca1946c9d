"""Downsampled dense optical flow between I_src and I_ref (SPEC §4 step 3).

HZSR estimates flow at about 384x512 rather than at 12 MP: the W/T offset is large in full
resolution pixels and flow is more accurate and robust at the small scale. The flow is then
upsampled to full resolution and its vectors multiplied by the scale factors: the node hands
each field on at the grid it was computed on (a ``CoarseFlow``, port type CompactFlow, 1.5 MB
instead of 96 MB at 12 MP), and its readers upsample it where they read a pixel
(``ops.flow_fields.flow_at``, equal to ``cv2.resize`` to float rounding); a node declaring a
plain ``Flow`` input gets the full-size field.

F_fwd (``forward``) maps I_src to I_ref: I_ref(x + F_fwd(x)) ~ I_src(x), so warping I_ref by
F_fwd lines it up with I_src. F_bwd (``backward``) is the same from I_ref to I_src.

Backends: OpenCV DIS (default), Farneback, or an ONNX model with this layout:
inputs ``image1`` (source) and ``image2`` (target), float32 (1, 3, H, W) RGB in [0, 1];
output 0 of shape (1, 2, H, W) = flow (dx, dy) in pixels of that H x W grid, or (1, 4, H, W)
= flow followed by the log-variances log Var_x, log Var_y. A model with static H, W runs at
that size; a dynamic one at the work size. With log-variances the node outputs the HZSR
uncertainty S(x) = sqrt(exp(log Var_x) + exp(log Var_y)) in full-resolution pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from nodegraph import CompactFlow, Gray, Image, Out, Param, Rect, node
from nodegraph.errors import InputError
from nodegraph.nodes.ops.luminance import gray8
from nodegraph.nodes.ops.onnx_sessions import model_fingerprint, onnx_session
from nodegraph.types import CoarseFlow, upsample_flow

# OpenCV's presets stop refining at half the work grid (finest scale 1). "fine" refines down to
# the work grid itself, where the parallax of close objects (phone pairs) is resolved, with a
# stronger, longer variational smoothing so that texture-less regions (a grey card) get smooth,
# forward-backward consistent flow instead of noise that the masks read as unreliable.
# Measured on the dev cases and the real pairs' pseudo GT (docs/real_pairs.md): "medium" ->
# "fine" dev mean visible +6.15 -> +6.37 dB, Nikon +2.01 -> +2.56, phone +0.52 -> +0.72;
# cost about 0.3 s per flow at 384x512 on one thread (medium 0.03 s).
DIS_PRESETS = {"ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, {}),
               "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, {}),
               "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, {}),
               "fine": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                        {"FinestScale": 0, "PatchStride": 4, "VariationalRefinementIterations": 20,
                         "VariationalRefinementAlpha": 60.0})}


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str) -> np.ndarray:
    """OpenCV DIS flow (h, w, 2) from uint8 ``a`` to ``b`` with one of :data:`DIS_PRESETS`."""
    base, settings = DIS_PRESETS[preset]
    dis = cv2.DISOpticalFlow_create(base)
    for name, value in settings.items():
        getattr(dis, "set" + name)(value)
    return dis.calc(a, b, None)


def work_shape(shape: tuple[int, int], work_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) at which to compute flow: ``shape`` scaled to fit ``work_size`` keeping its aspect.

    The work box is turned to the image's orientation (384x512 serves portrait as 512x384),
    and images already smaller than it are not enlarged.
    """
    h, w = shape
    box_long, box_short = max(work_size), min(work_size)
    scale = min(1.0, box_long / max(h, w), box_short / min(h, w))
    return max(8, round(h * scale)), max(8, round(w * scale))



def _opencv_flow(a: np.ndarray, b: np.ndarray, method: str, dis_preset: str) -> np.ndarray:
    if method == "dis":
        return dis_flow(a, b, dis_preset)
    # Farneback: 5 pyramid levels cover the ~50 px W/T residual offsets at the work size.
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=5, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def onnx_input_shape(session, default: tuple[int, int]) -> tuple[int, int]:
    """The model's static (H, W) when its 'image1' input declares one, else ``default``."""
    dims = {i.name: i.shape for i in session.get_inputs()}.get("image1")
    if dims is None or not {"image1", "image2"} <= {i.name for i in session.get_inputs()}:
        raise InputError("ONNX flow model must have inputs 'image1' and 'image2' (1, 3, H, W)")
    h, w = dims[2], dims[3]
    return (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else default


def _onnx_flow(session, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(flow (h, w, 2), log-variances (h, w, 2) or None) of one ONNX run at the inputs' size."""
    def nchw(image):
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)

    out = np.asarray(session.run(None, {"image1": nchw(a), "image2": nchw(b)})[0])
    if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] not in (2, 4) \
            or out.shape[2:] != a.shape[:2]:
        raise InputError(f"ONNX flow model output 0 has shape {out.shape}; expected "
                         f"(1, 2 or 4, {a.shape[0]}, {a.shape[1]})")
    channels = out[0].transpose(1, 2, 0).astype(np.float32)
    return channels[..., :2], (channels[..., 2:] if out.shape[1] == 4 else None)


def flow_std_full_res(log_var: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """HZSR S(x) = sqrt(exp(log Var_x) + exp(log Var_y)) in full-resolution pixels.

    The variances are in work-grid px^2; a standard deviation scales with the grid, so each
    axis' variance is multiplied by its squared scale factor before the sum.
    """
    lh, lw = log_var.shape[:2]
    sx2, sy2 = (shape[1] / lw) ** 2, (shape[0] / lh) ** 2
    # Clamp the exponent: a wild log-variance must not overflow to inf.
    lv = np.clip(log_var.astype(np.float64), -50.0, 50.0)
    s = np.sqrt(np.exp(lv[..., 0]) * sx2 + np.exp(lv[..., 1]) * sy2).astype(np.float32)
    return cv2.resize(s, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def optical_band_sigma(density: float, work_scale: float) -> float:
    """Gaussian sigma (work px) that brings T's band down to W's on the work grid.

    A grid ``density`` x finer than W's optics, shrunk by ``work_scale``, still samples
    density * work_scale px per W px; a W pixel's blur is then ~(density * work_scale) / 2
    px wide, of which 1/2 px is the work grid's own: sigma = sqrt((d w)^2 - 1) / 2, 0 when
    the work grid is already at or below W's resolution.
    """
    d = density * work_scale
    return float(np.sqrt(d * d - 1.0) / 2.0) if d > 1.0 else 0.0


def _to_band(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.0 else image


def _held(field: np.ndarray, full: tuple[int, int]) -> CoarseFlow:
    """A flow field of the work size as a CoarseFlow of the ``full`` size; a field larger
    than that (a static ONNX model's input size) is resampled to it now."""
    if field.shape[0] > full[0] or field.shape[1] > full[1]:
        field = upsample_flow(field, full)
    return CoarseFlow(np.ascontiguousarray(field, dtype=np.float32), full)


def estimate_coarse_flow(src: np.ndarray, ref: np.ndarray, method: str = "dis",
                         work_size: tuple[int, int] = (384, 512), onnx_model: str | None = None,
                         dis_preset: str = "fine", density: float = 1.0,
                         ) -> tuple[CoarseFlow, CoarseFlow, np.ndarray | None]:
    """(F_fwd, F_bwd, S or None): the flows at the work size, standing for their upsampling
    to full resolution (module doc), and S at full resolution.

    ``density``: working px per W px; both images are compared in W's optical band
    (:func:`optical_band_sigma`): detail only T holds cannot be matched in I_src and only
    makes the flow noisy (measured on the Nikon pair, docs/real_pairs.md).
    """
    if src.shape != ref.shape:
        raise InputError(f"src and ref must have the same size, got {src.shape} and {ref.shape}")
    full = src.shape[:2]
    if method in ("dis", "farneback"):
        shape = work_shape(full, work_size)
        sigma = optical_band_sigma(density, shape[1] / full[1])
        a, b = _to_band(gray8(src, shape), sigma), _to_band(gray8(ref, shape), sigma)
        forward, backward = (_opencv_flow(a, b, method, dis_preset),
                             _opencv_flow(b, a, method, dis_preset))
        return _held(forward, full), _held(backward, full), None
    if method != "onnx":
        raise InputError(f"unknown flow method {method!r}; use dis, farneback or onnx")
    if not onnx_model:
        raise InputError("flow method 'onnx' needs the parameter onnx_model (path of a .onnx file)")
    session = onnx_session(str(onnx_model))
    h, w = onnx_input_shape(session, work_shape(full, work_size))
    sigma = optical_band_sigma(density, w / full[1])
    a = _to_band(cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA), sigma)
    b = _to_band(cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA), sigma)
    forward, log_var = _onnx_flow(session, a, b)
    backward, _ = _onnx_flow(session, b, a)  # backward flow: the same model with inputs swapped
    std = flow_std_full_res(log_var, full) if log_var is not None else None
    return _held(forward, full), _held(backward, full), std


def estimate_flow(src: np.ndarray, ref: np.ndarray, method: str = "dis",
                  work_size: tuple[int, int] = (384, 512), onnx_model: str | None = None,
                  dis_preset: str = "fine", density: float = 1.0,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`estimate_coarse_flow` with both flows upsampled to full resolution, float32
    (H, W, 2) (for callers that want the fields themselves, e.g. the training rig)."""
    forward, backward, std = estimate_coarse_flow(src, ref, method, work_size, onnx_model,
                                                  dis_preset, density)
    return forward.full(), backward.full(), std


@node("hzsr.flow", version=3, fingerprint=lambda params: model_fingerprint(params["onnx_model"]))
def flow(src: Image, ref: Image, crop: Rect = None, *,
         method: str = Param("dis", choices=("dis", "farneback", "onnx"),
                             doc="flow backend: OpenCV DIS, OpenCV Farneback or an ONNX model"),
         dis_preset: str = Param("fine", choices=tuple(DIS_PRESETS),
                                 doc="DIS settings: OpenCV's presets (ultrafast, fast, medium: "
                                     "refined down to half the work grid) or fine (down to the "
                                     "work grid, smoothed; DIS_PRESETS in flow.py)"),
         work_height: int = Param(384, range=(32, 4096), unit="px",
                                  doc="short side of the box the flow is computed in"),
         work_width: int = Param(512, range=(32, 4096), unit="px",
                                 doc="long side of the box the flow is computed in"),
         onnx_model: str | None = Param(None, doc="path of the ONNX flow model (method onnx); "
                                                  "layout in the module documentation"),
         ) -> Out(forward=CompactFlow, backward=CompactFlow, flow_std=Gray):
    """Forward (F_fwd: I_src -> I_ref) and backward (F_bwd) flow, computed downsampled.

    Both images are resized to fit work_width x work_height (aspect kept, never enlarged)
    and, with ``crop`` (T's footprint in W px; density = src width / crop width), blurred
    to W's optical band (sigma = sqrt((d s)^2 - 1) / 2 work px, s the work scale);
    flow is computed on luminance (DIS, Farneback) or RGB (ONNX), upsampled bilinearly and
    its vectors rescaled to full resolution (held at the work size, upsampled where a reader
    reads it). ``flow_std`` is S(x) = sqrt(exp(log Var_x) + exp(log Var_y)) in
    full-resolution px when the ONNX model emits log-variances, else None.
    """
    density = src.shape[1] / (crop[2] - crop[0]) if crop is not None else 1.0
    forward, backward, std = estimate_coarse_flow(src, ref, method, (work_height, work_width),
                                                  onnx_model, dis_preset, density)
    return {"forward": forward, "backward": backward, "flow_std": std}
