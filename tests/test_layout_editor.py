"""The editor's automatic layout and zoom (nodegraph.editing, no display): layered columns,
few crossing links, positions saved for every box, the whole graph fitted to the view."""
from pathlib import Path

import pytest

from nodegraph.editing import (
    DEFAULT_SIZE,
    INPUTS_BOX,
    OUTPUTS_BOX,
    Editor,
    EditRefused,
    auto_layout,
    crossings,
    fit_zoom,
    layering,
    layers,
)
from nodegraph.graph import load_graph, parse_graph
from nodegraph.registry import default_registry

REPO = Path(__file__).resolve().parents[1]

# Two chains whose file order interleaves them: drawn in file order their links cross.
TANGLE = """\
inputs: {x: {type: Scalar, default: 1}}
nodes:
  a1: {type: toy.add, in: {a: inputs.x}}
  b1: {type: toy.add, in: {a: inputs.x}}
  b2: {type: toy.add, in: {a: b1.total}}
  a2: {type: toy.add, in: {a: a1.total}}
  a3: {type: toy.add, in: {a: a2.total}}
  b3: {type: toy.add, in: {a: b2.total}}
outputs: {a: a3.total, b: b3.total}
"""


def test_columns_are_topological_ranks_with_the_io_boxes_at_the_ends(toy_registry):
    graph = parse_graph(TANGLE)
    columns = layers(graph)
    assert columns[0] == [INPUTS_BOX] and columns[-1] == [OUTPUTS_BOX]
    assert [sorted(c) for c in columns[1:-1]] == [["a1", "b1"], ["a2", "b2"], ["a3", "b3"]]
    file_order, ordered, links = layering(graph)
    assert crossings(file_order, links) > 0 and crossings(ordered, links) == 0


def test_crossings_counts_pairs_of_links_that_cross():
    columns = [["p", "q"], ["r", "s"]]
    assert crossings(columns, [("p", "r"), ("q", "s")]) == 0
    assert crossings(columns, [("p", "s"), ("q", "r")]) == 1


def test_the_hzsr_layout_has_few_crossings_and_every_box_fits_the_view():
    graph = load_graph(REPO / "pipelines" / "hzsr.yaml")
    file_order, ordered, links = layering(graph)
    assert crossings(ordered, links) < crossings(file_order, links)
    view = (1080.0, 900.0)  # the canvas of a 1600x1000 screen
    layout = auto_layout(graph, view=view)
    assert set(layout) == {INPUTS_BOX, OUTPUTS_BOX, *graph.nodes}
    zoom = fit_zoom(layout, {}, view, (0.4, 0.5, 0.6, 0.8, 1.0))
    assert zoom >= 0.5  # bands keep it readable: in one band it would be below 0.4
    assert fit_zoom(auto_layout(graph), {}, view, (0.3, 0.35, 0.4, 1.0)) < 0.4
    left = min(x for x, _ in layout.values())
    top = min(y for _, y in layout.values())
    for x, y in layout.values():
        assert (x - left + DEFAULT_SIZE[0]) * zoom <= view[0]
        assert (y - top + DEFAULT_SIZE[1]) * zoom <= view[1]


def test_fit_zoom_picks_the_largest_level_that_fits():
    layout = {"a": (0.0, 0.0), "b": (1000.0, 0.0)}
    sizes = {"a": (100.0, 100.0), "b": (100.0, 100.0)}
    assert fit_zoom(layout, sizes, (2000.0, 1000.0), (0.5, 1.0)) == 1.0
    assert fit_zoom(layout, sizes, (850.0, 1000.0), (0.5, 0.7, 1.0)) == 0.7  # 810 / 1100
    assert fit_zoom(layout, sizes, (100.0, 100.0), (0.5, 1.0)) == 0.5  # the smallest at worst


def test_every_box_position_is_saved_including_the_graph_inputs_and_outputs(toy_registry, tmp_path):
    editor = Editor(toy_registry, parse_graph(TANGLE))
    editor.move(INPUTS_BOX, 5, 6)
    editor.move(OUTPUTS_BOX, 900, 10)
    editor.move("a1", 100, 50)
    editor.save_as(tmp_path / "g.yaml")
    loaded = Editor(toy_registry)
    loaded.open(tmp_path / "g.yaml")
    layout = loaded.layout()
    assert layout[INPUTS_BOX] == (5.0, 6.0) and layout[OUTPUTS_BOX] == (900.0, 10.0)
    assert layout["a1"] == (100.0, 50.0)
    loaded.undo()  # nothing to undo after opening
    with pytest.raises(EditRefused, match="no node named 'nope'"):
        loaded.move("nope", 1, 1)


def test_graph_outputs_are_made_from_a_port_with_fresh_names(toy_registry):
    editor = Editor(toy_registry, parse_graph(TANGLE))
    assert editor.add_output("a2", "total") == "total"
    assert editor.add_output("b2", "total") == "total_2"
    assert str(editor.graph.outputs["total_2"]) == "b2.total"
    assert OUTPUTS_BOX in editor.boxes()
    editor.undo()
    assert "total_2" not in editor.graph.outputs
    with pytest.raises(EditRefused):
        editor.add_output("a2", "nope")


def test_a_graph_without_outputs_still_has_an_outputs_box_to_link_into(toy_registry):
    editor = Editor(toy_registry, parse_graph("nodes:\n  n: {type: toy.number}\n"))
    assert editor.boxes() == ["n", OUTPUTS_BOX]
    layout = editor.layout()
    assert layout[OUTPUTS_BOX][0] > layout["n"][0]


def test_the_editor_shows_a_bypass_that_cannot_be_honoured_before_a_run():
    editor = Editor(default_registry())
    editor.open(REPO / "pipelines" / "hzsr.yaml")
    assert editor.problems == []
    editor.set_bypass("occlusion", True)  # the case: now zeros, so it can run
    assert editor.problems == []
    editor.set_bypass("read_tele", True)
    assert any("bypass cannot be honoured" in text for text in editor.node_problems("read_tele"))
    assert not editor.run() and editor.run_message.startswith("cannot run")


def test_node_names_cannot_take_the_names_of_the_editor_boxes(toy_registry):
    editor = Editor(toy_registry, parse_graph(TANGLE))
    with pytest.raises(EditRefused, match="no leading '@'"):
        editor.add_node("toy.number", name=OUTPUTS_BOX)
    graph = parse_graph("nodes:\n  '@inputs': {type: toy.number}\n")
    assert "no leading '@'" in graph.load_problems[0].message
