"""hzsr.fusion_unet: ports shared with fusion_classical, exact seamless tiling (receptive field
measured), colour kept from src."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from nodegraph import Image, Mask, Out, node
from nodegraph.node import spec_of
from nodegraph.nodes.hzsr import fusion_unet as fu
from nodegraph.nodes.ops.onnx_sessions import onnx_session

BUNDLED = os.path.join(os.path.dirname(fu.__file__), fu.BUNDLED_MODEL)
needs_model = pytest.mark.skipif(not os.path.isfile(BUNDLED), reason="bundled fusion_unet.onnx not built yet")


def _planes(h, w, seed=0):
    rng = np.random.default_rng(seed)
    import cv2
    base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3) * 4 - 1.5
    y_src = np.clip(base + 0.02 * rng.standard_normal((h, w)), 0, 1).astype(np.float32)
    y_ref = np.clip(y_src + 0.1 * rng.standard_normal((h, w)), 0, 1).astype(np.float32)
    m_occ = (rng.random((h, w)) < 0.2).astype(np.float32)
    return y_src, y_ref, m_occ


def test_ports_match_fusion_classical():
    spec = spec_of(fu.fusion_unet)
    assert [(k, str(v.type)) for k, v in spec.inputs.items()] == \
        [("src", "Image"), ("ref_warped", "Image"), ("M_occ", "CompactMask"), ("M_blend_raw", "CompactMask")]
    assert {k: str(v) for k, v in spec.outputs.items()} == {"fused": "Image"}
    if importlib.util.find_spec("nodegraph.nodes.hzsr.fusion_classical") is None:
        pytest.skip("fusion_classical not written yet")
    from nodegraph.nodes.hzsr import fusion_classical
    classical = spec_of(fusion_classical.fusion_classical)
    assert [(k, str(v.type), v.optional) for k, v in spec.inputs.items()] == \
        [(k, str(v.type), v.optional) for k, v in classical.inputs.items()]
    assert [str(t) for t in spec.outputs.values()] == [str(t) for t in classical.outputs.values()]


@pytest.mark.parametrize("length,tile,overlap", [(700, 128, 256), (1000, 300, 64), (64, 2048, 256), (65, 32, 0),
                                                 (3000, 1024, 192), (4000, 1000, 192), (130, 100, 192)])
def test_spans_cover_and_snap_to_grid(length, tile, overlap):
    padded = -(-length // fu.MULTIPLE) * fu.MULTIPLE
    spans = fu._spans(length, padded, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    on_grid = max(fu.MULTIPLE, -(-tile // fu.MULTIPLE) * fu.MULTIPLE)  # the tile, rounded up to the grid
    for (c0, c1, w0, w1), nxt in zip(spans, spans[1:] + [None]):
        assert c0 % fu.MULTIPLE == 0 and 0 < c1 - c0 <= on_grid                # cores on the grid
        assert nxt is None or nxt[0] == c1                                       # a partition
        assert w0 % fu.MULTIPLE == 0 and w1 % fu.MULTIPLE == 0 and 0 <= w0 and w1 <= padded
        assert w0 <= max(0, c0 - overlap) and w1 >= min(padded, c1 + overlap)  # context kept
        if overlap % fu.MULTIPLE == 0:  # no snapping needed: no window pixel beyond the context
            assert w0 == max(0, c0 - overlap) and w1 == min(padded, -(-(c1 + overlap) // fu.MULTIPLE) * fu.MULTIPLE)


@needs_model
def test_tiled_equals_untiled_without_seams():
    session = onnx_session(BUNDLED, 2)
    y_src, y_ref, m_occ = _planes(650, 830)
    whole = fu.fuse_luminance(y_src, y_ref, m_occ, session, tile=0)
    # the node's default overlap (the receptive field beyond the 64 px grid) is exact
    tiled = fu.fuse_luminance(y_src, y_ref, m_occ, session, tile=192,
                              overlap=spec_of(fu.fusion_unet).params["overlap"].default)
    assert whole.shape == (650, 830) and np.isfinite(whole).all()
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=0)
    # the network does use context: less overlap changes the result, so the test can fail
    for overlap in (0, fu.RECEPTIVE_PX - fu.MULTIPLE):
        short = fu.fuse_luminance(y_src, y_ref, m_occ, session, tile=192, overlap=overlap)
        assert np.abs(short - whole).max() > 1e-3


@needs_model
def test_windows_built_in_place_equal_a_plain_padded_pass():
    """The in-place window input (planes written into one array, edge-padded up to the grid)
    against the plain computation: the whole image stacked, np.pad'ed and run once, cropped;
    and fuse_image (luminance per window, I_fusion written into its output) against
    replace_luminance of that on the whole image. Sizes off the grid, so padding is used."""
    from nodegraph.nodes.ops.luminance import luminance, replace_luminance

    session = onnx_session(BUNDLED, 2)
    rng = np.random.default_rng(8)
    src = rng.random((150, 211, 3), dtype=np.float32)
    ref = np.clip(src + 0.05 * rng.standard_normal(src.shape), 0, 1).astype(np.float32)
    m_occ = (rng.random((150, 211)) > 0.8).astype(np.float32)
    planes = np.stack([luminance(src), luminance(ref), m_occ])
    padded = np.pad(planes, ((0, 0), (0, 192 - 150), (0, 256 - 211)), mode="edge")[None]
    plain = session.run(None, fu.network_feed(session)(padded))[0][0, 0, :150, :211]
    for tile in (0, 64, 128):
        np.testing.assert_allclose(fu.fuse_luminance(*planes, session, tile=tile), plain, atol=1e-5, rtol=0)
        np.testing.assert_allclose(fu.fuse_image(src, ref, m_occ, session, tile, fu.RECEPTIVE_PX),
                                   replace_luminance(src, plain), atol=1e-5, rtol=0)


@needs_model
def test_receptive_field_is_within_its_bound_of_the_grid_cell():
    """An impulse at a pixel changes the output only within RECEPTIVE_PX of the pixel's 64 px
    grid cell, and does reach that far (so RECEPTIVE_PX is the bound, not a loose guess)."""
    session = onnx_session(BUNDLED, 2)
    x = np.random.default_rng(4).random((1, 3, 768, 768), dtype=np.float32)
    feed = fu.network_feed(session)
    before = session.run(None, feed(x))[0][0, 0]
    reach = []
    for row, col in [(384, 384), (389, 441), (447, 400)]:
        bumped = x.copy()
        bumped[0, :, row, col] += 0.5
        rows, cols = np.nonzero(session.run(None, feed(bumped))[0][0, 0] != before)
        cell_row, cell_col = row // fu.MULTIPLE * fu.MULTIPLE, col // fu.MULTIPLE * fu.MULTIPLE
        reach += [cell_row - rows.min(), rows.max() + 1 - (cell_row + fu.MULTIPLE),
                  cell_col - cols.min(), cols.max() + 1 - (cell_col + fu.MULTIPLE)]
    assert max(reach) == fu.RECEPTIVE_PX


def test_detail_bands_equal_the_training_module():
    """OpenCV's bands (inference) against the torch DetailBands the network was trained with."""
    torch = pytest.importorskip("torch")
    from nodegraph.nodes.train.model import DetailBands

    module = DetailBands()
    y_ref = np.random.default_rng(5).random((70, 90), dtype=np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(y_ref)[None, None]).numpy()[0]
    got = fu.detail_bands(y_ref, module.bank.numpy())
    assert got.shape == expected.shape == (3, 70, 90)
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)


