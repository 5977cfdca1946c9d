import os
import time

import pytest

from nodegraph.errors import GraphError
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


# ---------------------------------------------------------------- hostile files (issue 18)

@pytest.mark.parametrize("text, line, expected", [
    ("nodes:\n  n: {type: toy.number}\nui:\n  a: &a [1, 2]\n  b: *a\n", 5, "aliases"),
    ("nodes:\n  n: !!python/object/apply:os.system ['true']\n", 2, "unsupported tag '!!python"),
    ("nodes:\n  n: !custom x\n", 2, "unsupported tag '!custom'"),
    ("nodes:\n  n:\n    type: toy.number\n    params: {value: !!float abc}\n", 4, "'abc' is not a valid float"),
    ("nodes:\n  <<: {n: {type: toy.number}}\n", 2, "merge keys"),
    ("nodes:\n  ? [a, b]\n  : 1\n", 2, "mapping key must be a plain value"),
    ("nodes:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(100)), 32, "nested more than 32"),
    ("nodes: " + "[" * 900 + "]" * 900 + "\n", 1, "nest"),
    ("nodes:\n  n:\n    type: toy.number\x00\n", 3, "0x0000 is not allowed"),
    ("nodes:\n  n: {type: toy.number}\n  n: {type: toy.add}\n", 3, "duplicate key 'n' (first at line 2)"),
    ("nodes:\n  n:\n    type:\n", 3, "'type' must name a type, got None"),
    ("nodes:\n  n:\n    type: ''\n", 3, "'type' must name a type, got ''"),
    ("inputs:\n  a: {type: ''}\nnodes: {}\n", 2, "'type' must name a type"),
    ("inputs:\n  z: {type: Scalar, range: [1, .nan]}\nnodes: {}\n", 2, "'range' must be [low, high]"),
])
def test_hostile_yaml_is_a_problem_with_its_line(text, line, expected):
    problems = parse_graph(text, "g.yaml").load_problems
    assert problems, text
    assert any(p.line == line and expected in p.message for p in problems), [str(p) for p in problems]


def test_alias_bomb_is_refused_at_once():
    lines = ["schema_version: 1", "ui:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines += ["nodes:", "  blur:", "    type: image.blur", "    params:", "      sigma: *l9"]
    started = time.perf_counter()
    problems = parse_graph("\n".join(lines), "bomb.yaml").load_problems
    assert time.perf_counter() - started < 1.0
    assert [(p.line, "aliases" in p.message) for p in problems] == [(4, True)]


def test_messages_quote_huge_values_briefly():
    text = ("nodes:\n  n:\n    type: toy.number\n    bypass: '" + "v" * 1_000_000 + "'\n"
            "  " + "k" * 1000 + ": {type: toy.number}\n")
    problems = parse_graph(text, "g.yaml").load_problems
    assert problems and all(len(str(p)) < 600 for p in problems), [len(str(p)) for p in problems]


def test_graph_files_must_be_regular_and_small(tmp_path):
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "big.yaml").write_text("# padding\n" * 30_000)
    (tmp_path / "latin1.yaml").write_bytes(b"nodes:\n  n: {type: toy.number, doc: caf\xe9}\n")
    for name, expected in (("fifo.yaml", "not a regular file"), ("zero.yaml", "not a regular file"),
                           ("big.yaml", "graph files are limited to"), ("latin1.yaml", "not UTF-8")):
        with pytest.raises(GraphError, match=expected) as caught:
            load_graph(tmp_path / name)
        assert caught.value.problems[0].file == str(tmp_path / name)
    with pytest.raises(GraphError) as caught:
        load_graph(tmp_path / "latin1.yaml")
    assert caught.value.problems[0].line == 2


def test_input_range_round_trips(tmp_path):
    graph = parse_graph("inputs:\n  z: {type: Scalar, default: 2, range: [1, 100]}\nnodes: {}\n")
    assert graph.inputs["z"].range == (1.0, 100.0) and not graph.load_problems
    assert parse_graph(dump_graph(graph)) == graph


def test_saved_files_never_hold_aliases(tmp_path):
    shared = [1, 2]
    graph = parse_graph("nodes: {}\n")
    graph.ui = {"positions": {"a": shared, "b": shared}}
    text = dump_graph(graph)
    assert "&" not in text and "*" not in text
    assert parse_graph(text) == graph


@pytest.mark.parametrize("written, value", [("1e3", 1000.0), ("-2E-4", -2e-4), ("+5e+0", 5.0),
                                            ("1.5e2", 150.0), (".5e1", 5.0), ("'1e3'", "1e3"), ("1_0e3", "1_0e3")])
def test_numbers_with_an_exponent_and_no_dot_are_numbers(tmp_path, written, value):
    # YAML 1.1 (PyYAML) reads 1e3 as text; a graph file reads it as YAML 1.2 does. Quoted, it
    # stays text; what is no number in either stays text (and a float parameter refuses it).
    graph = parse_graph(TOY.replace("value: 1.0", f"value: {written}"), tmp_path / "g.yaml")
    assert not graph.load_problems
    assert graph.nodes["one"].params["value"] == value
    assert type(graph.nodes["one"].params["value"]) is type(value)
