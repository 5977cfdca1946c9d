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


# ---------------------------------------------------------------- numbers and values at the door (issue 18)

BOUNDED = """\
inputs:
  zoom: {type: Scalar, default: auto, range: [1, 100]}
  roi: {type: Rect, default: auto, range: [0, 1000]}
  size: {type: Path}
nodes:
  n: {type: toy.number}
  s: {type: toy.add, in: {a: n.value, b: inputs.zoom}}
  f: {type: toy.file_size, in: {path: inputs.size}}
"""


def _set_problems(text, settings, registry):
    try:
        apply_settings(parse_graph(text), settings, registry)
    except GraphError as error:
        return [p.message for p in error.problems]
    return []


@pytest.mark.parametrize("setting, expected", [
    ("zoom=nan", "--set zoom=nan: expected a finite number in decimal notation, got 'nan' (accepted range [1, 100])"),
    ("zoom=inf", "finite number"), ("zoom=-inf", "finite number"), ("zoom=1e400", "not a finite number"),
    ("zoom=1_0", "got '1_0'"), ("zoom=0x10", "got '0x10'"), ("zoom= ", "got ''"),
    ("zoom=1e308", "must be a finite number >= 1 and <= 100, got 1e+308"),
    ("zoom=0.5", "must be a finite number >= 1 and <= 100, got 0.5"),
    ("roi=nan,0,10,10", "got 'nan'"),
    ("roi=0,0,2000,10", "must be finite numbers >= 0 and <= 1000, got (0.0, 0.0, 2000.0, 10.0)"),
    ("n.value=nan", "finite number"), ("n.value=1_0", "got '1_0'"),
    ("n.value=101", None),  # parsed; its range is checked by validate()
])
def test_set_numbers_are_strict_and_bounded(setting, expected, toy_registry):
    problems = _set_problems(BOUNDED, [setting, f"size={__file__}"], toy_registry)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("setting", ["zoom=1", "zoom=100", "zoom=2.5e1", "zoom=auto", "roi=0,0,1000,10",
                                     "n.value=+.5"])
def test_plain_numbers_in_range_are_accepted(setting, toy_registry):
    assert _set_problems(BOUNDED, [setting, f"size={__file__}"], toy_registry) == []


def test_yaml_numbers_outside_ranges_or_not_finite_are_problems(toy_registry):
    text = BOUNDED.replace("default: auto, range: [1, 100]", "default: 1.0e+308, range: [1, 100]")
    text += "  t: {type: toy.number, params: {value: .nan}}\n"
    messages = [p.message for p in validate(apply_settings(parse_graph(text), [f"size={__file__}"],
                                                           toy_registry), toy_registry)]
    assert any("bad default: must be a finite number >= 1 and <= 100, got 1e+308" in m for m in messages)
    assert any("expected a finite number, got nan" in m for m in messages)
    bad_range = parse_graph("inputs:\n  p: {type: Path, range: [0, 1]}\nnodes: {}\n")
    assert ["'range' is only for numbers, not Path"] == [p.message for p in validate(bad_range, toy_registry)]


def test_graph_input_without_value_feeding_a_required_input_is_a_problem(toy_registry):
    problems = validate(parse_graph(BOUNDED), toy_registry)
    assert [(p.node, p.port, p.line) for p in problems] == [("f", "path", 8)]
    assert "graph input 'size' has no value" in problems[0].message
    bound = apply_settings(parse_graph(BOUNDED), [f"size={__file__}"], toy_registry)
    assert validate(bound, toy_registry) == []
    # auto means "no value" too; an optional input may go without one
    auto = BOUNDED.replace("size: {type: Path}", "size: {type: Path, default: auto}")
    assert len(validate(parse_graph(auto), toy_registry)) == 1


def test_empty_type_is_refused_at_validation(toy_registry):
    problems = validate(parse_graph("nodes:\n  a: {type: ''}\n  b: {type: toy.number}\n"), toy_registry)
    assert [(p.node, p.line) for p in problems] == [("a", 2)]