def test_split_model_equals_the_exported_one(tmp_path):
    """split_bands (what nodegraph train fusion writes) on a freshly exported network with random weights (the
    gains of the detail bands included, which start at zero): both layouts, each fed by
    network_feed, give the same Y_fusion, tiled or not; the split one has the bands input."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from nodegraph.nodes.train.export import export_onnx, split_bands
    from nodegraph.nodes.train.model import FusionUNet

    torch.manual_seed(0)
    network = FusionUNet(widths=(8, 8, 8, 8, 8))
    with torch.no_grad():
        for conv in (network.head, network.linear, network.gains):
            conv.weight.normal_(0, 0.05)
    export_onnx(network, tmp_path / "whole.onnx")
    split_bands(tmp_path / "whole.onnx", tmp_path / "split.onnx")
    whole, split = (onnx_session(str(tmp_path / f"{name}.onnx"), 1) for name in ("whole", "split"))
    assert [i.name for i in split.get_inputs()] == ["x", fu.BANDS_INPUT]
    y_src, y_ref, m_occ = _planes(200, 260, seed=6)
    x = np.stack([y_src, y_ref, m_occ])[None, :, :192, :256]
    expected = whole.run(None, fu.network_feed(whole)(x))[0]
    np.testing.assert_allclose(split.run(None, fu.network_feed(split)(x))[0], expected, atol=1e-5, rtol=0)
    # and the bands do matter: without them (zeros) the output differs, so the test can fail
    no_bands = split.run(None, {"x": x, fu.BANDS_INPUT: np.zeros((1, 3, 192, 256), np.float32)})[0]
    assert np.abs(no_bands - expected).max() > 1e-3
    np.testing.assert_allclose(fu.fuse_luminance(y_src, y_ref, m_occ, split, tile=96),
                               fu.fuse_luminance(y_src, y_ref, m_occ, whole, tile=0), atol=1e-5, rtol=0)


def _random_network(torch, seed=0):
    """A small fusion network with random weights, the detail gains, head and linear path too
    (they start at zero)."""
    from nodegraph.nodes.train.model import FusionUNet

    torch.manual_seed(seed)
    network = FusionUNet(widths=(8, 8, 8, 8, 8))
    with torch.no_grad():
        for conv in (network.head, network.linear, network.gains):
            conv.weight.normal_(0, 0.05)
            conv.bias.normal_(0, 0.05)
    return network


@pytest.mark.parametrize("split_first", [True, False])
def test_space_to_depth_layout_equals_the_exported_model(tmp_path, split_first):
    """space_to_depth_layout (what nodegraph train fusion writes, after split_bands) on a freshly
    exported network with random weights: the output equals the exported model's to float
    rounding on random inputs, tiled or not, with the bands outside the graph or inside it;
    no Transpose is left, and the initializers keep torch's layout (load_onnx_weights)."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from nodegraph.nodes.train.export import export_onnx, load_onnx_weights, runtime_layout, space_to_depth_layout
    from nodegraph.nodes.train.model import FusionUNet

    network = _random_network(torch, seed=1)
    export_onnx(network, tmp_path / "whole.onnx")
    if split_first:
        runtime_layout(tmp_path / "whole.onnx", tmp_path / "fast.onnx")
    else:
        space_to_depth_layout(tmp_path / "whole.onnx", tmp_path / "fast.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "fast.onnx")).graph.node
           if not node.name.startswith("/bands/")]  # the in-graph blurs transpose their taps
    assert ops.count("SpaceToDepth") == 2 and ops.count("DepthToSpace") == 1 and "Transpose" not in ops
    whole, fast = (onnx_session(str(tmp_path / f"{name}.onnx"), 1) for name in ("whole", "fast"))
    assert len(fast.get_inputs()) == (2 if split_first else 1)
    rng = np.random.default_rng(2)
    for shape in ((1, 3, 64, 64), (2, 3, 128, 192)):
        x = rng.random(shape, dtype=np.float32)
        expected = whole.run(None, fu.network_feed(whole)(x))[0]
        got = fast.run(None, fu.network_feed(fast)(x))[0]
        assert np.abs(expected).max() > 0.5   # the output is of order 1, the tolerance a few float steps
        np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)
    y_src, y_ref, m_occ = _planes(150, 200, seed=3)
    np.testing.assert_allclose(fu.fuse_luminance(y_src, y_ref, m_occ, fast, tile=64),
                               fu.fuse_luminance(y_src, y_ref, m_occ, whole, tile=0), atol=2e-6, rtol=0)
    reloaded = FusionUNet(widths=(8, 8, 8, 8, 8))
    load_onnx_weights(reloaded, tmp_path / "fast.onnx")
    for name, value in network.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name


