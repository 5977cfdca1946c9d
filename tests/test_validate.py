import pytest

from nodegraph.errors import GraphError
from nodegraph.graph import load_graph, parse_graph
from nodegraph.validate import apply_settings, validate

MANY_MISTAKES = """\
schema_version: 1
inputs:
  x: {type: Scalar, default: 1.0}
  y: {type: Colour}
nodes:
  a:
    type: toy.number
    params:
      value: 500.0
      speed: 3
  b:
    type: toy.nosuch
  c:
    type: toy.scale
    in:
      x: a.value
      z: a.value
    params:
      mode: sideways
      factor: "2"
  d:
    type: toy.describe
    in:
      value: a.value
  e:
    type: toy.scale
    in:
      x: d.text
  f:
    type: toy.add
  g:
    type: toy.add
    in:
      a: h.total
      b: inputs.nope
  h:
    type: toy.add
    in:
      a: g.total
      b: a.missing
outputs:
  out: ghost.value
"""


def problems_by_line(graph, registry):
    return {(p.line, p.node, p.port): p.message for p in validate(graph, registry)}


def test_every_problem_is_reported_with_file_line_node_and_port(write_yaml, toy_registry):
    path = write_yaml(MANY_MISTAKES)
    found = problems_by_line(load_graph(path), toy_registry)
    expected = {
        (4, None, "y"): "unknown type 'Colour'",
        (9, "a", "value"): "outside the range",
        (10, "a", "speed"): "unknown parameter",
        (12, "b", None): "unknown node type 'toy.nosuch'",
        (17, "c", "z"): "unknown input port",
        (19, "c", "mode"): "not one of",
        (20, "c", "factor"): "expected float",
        (28, "e", "x"): "type mismatch: d.text is Text, the input is Scalar",
        (29, "f", "a"): "required input 'a' (Scalar) is not linked",
        (35, "g", "b"): "no graph input 'nope'",
        (40, "h", "b"): "has no output 'missing'",
        (42, None, "out"): "no node named 'ghost'",
    }
    for key, fragment in expected.items():
        assert key in found, f"missing problem at {key}; found {sorted(found, key=str)}"
        assert fragment in found[key], (key, found[key])
    cycles = [m for (line, node, port), m in found.items() if m.startswith("cycle")]
    assert cycles and "g" in cycles[0] and "h" in cycles[0]
    assert all(p.file == str(path) for p in validate(load_graph(path), toy_registry))


def test_a_valid_graph_has_no_problems(toy_registry):
    graph = parse_graph("nodes:\n  a: {type: toy.number}\n  b: {type: toy.scale, in: {x: a.value}}\n")
    assert validate(graph, toy_registry) == []


def test_mask_may_feed_gray_but_not_the_reverse(toy_registry):
    from nodegraph import Gray, Mask, Out, node
    from nodegraph.node import spec_of

    @node("t.mask")
    def make_mask() -> Out(m=Mask):
        return None

    @node("t.gray")
    def make_gray() -> Out(g=Gray):
        return None

    @node("t.use_gray")
    def use_gray(g: Gray) -> Out(g=Gray):
        return g

    @node("t.use_mask")
    def use_mask(m: Mask) -> Out(m=Mask):
        return m

    for f in (make_mask, make_gray, use_gray, use_mask):
        toy_registry.add(spec_of(f))
    ok = parse_graph("nodes:\n  m: {type: t.mask}\n  u: {type: t.use_gray, in: {g: m.m}}\n")
    bad = parse_graph("nodes:\n  g: {type: t.gray}\n  u: {type: t.use_mask, in: {m: g.g}}\n")
    assert validate(ok, toy_registry) == []
    assert "type mismatch" in validate(bad, toy_registry)[0].message


def test_settings_bind_inputs_and_params_and_reject_unknown_names(toy_registry):
    graph = parse_graph("inputs:\n  k: {type: Scalar, default: 1}\nnodes:\n"
                        "  a: {type: toy.number}\n  s: {type: toy.scale, in: {x: a.value}}\n", "g.yaml")
    bound = apply_settings(graph, ["k=3", "s.factor=4", "s.mode=div"], toy_registry)
    assert bound.inputs["k"].default == 3.0 and bound.nodes["s"].params == {"factor": 4.0, "mode": "div"}
    assert graph.nodes["s"].params == {}  # the original is untouched
    with pytest.raises(GraphError) as error:
        apply_settings(graph, ["nosuch=1", "s.speed=2", "s.factor=abc", "broken"], toy_registry)
    messages = [p.message for p in error.value.problems]
    assert len(messages) == 4
    assert "no graph input or node parameter" in messages[0]
    assert "no parameter 'speed'" in messages[1]
    assert "s.factor" in messages[2]
    assert "NAME=VALUE" in messages[3]
