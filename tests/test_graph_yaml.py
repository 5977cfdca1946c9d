from nodegraph.graph import Graph, Ref, dump_graph, load_graph, parse_graph, save_graph

TOY = """\
schema_version: 1
description: adds two numbers
inputs:
  extra: {type: Scalar, default: 2.5, doc: added last}
  result: {type: OutPath, default: result.txt}
nodes:
  one:
    type: toy.number
    params:
      value: 1.0
  two:
    type: toy.number
    params: {value: 2.0}
  sum:
    type: toy.add
    in:
      a: one.value
      b: two.value
  total:
    type: toy.add
    in: {a: sum.total, b: inputs.extra}
    bypass: false
outputs:
  total: total.total
ui:
  positions:
    one: [10, 20]
    sum: [200.5, 40]
"""


def test_load_keeps_structure_and_lines(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(TOY)
    graph = load_graph(path)
    assert not graph.load_problems
    assert list(graph.nodes) == ["one", "two", "sum", "total"]
    assert graph.nodes["sum"].links == {"a": Ref("one", "value"), "b": Ref("two", "value")}
    assert graph.nodes["two"].params == {"value": 2.0}
    assert graph.inputs["extra"].default == 2.5 and graph.inputs["extra"].doc == "added last"
    assert graph.outputs == {"total": Ref("total", "total")}
    assert graph.ui["positions"]["sum"] == [200.5, 40]
    assert graph.line("nodes", "sum") == 14
    assert graph.line("nodes", "sum", "in", "b") == 18
    assert graph.line("nodes", "two", "params", "value") == 13  # flow-style mappings too
    assert graph.line("inputs", "result") == 5


def test_round_trip_gives_an_identical_graph(tmp_path):
    graph = parse_graph(TOY, tmp_path / "g.yaml")
    text = dump_graph(graph)
    again = parse_graph(text, tmp_path / "g.yaml")
    assert again == graph
    assert dump_graph(again) == text  # stable: saving twice writes the same bytes
    assert "  one: [10, 20]" in text  # positions stay compact


def test_save_is_atomic_and_round_trips(tmp_path):
    graph = parse_graph(TOY, tmp_path / "g.yaml")
    graph.nodes["two"].params["value"] = 7.0
    graph.nodes["total"].bypass = True
    target = tmp_path / "saved.yaml"
    save_graph(graph, target)
    loaded = load_graph(target)
    assert loaded == graph and loaded.nodes["total"].bypass
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_structural_problems_carry_lines():
    graph = parse_graph("schema_version: 2\nnodes:\n  a:\n    typo: x\nextra: 1\n", "f.yaml")
    messages = [(p.line, p.message) for p in graph.load_problems]
    assert any(line == 1 and "schema_version" in m for line, m in messages)
    assert any(line == 4 and "unknown key 'typo'" in m for line, m in messages)
    assert any(line == 3 and "no 'type'" in m for line, m in messages)
    assert any(line == 5 and "unknown key 'extra'" in m for line, m in messages)


def test_invalid_yaml_is_reported_with_its_line():
    graph = parse_graph("nodes:\n  a:\n    type: [unclosed\n  b: 1\n", "bad.yaml")
    assert len(graph.load_problems) == 1
    problem = graph.load_problems[0]
    assert "not valid YAML" in problem.message and problem.file == "bad.yaml" and problem.line


def test_empty_graph_equals_default():
    assert parse_graph("nodes: {}\n") == Graph()