def test_space_to_depth_channel_order_is_onnx_s():
    """channel_order against ONNX's SpaceToDepth and torch's pixel_unshuffle (DepthToSpace CRD)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from nodegraph.nodes.train.export import channel_order

    graph = helper.make_graph([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], "s2d",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(4).random((1, 3, 4, 6), dtype=np.float32)
    depth = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    unshuffled = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), 2).numpy()
    np.testing.assert_array_equal(depth, unshuffled[:, channel_order(3, 2)])
    assert not np.array_equal(depth, unshuffled)


def test_runtime_layout_refuses_a_converted_model(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from nodegraph.nodes.train.export import export_onnx, runtime_layout, space_to_depth_layout

    export_onnx(_random_network(torch), tmp_path / "m.onnx")
    runtime_layout(tmp_path / "m.onnx", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="already in hzsr.fusion_unet's layout"):
        runtime_layout(tmp_path / "m.onnx", tmp_path / "again.onnx")
    with pytest.raises(ValueError, match="no pixel_unshuffle"):
        space_to_depth_layout(tmp_path / "m.onnx", tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


@needs_model
def test_node_keeps_chroma_and_reuses_session():
    rng = np.random.default_rng(1)
    y_src, y_ref, m_occ = _planes(130, 200, seed=2)
    tint = rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    src = np.clip(y_src[..., None] + tint, 0, 1).astype(np.float32)
    ref = np.repeat(y_ref[..., None], 3, axis=2)
    out = fu.fusion_unet(src, ref, m_occ, model=fu.BUNDLED_MODEL, tile=2048, overlap=256, threads=1)
    assert out.shape == src.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    inner = (src > 0.02).all(2) & (src < 0.98).all(2) & (out > 0.001).all(2) & (out < 0.999).all(2)
    # only Y changed: R - G and B - G (which carry U, V at fixed Y) are those of src
    np.testing.assert_allclose((out[..., 0] - out[..., 1])[inner], (src[..., 0] - src[..., 1])[inner], atol=1e-5)
    np.testing.assert_allclose((out[..., 2] - out[..., 1])[inner], (src[..., 2] - src[..., 1])[inner], atol=1e-5)
    assert onnx_session(fu.resolve_model(fu.BUNDLED_MODEL), 1) is onnx_session(BUNDLED, 1)


def test_missing_model_is_an_input_error():
    from nodegraph.errors import InputError
    with pytest.raises(InputError):
        fu.resolve_model("no/such/model.onnx")


def _zero_mask_registry():
    """The built-in nodes plus a node that makes an all-zero M_occ the size of an image."""
    from nodegraph.registry import load_registry

    @node("test.zero_mask")
    def zero_mask(image: Image) -> Out(mask=Mask):
        """All zeros, (H, W) of ``image``."""
        return np.zeros(image.shape[:2], np.float32)

    registry = load_registry(include_plugins=False)
    registry.add(spec_of(zero_mask))
    return registry


@needs_model
def test_replacing_the_model_file_at_the_same_path_reruns_the_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    import cv2

    from nodegraph.execute import Cache, run_graph
    from nodegraph.graph import parse_graph
    from nodegraph.nodes.ops.onnx_sessions import onnx_session as session_of

    y_src, _, _ = _planes(64, 64, seed=3)
    cv2.imwrite(str(tmp_path / "photo.png"), (np.repeat(y_src[..., None], 3, 2) * 255).astype(np.uint8))
    model = tmp_path / "model.onnx"
    model.write_bytes(open(BUNDLED, "rb").read())
    graph = parse_graph(f"inputs:\n  photo: {{type: Path, default: {tmp_path / 'photo.png'}}}\n"
                        "nodes:\n  read: {type: image.read, in: {path: inputs.photo}}\n"
                        "  zeros: {type: test.zero_mask, in: {image: read.image}}\n"
                        "  fusion:\n    type: hzsr.fusion_unet\n"
                        "    in: {src: read.image, ref_warped: read.image, M_occ: zeros.mask}\n"
                        f"    params: {{model: {model}, threads: 1}}\n"
                        "outputs:\n  fused: fusion.fused\n")
    registry, cache = _zero_mask_registry(), Cache()
    first = run_graph(graph, registry, cache=cache)
    assert run_graph(graph, registry, cache=cache).records["fusion"].status == "cached"
    # Same path, new content: the last convolution's bias shifted, so the output must change.
    proto = onnx.load(str(model))
    bias = next(t for t in reversed(proto.graph.initializer)
                if len(t.dims) == 1 and t.data_type == onnx.TensorProto.FLOAT)
    values = onnx.numpy_helper.to_array(bias) + np.float32(0.05)
    bias.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), bias.name))
    onnx.save(proto, str(model))
    third = run_graph(graph, registry, cache=cache)
    assert third.records["fusion"].status == "ran" and third.records["read"].status == "cached"
    assert np.abs(third.outputs["fused"] - first.outputs["fused"]).max() > 1e-3
    assert session_of(str(model), 1) is not session_of(BUNDLED, 1)


def test_an_unloadable_model_file_is_an_input_error(tmp_path):
    from nodegraph.errors import InputError
    bogus = tmp_path / "passwd.onnx"
    bogus.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(InputError, match="cannot load ONNX model"):
        onnx_session(str(bogus))


def test_8_bit_masks_are_read_window_by_window_as_their_float_values():
    from nodegraph.types import compact_mask_to_float, quantize_mask

    session = onnx_session(BUNDLED, 2)
    rng = np.random.default_rng(9)
    src = rng.random((150, 211, 3), dtype=np.float32)
    ref = np.clip(src + 0.05 * rng.standard_normal(src.shape), 0, 1).astype(np.float32)
    m_occ = quantize_mask(rng.random((150, 211), dtype=np.float32))
    raw = quantize_mask((rng.random((150, 211)) > 0.5).astype(np.float32))
    stored = fu.fuse_image(src, ref, m_occ, session, 64, fu.RECEPTIVE_PX, raw)
    as_float = fu.fuse_image(src, ref, compact_mask_to_float(m_occ), session, 64, fu.RECEPTIVE_PX,
                             compact_mask_to_float(raw))
    np.testing.assert_array_equal(stored, as_float)


@needs_model
def test_cores_the_blend_cannot_use_are_skipped_and_the_rest_is_unchanged():
    session = onnx_session(BUNDLED, 2)
    rng = np.random.default_rng(3)
    src = rng.random((700, 900, 3), dtype=np.float32)
    ref = np.clip(src + 0.05 * rng.standard_normal(src.shape), 0, 1).astype(np.float32)
    m_occ = np.zeros((700, 900), np.float32)
    raw = np.zeros((700, 900), np.float32)
    raw[:100, :100] = 1.0  # reaches cores within BLEND_SUPPORT_PX only
    every = fu.fuse_image(src, ref, m_occ, session, tile=128, overlap=256)
    skipping = fu.fuse_image(src, ref, m_occ, session, tile=128, overlap=256, m_blend_raw=raw)
    near = 100 + fu.BLEND_SUPPORT_PX
    np.testing.assert_array_equal(skipping[:near, :near], every[:near, :near])
    np.testing.assert_array_equal(skipping[near + 128:], src[near + 128:])  # not run: I_src
    assert np.abs(every[near + 128:] - src[near + 128:]).max() > 1e-3      # the net changes it


def _fusion_inputs(h, w, seed=8):
    rng = np.random.default_rng(seed)
    src = rng.random((h, w, 3), dtype=np.float32)
    ref = np.clip(src + 0.05 * rng.standard_normal(src.shape), 0, 1).astype(np.float32)
    m_occ = (rng.random((h, w)) > 0.8).astype(np.float32)
    return src, ref, m_occ


@needs_model
def test_bundled_model_is_cut_into_stages_with_the_geometry_of_its_graph():
    from nodegraph.nodes.ops.onnx_stages import unet_stages

    stages = unet_stages(BUNDLED)
    assert isinstance(stages.encoder, bytes) and stages.skip != stages.deep_name
    # stem 4, first level 24 wide; encoder: stem + one 3x3 conv, decoder: two 3x3 convs
    assert (stages.skip_channels, stages.stem, stages.deep_step, stages.deep_multiple) == (24, 4, 8, 16)
    assert (stages.encoder_halo, stages.decoder_halo) == (8, 8)
    # the deep levels' reach bounds the whole network's measured receptive field
    assert stages.stem * stages.deep_reach + stages.decoder_halo >= fu.RECEPTIVE_PX


@needs_model
@pytest.mark.parametrize("h,w,tile,threads", [(150, 211, 64, 1), (150, 211, 64, 3), (650, 830, 192, 2),
                                              (650, 830, 64, 2), (300, 500, 1024, 2), (650, 830, 0, 1),
                                              (40, 50, 512, 2), (330, 470, 64, 8)])
def test_staged_network_equals_the_whole_network(h, w, tile, threads):
    """Stages on cores (several at a time, deep windows when the skip plane exceeds a tile,
    sizes off every grid) against one whole-image pass of the uncut model."""
    src, ref, m_occ = _fusion_inputs(h, w)
    whole = fu.fuse_image(src, ref, m_occ, onnx_session(BUNDLED, 2), 0, fu.RECEPTIVE_PX)
    staged = fu.staged_network(BUNDLED, threads)
    assert staged is not None and staged.workers == min(threads, fu.MAX_TILES_AT_ONCE)
    assert staged.encoder.get_session_options().intra_op_num_threads == max(1, threads // staged.workers)
    np.testing.assert_allclose(fu.fuse_image(src, ref, m_occ, staged, tile, fu.RECEPTIVE_PX), whole,
                               atol=1e-6, rtol=0)


@needs_model
@pytest.mark.parametrize("field", ["encoder_halo", "deep_reach", "decoder_context"])
def test_each_stage_needs_its_context(field):
    """With a stage's context taken away, tile edges show: the exactness test can fail."""
    import dataclasses

    src, ref, m_occ = _fusion_inputs(650, 830)
    staged = fu.staged_network(BUNDLED, 1)
    exact = fu.fuse_image(src, ref, m_occ, staged, 64, fu.RECEPTIVE_PX)
    if field == "decoder_context":
        short = dataclasses.replace(staged, decoder_context=0)
    else:
        short = dataclasses.replace(staged, stages=dataclasses.replace(staged.stages, **{field: 0}))
    assert np.abs(fu.fuse_image(src, ref, m_occ, short, 64, fu.RECEPTIVE_PX) - exact).max() > 1e-3


