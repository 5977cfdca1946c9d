"""Flows held at the grid they were computed on (CoarseFlow, port type CompactFlow).

Every reader samples the upsampled field itself (``ops.flow_fields.flow_at``). Its results
must equal those of the same reader given the full-size field (``CoarseFlow.full()``, i.e.
``cv2.resize``), checked against each node's plain NumPy reference, on random fields and
on sizes that put pixels on every kind of resize tap (edges, exact multiples, odd ratios).
"""
import numpy as np
import pytest

from nodegraph import Any, CompactFlow, Flow, Gray, Image, Local, Mask, Out, node, output_rows
from nodegraph.execute import plan, run_graph, run_plan
from nodegraph.graph import parse_graph
from nodegraph.nodes.hzsr.defocus import defocus_mask, defocus_mask_reference, focus_flow
from nodegraph.nodes.hzsr.flow_uncertainty import estimated_flow_mask, estimated_flow_mask_reference
from nodegraph.nodes.hzsr.occlusion import occlusion_mask, occlusion_mask_reference
from nodegraph.nodes.hzsr.warp import warp_bilinear, warp_bilinear_reference
from nodegraph.nodes.ops.flow_fields import as_coarse, sample_flow
from nodegraph.registry import Registry
from nodegraph.types import PORT_TYPES, CoarseFlow, upsample_flow

# (coarse h, w) -> (full H, W): non-integer ratios, exact multiples, equal size, one cell,
# a grid coarse along one axis only
SIZES = [((12, 16), (94, 125)), ((6, 8), (24, 32)), ((9, 11), (9, 11)), ((1, 1), (7, 9)),
         ((10, 4), (10, 37)), ((5, 7), (41, 23))]


def _coarse(coarse_shape, full_shape, scale, seed) -> CoarseFlow:
    rng = np.random.default_rng(seed)
    return CoarseFlow((rng.standard_normal(coarse_shape + (2,)) * scale).astype(np.float32), full_shape)


def _close(a, b, scale=1.0):
    # float rounding only: cv2.resize mixes the coarse field horizontally first, the kernels
    # vertically first; ~8 float32 ulps of the largest value involved
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * max(1.0, scale))


def _rounding(flow: CoarseFlow) -> float:
    """The rounding of a position read from ``flow`` at full size, in px (~8 ulps)."""
    return 1e-6 * max(1.0, float(np.abs(flow.full()).max()))


