"""hzsr.flow: known shifts of a real photo (DIS, Farneback), work size, ONNX backend."""
from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import skimage.data
from onnx import TensorProto, helper

from nodegraph.errors import InputError
from nodegraph.nodes.hzsr.flow import estimate_flow, flow, flow_std_full_res, work_shape
from nodegraph.types import upsample_flow

SHIFT = (5.4, -3.2)


def _shifted_pair(name="coffee", shift=SHIFT):
    """src = a real photo; ref = src moved by +shift, so F_fwd = +shift and F_bwd = -shift."""
    src = getattr(skimage.data, name)().astype(np.float32) / 255.0
    h, w = src.shape[:2]
    ref = cv2.warpAffine(src, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h),
                         flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return src, np.clip(ref, 0, 1)


def _median_error(field, expected):
    inner = field[20:-20, 20:-20]  # the borders have no counterpart in the other image
    return float(np.median(np.linalg.norm(inner - np.asarray(expected), axis=2)))


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("name", ["coffee", "astronaut"])
def test_known_shift_recovered(method, name):
    src, ref = _shifted_pair(name)
    forward, backward, std = estimate_flow(src, ref, method)
    assert forward.shape == src.shape[:2] + (2,) and forward.dtype == np.float32
    assert std is None
    assert _median_error(forward, SHIFT) < 0.3
    assert _median_error(backward, (-SHIFT[0], -SHIFT[1])) < 0.3


def test_flow_computed_small_is_rescaled_to_full_resolution():
    # 2x the photo: flow runs at half size (long side 512) and must come back in full-res px.
    src, ref = _shifted_pair("coffee", (10.8, -6.4))
    big_src = cv2.resize(src, (1200, 800), interpolation=cv2.INTER_CUBIC)
    big_ref = cv2.resize(ref, (1200, 800), interpolation=cv2.INTER_CUBIC)
    out = flow(big_src, big_ref, method="dis", dis_preset="medium", work_height=384,
               work_width=512, onnx_model=None)
    assert out["forward"].shape == (800, 1200, 2)
    assert out["forward"].field.shape == (341, 512, 2)  # held at the work size
    assert _median_error(out["forward"].full(), (21.6, -12.8)) < 0.6  # 0.3 px at the work size


def test_work_shape_keeps_aspect_and_never_enlarges():
    assert work_shape((3000, 4000), (384, 512)) == (384, 512)
    assert work_shape((4000, 3000), (384, 512)) == (512, 384)  # portrait
    assert work_shape((2000, 4000), (384, 512)) == (256, 512)
    assert work_shape((200, 300), (384, 512)) == (200, 300)


def test_upsample_flow_scales_vectors():
    small = np.zeros((10, 20, 2), np.float32)
    small[..., 0], small[..., 1] = 1.5, -2.0
    big = upsample_flow(small, (30, 80))
    np.testing.assert_allclose(big[..., 0], 6.0)
    np.testing.assert_allclose(big[..., 1], -6.0)