@needs_model
def test_staged_network_skips_the_cores_the_blend_cannot_use():
    src, ref, m_occ = _fusion_inputs(700, 900, seed=3)
    raw = np.zeros((700, 900), np.float32)
    raw[:100, :100] = 1.0
    staged = fu.staged_network(BUNDLED, 2)
    every = fu.fuse_image(src, ref, m_occ, onnx_session(BUNDLED, 2), 0, fu.RECEPTIVE_PX)
    skipping = fu.fuse_image(src, ref, m_occ, staged, 128, fu.RECEPTIVE_PX, m_blend_raw=raw)
    near = 100 + fu.BLEND_SUPPORT_PX
    np.testing.assert_allclose(skipping[:near, :near], every[:near, :near], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(skipping[near + 128:], src[near + 128:])


def test_a_model_of_another_shape_is_not_cut_and_runs_whole(tmp_path):
    """A plain convolution (no space-to-depth stem, no skip connection): no stages; the node
    runs it tile by tile with its overlap, as before."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from nodegraph.nodes.ops.onnx_stages import unet_stages

    weight = np.zeros((1, 3, 3, 3), np.float32)
    weight[0, 0, 1, 1] = 1.0
    weight[0, 1] = 0.05
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [numpy_helper.from_array(weight, "w")])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert unet_stages(str(path)) is None and fu.staged_network(str(path)) is None
    src, ref, m_occ = _fusion_inputs(100, 130)
    out = fu.fusion_unet(src, ref, m_occ, model=str(path), tile=64, overlap=64, threads=1)
    whole = fu.fuse_image(src, ref, m_occ, onnx_session(str(path), 1), 0, 64)
    np.testing.assert_allclose(out, whole, atol=1e-6, rtol=0)


def test_row_strips_read_and_write_like_one_plane():
    rng = np.random.default_rng(5)
    plane = np.zeros((1, 2, 40, 9), np.float32)
    strips = fu._RowStrips([(0, 8), (8, 24), (24, 40)], 2, 9)
    for r0, r1, c0, c1 in [(0, 12, 0, 9), (12, 40, 3, 9), (12, 40, 0, 3), (5, 30, 2, 6)]:
        values = rng.random((1, 2, r1 - r0, c1 - c0), dtype=np.float32)
        plane[:, :, r0:r1, c0:c1] = values
        strips.write(r0, r1, slice(c0, c1), values)
    for r0, r1 in [(0, 40), (6, 9), (8, 24), (23, 25), (30, 31)]:
        np.testing.assert_array_equal(strips.read(r0, r1, slice(1, 8)), plane[:, :, r0:r1, 1:8])
    strips.drop_before(10)  # only the rows that end at or before row 10 go
    assert sorted(strips.strips) == [(8, 24), (24, 40)]
    np.testing.assert_array_equal(strips.read(8, 40, slice(0, 9)), plane[:, :, 8:40])