@pytest.mark.parametrize("sizes", SIZES)
def test_sampled_field_equals_the_resized_one(sizes):
    flow = _coarse(*sizes, scale=20.0, seed=sum(sizes[1]))
    full = flow.full()
    assert full.shape == flow.shape and full.dtype == np.float32
    np.testing.assert_array_equal(full, upsample_flow(flow.field, sizes[1]))
    _close(sample_flow(flow, (0, full.shape[0]), (0, full.shape[1])), full, 20.0 * full.shape[1])
    h, w = full.shape[:2]
    rows, cols, step = (h // 3, h), (1, max(2, w - 2)), 3
    _close(sample_flow(flow, rows, cols, step), full[rows[0]:rows[1]:step, cols[0]:cols[1]:step],
           20.0 * w)


def test_a_full_size_field_is_read_back_exactly():
    field = np.random.default_rng(3).standard_normal((13, 17, 2)).astype(np.float32) * 50
    wrapped = as_coarse(field)
    assert wrapped.size == (13, 17)
    np.testing.assert_array_equal(sample_flow(wrapped, (0, 13), (0, 17)), field)
    np.testing.assert_array_equal(wrapped.full(), field)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("scale", [0.5, 6.0])
def test_occlusion_from_a_coarse_field_equals_the_full_one(sizes, scale):
    fwd, bwd = (_coarse(*sizes, scale=scale, seed=seed) for seed in (1, 2))
    s = 0.5 / scale
    out = occlusion_mask(fwd, bwd, s)
    # M_occ moves by s times the rounding of the round trip (both fields, and F_bwd's
    # bilinear read at a position that is itself rounded: up to ~ its gradient, 1-2 px/px)
    tolerance = 1e-5 + 8.0 * s * max(_rounding(fwd), _rounding(bwd))
    np.testing.assert_allclose(out, occlusion_mask(fwd.full(), bwd.full(), s), atol=tolerance)
    np.testing.assert_allclose(out, occlusion_mask_reference(fwd.full(), bwd.full(), s), atol=tolerance)


@pytest.mark.parametrize("sizes", SIZES)
def test_warp_by_a_coarse_field_equals_the_full_one(sizes):
    flow = _coarse(*sizes, scale=3.0, seed=4)
    image = np.random.default_rng(5).random(sizes[1] + (3,)).astype(np.float32)
    out = warp_bilinear(image, flow)
    # the rounding of the position times the image's gradient (random: up to 1 per px, in x and y)
    tolerance = 1e-6 + 2.0 * _rounding(flow)
    np.testing.assert_allclose(out, warp_bilinear(image, flow.full()), atol=tolerance)
    np.testing.assert_allclose(out, warp_bilinear_reference(image, flow.full()), atol=tolerance + 1e-6)


@pytest.mark.parametrize("sizes", SIZES)
def test_defocus_from_a_coarse_field_equals_the_full_one(sizes):
    flow = _coarse(*sizes, scale=4.0, seed=6)
    h, w = sizes[1]
    roi = (w // 4, h // 4, max(w // 4 + 1, 3 * w // 4), max(h // 4 + 1, 3 * h // 4))
    focus = focus_flow(flow, roi, 3, 50)
    _close(focus, focus_flow(flow.full(), roi, 3, 50), 4.0)
    out = defocus_mask(flow, focus, 4.0, 2.0)
    # sigmoid' <= 1/4 times the rounding of ||F - focus||^2 (2 ||F - focus|| per px) / sigma_f
    tolerance = 1e-6 + float(np.abs(flow.full()).max()) * _rounding(flow) / 2.0
    np.testing.assert_allclose(out, defocus_mask(flow.full(), focus, 4.0, 2.0), atol=tolerance)
    np.testing.assert_allclose(out, defocus_mask_reference(flow.full(), focus, 4.0, 2.0),
                               atol=tolerance + 1e-6)


@pytest.mark.parametrize("sizes", SIZES)
def test_flow_uncertainty_from_coarse_fields_equals_the_full_ones(sizes):
    fwd, bwd = (_coarse(*sizes, scale=2.0, seed=seed) for seed in (7, 8))
    rng = np.random.default_rng(9)
    y_src, y_ref = (rng.random(sizes[1]).astype(np.float32) for _ in range(2))
    args = (y_src, y_ref, 6.0, 4, 0.01, 0.0025)
    out = estimated_flow_mask(fwd, bwd, *args)
    np.testing.assert_allclose(out, estimated_flow_mask(fwd.full(), bwd.full(), *args), atol=1e-5)
    np.testing.assert_allclose(out, estimated_flow_mask_reference(fwd.full(), bwd.full(), *args),
                               atol=1e-4)


def test_compact_flow_checks_and_converts():
    compact, flow = PORT_TYPES["CompactFlow"], PORT_TYPES["Flow"]
    coarse = _coarse((3, 4), (9, 10), 1.0, 0)
    assert compact.problem_with(coarse) is None
    assert "CoarseFlow" in compact.problem_with(np.zeros((9, 10, 2), np.float32))
    assert "float32" in compact.problem_with(CoarseFlow(np.zeros((3, 4, 2)), (9, 10)))
    assert "no larger" in compact.problem_with(CoarseFlow(np.zeros((12, 4, 2), np.float32), (9, 10)))
    assert compact.can_feed(flow) and flow.can_feed(compact)
    np.testing.assert_array_equal(compact.convert(coarse, flow), coarse.full())
    full = coarse.full()
    wrapped = flow.convert(full, compact)
    assert isinstance(wrapped, CoarseFlow) and wrapped.field is full and wrapped.size == (9, 10)
    zeros = compact.bypass_value((5, 6))
    assert zeros.shape == (5, 6, 2) and not zeros.full().any()
    assert compact.picture(coarse).shape == (9, 10, 3)


@node("t.image")
def _image(*, height: int = 6, width: int = 9) -> Out(image=Image):
    """A black image."""
    return np.zeros((height, width, 3), np.float32)


@node("t.coarse_flow")
def _coarse_source(image: Image) -> Out(flow=CompactFlow):
    """A 2x3 field standing for the image's size."""
    field = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    return CoarseFlow(field, image.shape[:2])


@node("t.full_flow_reader")
def _full_flow_reader(flow: Flow) -> Out(seen=Any, flow=Flow):
    """What a plugin declaring a plain Flow gets, and that flow passed on."""
    return {"seen": flow, "flow": flow}


@node("t.coarse_flow_reader")
def _coarse_flow_reader(flow: CompactFlow) -> Out(seen=Any):
    """What a reader declaring CompactFlow gets."""
    return flow


GRAPH = """\
nodes:
  img: {type: t.image}
  source: {type: t.coarse_flow, in: {image: img.image}}
  plugin: {type: t.full_flow_reader, in: {flow: source.flow}}
  reader: {type: t.coarse_flow_reader, in: {flow: plugin.flow}}
outputs: {full: plugin.seen, wrapped: reader.seen}
"""


def _registry(*declared) -> Registry:
    registry = Registry()
    for function in (_image, _coarse_source, *declared):
        registry.add(function.__nodegraph_spec__)
    return registry


def test_a_compact_flow_reaches_a_flow_reader_full_size_and_back_wrapped():
    result = run_graph(parse_graph(GRAPH), _registry(_full_flow_reader, _coarse_flow_reader))
    full = result.outputs["full"]
    expected = CoarseFlow(np.arange(12, dtype=np.float32).reshape(2, 3, 2), (6, 9)).full()
    assert isinstance(full, np.ndarray)
    np.testing.assert_array_equal(full, expected)
    wrapped = result.outputs["wrapped"]
    assert isinstance(wrapped, CoarseFlow) and wrapped.size == (6, 9)
    np.testing.assert_array_equal(wrapped.full(), expected)


@node("t.flow_to_gray", local=Local())
def _flow_to_gray(image: Image, flow: CompactFlow) -> Out(gray=Gray):
    """image's red channel plus the flow's dx at each of its rows (a local node: the image
    comes in strips, the coarse flow whole)."""
    top, bottom = output_rows() or (0, image.shape[0])
    return image[..., 0] + sample_flow(flow, (top, bottom), (0, image.shape[1]))[..., 0]


def test_a_local_node_reads_a_coarse_flow_whole_and_its_other_inputs_in_strips():
    graph = parse_graph("nodes:\n  img: {type: t.image, params: {height: 40, width: 9}}\n"
                        "  source: {type: t.coarse_flow, in: {image: img.image}}\n"
                        "  gray: {type: t.flow_to_gray, in: {image: img.image, flow: source.flow}}\n"
                        "outputs: {gray: gray.gray}\n")
    the_plan = plan(graph, _registry(_flow_to_gray))
    strips = run_plan(the_plan, strip_rows=7, workers=2)
    assert strips.records["gray"].strips > 1
    whole = run_plan(the_plan, keep_all=True)
    expected = CoarseFlow(np.arange(12, dtype=np.float32).reshape(2, 3, 2), (40, 9)).full()[..., 0]
    np.testing.assert_array_equal(strips.outputs["gray"], whole.outputs["gray"])
    np.testing.assert_allclose(whole.outputs["gray"], expected, atol=1e-5)


def test_a_local_node_cannot_make_a_coarse_flow_in_strips():
    def returns_coarse(image: Image) -> Out(flow=CompactFlow):
        return image
    with pytest.raises(TypeError, match="rasters made in strips"):
        node("bad.local_flow", local=Local())(returns_coarse)


@node("t.flow_mask")
def _flow_mask(flow: CompactFlow) -> Out(mask=Mask):
    """Ones of the flow's full size."""
    return np.ones(flow.shape[:2], np.float32)


def test_a_bypassed_reader_of_a_coarse_flow_gives_zeros_of_its_full_size():
    graph = parse_graph("nodes:\n  img: {type: t.image}\n"
                        "  source: {type: t.coarse_flow, in: {image: img.image}, bypass: true}\n"
                        "  mask: {type: t.flow_mask, in: {flow: source.flow}, bypass: true}\n"
                        "outputs: {mask: mask.mask, flow: source.flow}\n")
    result = run_graph(graph, _registry(_flow_mask))
    assert result.outputs["mask"].shape == (6, 9) and not result.outputs["mask"].any()
    assert result.outputs["flow"].shape == (6, 9, 2) and not result.outputs["flow"].full().any()