def _onnx_model(path, channels, static_hw=None, dx=2.0, dy=-1.0, log_var=(0.0, np.log(4.0))):
    """A tiny flow model: constant flow (dx, dy) (+ constant log-variances) shaped like image1."""
    h, w = static_hw if static_hw else ("H", "W")
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, h, w])
              for n in ("image1", "image2")]
    values = [dx, dy] + (list(log_var) if channels == 4 else [])
    nodes = [
        helper.make_node("ReduceSum", ["image1", "axes"], ["first"], keepdims=1),  # (1,1,H,W)
        helper.make_node("Mul", ["first", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "values"], ["flow"]),  # broadcast (1,C,1,1)
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("values", TensorProto.FLOAT, [1, channels, 1, 1], values)]
    outputs = [helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, channels, h, w])]
    graph = helper.make_graph(nodes, "const_flow", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_onnx_two_channel_dynamic_runs_at_work_size(tmp_path):
    model = _onnx_model(tmp_path / "flow2.onnx", 2)
    src = np.random.default_rng(0).random((768, 1024, 3)).astype(np.float32)
    forward, backward, std = estimate_flow(src, src, "onnx", (384, 512), model)
    assert std is None
    # Work size 384x512 is half of full resolution: vectors double.
    np.testing.assert_allclose(forward[..., 0], 4.0, atol=1e-5)
    np.testing.assert_allclose(forward[..., 1], -2.0, atol=1e-5)
    assert backward.shape == (768, 1024, 2)


def test_onnx_four_channel_static_gives_flow_std_in_full_res_px(tmp_path):
    model = _onnx_model(tmp_path / "flow4.onnx", 4, static_hw=(64, 96))
    src = np.random.default_rng(1).random((256, 288, 3)).astype(np.float32)
    out = flow(src, src, method="onnx", dis_preset="medium", work_height=384, work_width=512,
               onnx_model=model)
    sx, sy = 288 / 96, 256 / 64  # the static 64x96 grid, not the work size
    forward = out["forward"].full()
    np.testing.assert_allclose(forward[..., 0], 2.0 * sx, atol=1e-5)
    np.testing.assert_allclose(forward[..., 1], -1.0 * sy, atol=1e-5)
    # Var_x = 1, Var_y = 4 work px^2 -> S = sqrt(1 * sx^2 + 4 * sy^2) full-res px.
    std = out["flow_std"]
    assert std.shape == (256, 288) and std.dtype == np.float32
    np.testing.assert_allclose(std, np.sqrt(sx**2 + 4 * sy**2), rtol=1e-5)


def test_flow_std_is_finite_for_extreme_log_variances():
    log_var = np.array([[[-1e3, 1e3], [0.0, 0.0]]], np.float32)
    s = flow_std_full_res(log_var, (2, 4))
    assert np.isfinite(s).all() and (s > 0).all()


def test_onnx_errors_are_clear(tmp_path):
    src = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(InputError, match="onnx_model"):
        estimate_flow(src, src, "onnx", (384, 512), None)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="bad.onnx"):
        estimate_flow(src, src, "onnx", (384, 512), str(bad))
    with pytest.raises(InputError, match="same size"):
        estimate_flow(src, src[:16], "dis")


def test_optical_band_sigma_brings_tele_band_to_wides():
    from nodegraph.nodes.hzsr.flow import optical_band_sigma
    assert optical_band_sigma(4.0, 1.0) == pytest.approx(np.sqrt(15.0) / 2)
    assert optical_band_sigma(4.0, 0.5) == pytest.approx(np.sqrt(3.0) / 2)  # work grid 2x W
    assert optical_band_sigma(1.0, 1.0) == 0.0 and optical_band_sigma(4.0, 0.2) == 0.0
    # the blur's variance plus the work pixel's own (1/2 px)^2 is a W pixel's: (d s / 2)^2
    d, s = 3.0, 0.8
    assert optical_band_sigma(d, s) ** 2 + 0.25 == pytest.approx((d * s / 2) ** 2)


def test_fine_preset_resolves_a_small_close_object_that_medium_smears():
    # A 60 px patch of another photo moves 6 px further than the background (parallax of a
    # close object): OpenCV's presets stop at half the work grid and smear its flow into the
    # background's; "fine" refines on the work grid itself (flow.py's DIS_PRESETS). Measured
    # 90th percentile errors: medium 1.1 px, fine 0.18 px.
    src, ref = _shifted_pair("coffee", (2.0, 0.0))
    patch = skimage.data.astronaut()[300:360, 100:160].astype(np.float32) / 255.0
    src[150:210, 300:360] = patch
    ref[150:210, 308:368] = patch
    p90 = {}
    for preset in ("medium", "fine"):
        forward = flow(src, ref, method="dis", dis_preset=preset, work_height=384,
                       work_width=512, onnx_model=None)["forward"].full()
        error = np.linalg.norm(forward[154:206, 304:356] - (8.0, 0.0), axis=2)
        p90[preset] = float(np.percentile(error, 90))
    assert p90["fine"] < 0.4, p90
    assert p90["fine"] < p90["medium"] / 2, p90
