"""Bypass has a defined meaning: a pass-through input, else the output type's bypass value;
validation refuses, with the line, any bypass that would leave a reader without a value."""
from pathlib import Path

import numpy as np
import pytest

from nodegraph import Image, Mask, Out, Scalar, node
from nodegraph.errors import GraphError
from nodegraph.execute import Cache, run_graph
from nodegraph.graph import load_graph, parse_graph
from nodegraph.registry import Registry, default_registry
from nodegraph.types import Flow, Gray, Rect
from nodegraph.validate import apply_settings, validate

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted([REPO / "pipelines" / "hzsr.yaml", *(REPO / "pipelines" / "ablations").glob("*.yaml")])


@node("t.image")
def make_image(*, height: int = 3, width: int = 4) -> Out(image=Image):
    """A gray image."""
    return np.full((height, width, 3), 0.5, np.float32)


@node("t.masks")
def masks(image: Image) -> Out(mask=Mask, flow=Flow, gray=Gray, box=Rect, count=Scalar):
    """Ones everywhere, and more."""
    h, w = image.shape[:2]
    return {"mask": np.ones((h, w), np.float32), "flow": np.ones((h, w, 2), np.float32),
            "gray": np.ones((h, w), np.float32), "box": (0.0, 0.0, w, h), "count": 1.0}


@node("t.use_mask")
def use_mask(image: Image, mask: Mask, flow: Flow = None, gray: Gray = None) -> Out(image=Image):
    """image * (1 - mask)."""
    return image * (1.0 - mask[..., None])


@node("t.use_box")
def use_box(box: Rect) -> Out(width=Scalar):
    """Width of a box."""
    return box[2] - box[0]


@node("t.pick", bypass={"chosen": "second"})
def pick(first: Scalar, second: Scalar = None) -> Out(chosen=Scalar):
    """first + 1; bypassed, the second input."""
    return first + 1.0


@pytest.fixture
def registry():
    reg = Registry()
    for func in (make_image, masks, use_mask, use_box, pick):
        reg.add(func.__nodegraph_spec__)
    return reg


GRAPH = """\
nodes:
  img: {type: t.image}
  m:
    type: t.masks
    in: {image: img.image}
    bypass: true
  use: {type: t.use_mask, in: {image: img.image, mask: m.mask, flow: m.flow, gray: m.gray}}
outputs: {image: use.image, mask: m.mask, flow: m.flow, gray: m.gray}
"""


def test_a_bypassed_mask_is_zeros_and_a_flow_zeros_at_the_size_of_the_node_input(registry):
    result = run_graph(parse_graph(GRAPH), registry)
    assert result.records["m"].status == "bypassed"
    assert result.outputs["mask"].shape == (3, 4) and not result.outputs["mask"].any()
    assert result.outputs["mask"].dtype == np.float32
    assert result.outputs["flow"].shape == (3, 4, 2) and not result.outputs["flow"].any()
    assert result.outputs["gray"] is None  # Gray has no bypass value: the optional reader gets none
    np.testing.assert_array_equal(result.outputs["image"], np.full((3, 4, 3), 0.5, np.float32))


def test_a_bypass_that_leaves_a_required_input_empty_is_refused_with_its_line(registry):
    text = GRAPH.replace("outputs:", "  box: {type: t.use_box, in: {box: m.box}}\noutputs:")
    problems = validate(parse_graph(text, "g.yaml"), registry)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.node == "m" and problem.line == 6  # the line of 'bypass: true'
    assert "no input to give its output 'box' (Rect)" in problem.message
    assert "node 'box' requires it (input 'box')" in problem.message
    with pytest.raises(GraphError):
        run_graph(parse_graph(text), registry)


def test_a_declared_pass_through_is_used_and_refused_when_its_input_is_empty(registry):
    text = """\
inputs: {given: {type: Scalar, default: auto}}
nodes:
  p: {type: t.pick, in: {first: inputs.given, second: inputs.given}, bypass: true}
  b: {type: t.pick, in: {first: p.chosen}}
outputs: {value: b.chosen}
"""
    problems = validate(parse_graph(text), registry)
    assert [p.node for p in problems] == ["p"]
    assert "passes its input 'second' through" in problems[0].message
    bound = apply_settings(parse_graph(text), ["given=5"], registry)
    assert run_graph(bound, registry).outputs["value"] == 6.0  # 5 passed, then + 1


def test_a_chain_of_bypasses_names_the_bypass_that_broke_it(registry):
    text = """\
inputs: {given: {type: Scalar, default: auto}}
nodes:
  p: {type: t.pick, in: {first: inputs.given, second: inputs.given}, bypass: true}
  q: {type: t.pick, in: {first: p.chosen, second: p.chosen}, bypass: true}
  b: {type: t.pick, in: {first: q.chosen}}
"""
    problems = validate(parse_graph(text), registry)
    assert len(problems) == 1 and problems[0].node == "q"
    assert "'p' passes its input 'second' through" in problems[0].message


def test_set_node_bypass_on_the_command_line(registry):
    graph = apply_settings(parse_graph(GRAPH.replace("    bypass: true\n", "")), ["m.bypass=true"],
                           registry)
    assert graph.nodes["m"].bypass
    assert not apply_settings(graph, ["m.bypass=off"], registry).nodes["m"].bypass
    with pytest.raises(GraphError, match="expected true or false"):
        apply_settings(graph, ["m.bypass=maybe"], registry)


def test_a_bypassed_subgraph_node_passes_its_inputs_through(tmp_path, registry):
    (tmp_path / "inner.yaml").write_text(
        "inputs: {image: {type: Image}}\nnodes:\n  m: {type: t.masks, in: {image: inputs.image}}\n"
        "outputs: {mask: m.mask, image: inputs.image}\n")
    outer = tmp_path / "outer.yaml"
    outer.write_text("nodes:\n  img: {type: t.image}\n"
                     "  sub: {type: inner.yaml, in: {image: img.image}, bypass: true}\n"
                     "outputs: {mask: sub.mask, image: sub.image}\n")
    result = run_graph(load_graph(outer), registry)
    assert result.records["sub"].status == "bypassed" and "sub/m" not in result.records
    assert not result.outputs["mask"].any() and result.outputs["image"].shape == (3, 4, 3)


def _bypass_cases():
    for path in SHIPPED:
        for name in load_graph(path).nodes:
            yield pytest.param(path, name, id=f"{path.stem}-{name}")


_CACHE = Cache()  # shared: each run re-computes only what its bypass changes


@pytest.mark.parametrize(("pipeline", "node_name"), list(_bypass_cases()))
def test_every_node_of_every_shipped_pipeline_bypassed_runs_or_is_refused(
        pipeline, node_name, tmp_path):
    registry = default_registry()
    graph = apply_settings(load_graph(pipeline),
                           [f"{node_name}.bypass=true", f"out={tmp_path / 'out.png'}"], registry)
    problems = validate(graph, registry)
    if problems:
        assert all("bypass cannot be honoured" in p.message and p.node for p in problems), problems
        return
    result = run_graph(graph, registry, cache=_CACHE)  # must not raise
    assert result.records[node_name].status == "bypassed"
    assert result.outputs["image"] is not None
