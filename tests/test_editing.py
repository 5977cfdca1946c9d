"""The editing controller behind the GUI: checked, undoable edits, files, background runs.

No GUI module is imported here: the controller must work (and be tested) without a display.
"""
import subprocess
import sys

import numpy as np
import pytest
from test_execute import CHAIN as EXECUTOR_CHAIN

from nodegraph.editing import Editor, EditRefused, auto_layout
from nodegraph.graph import Ref, load_graph, parse_graph

# The executor tests' chain of toy nodes, with two saved positions.
CHAIN = EXECUTOR_CHAIN + """\
ui:
  positions:
    a: [10, 20]
    sum: [300, 40]
"""


@pytest.fixture
def editor(toy_registry, write_yaml):
    ed = Editor(toy_registry)
    ed.open(write_yaml(CHAIN))
    return ed


def test_no_gui_module_is_imported_by_the_controller():
    # A fresh interpreter: other tests in this session may have imported the GUI themselves.
    code = ("import sys, nodegraph.editing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dearpygui', 'gui')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_open_then_save_without_edits_gives_an_identical_graph(editor, tmp_path):
    original = editor.graph.copy()
    assert editor.problems == [] and not editor.dirty
    out = editor.save_as(tmp_path / "copy.yaml")
    again = load_graph(out)
    assert again == original
    assert again.ui["positions"] == {"a": [10, 20], "sum": [300, 40]}
    assert editor.path == out and not editor.dirty


def test_save_as_into_another_folder_keeps_relative_paths_pointing_at_the_same_files(
        toy_registry, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "data.bin").write_bytes(b"12")
    source = tmp_path / "one" / "g.yaml"
    source.write_text("inputs:\n  f: {type: Path, default: data.bin}\nnodes:\n"
                      "  size: {type: toy.file_size, in: {path: inputs.f}}\n")
    ed = Editor(toy_registry)
    ed.open(source)
    ed.save_as(tmp_path / "two" / "g.yaml")
    assert load_graph(tmp_path / "two" / "g.yaml").inputs["f"].default == "../one/data.bin"
    ed.run()
    ed.wait(10)
    assert ed.output_value("size", "size") == 2.0


def test_add_node_and_its_undo_redo(editor):
    before = editor.graph.copy()
    name = editor.add_node("toy.scale", pos=(50, 60))
    assert name == "scale" and editor.graph.nodes["scale"].type == "toy.scale"
    assert editor.graph.ui["positions"]["scale"] == [50.0, 60.0]
    assert editor.node_problems("scale") == ["x: required input 'x' (Scalar) is not linked"]
    assert editor.add_node("toy.scale") == "scale_2"
    after = editor.graph.copy()
    assert editor.undo() and editor.undo()
    assert editor.graph == before and editor.node_problems("scale") == []
    assert editor.redo() and editor.redo() and not editor.redo()
    assert editor.graph == after


def test_add_node_refuses_unknown_types_and_taken_names(editor):
    with pytest.raises(EditRefused, match="unknown node type 'toy.nope'"):
        editor.add_node("toy.nope")
    with pytest.raises(EditRefused, match="already a node named 'a'"):
        editor.add_node("toy.number", name="a")
    with pytest.raises(EditRefused, match="invalid node name"):
        editor.add_node("toy.number", name="x.y")
    assert not editor.can_undo


def test_delete_node_removes_its_links_outputs_and_position_and_undo_restores_them(editor):
    before = editor.graph.copy()
    editor.delete_node("sum")
    assert "sum" not in editor.graph.nodes
    assert "x" not in editor.graph.nodes["final"].links
    assert "sum" not in editor.graph.ui["positions"]
    assert editor.node_problems("final") == ["x: required input 'x' (Scalar) is not linked"]
    editor.undo()
    assert editor.graph == before and editor.problems == []


def test_connect_disconnect_and_undo(editor):
    editor.connect("a", "value", "sum", "b")  # replaces b2.y
    assert editor.graph.nodes["sum"].links["b"] == Ref("a", "value")
    editor.disconnect("sum", "b")
    assert "b" not in editor.graph.nodes["sum"].links
    assert editor.problems == []  # b is optional
    editor.undo()
    assert editor.graph.nodes["sum"].links["b"] == Ref("a", "value")
    editor.undo()
    assert editor.graph.nodes["sum"].links["b"] == Ref("b2", "y")
    with pytest.raises(EditRefused, match="not linked"):
        editor.disconnect("a", "x")


def test_incompatible_link_is_refused_with_the_reason(editor):
    editor.add_node("toy.describe", name="text")
    editor.connect("a", "value", "text", "value")
    editor.add_node("toy.add", name="plus")
    before = editor.graph.copy()
    with pytest.raises(EditRefused) as refused:
        editor.connect("text", "text", "plus", "a")
    assert str(refused.value) == "type mismatch: text.text is Text, plus.a needs Scalar"
    assert editor.graph == before


def test_unknown_ports_and_nodes_are_refused(editor):
    with pytest.raises(EditRefused, match=r"a \(toy.number\) has no output 'nope'; its outputs are \['value'\]"):
        editor.connect("a", "nope", "sum", "a")
    with pytest.raises(EditRefused, match=r"has no input 'c'; its inputs are \['a', 'b'\]"):
        editor.connect("a", "value", "sum", "c")
    with pytest.raises(EditRefused, match="no node named 'ghost'"):
        editor.connect("ghost", "value", "sum", "a")
    with pytest.raises(EditRefused, match="no graph input 'photo'"):
        editor.connect("inputs", "photo", "sum", "a")


def test_link_closing_a_cycle_is_refused(editor):
    with pytest.raises(EditRefused, match="cycle: sum -> final -> sum"):
        editor.connect("final", "y", "sum", "b")
    with pytest.raises(EditRefused, match="cycle: a2 -> a2"):
        editor.connect("a2", "y", "a2", "x")
    assert editor.problems == []


def test_set_param_checked_against_its_spec_and_undoable(editor):
    editor.set_param("final", "factor", 3)  # an int from a widget becomes the float it must be
    assert editor.graph.nodes["final"].params["factor"] == 3.0
    assert isinstance(editor.graph.nodes["final"].params["factor"], float)
    with pytest.raises(EditRefused, match=r"final.factor: 20.0 is outside the range \[0.0, 10.0\] x"):
        editor.set_param("final", "factor", 20.0)
    with pytest.raises(EditRefused, match=r"'pow' is not one of \['mul', 'div'\]"):
        editor.set_param("final", "mode", "pow")
    with pytest.raises(EditRefused, match="expected float, got str"):
        editor.set_param("final", "factor", "big")
    with pytest.raises(EditRefused, match="has no parameter 'gain'"):
        editor.set_param("final", "gain", 1.0)
    editor.set_param("final", "mode", "div")
    editor.undo()
    assert "mode" not in editor.graph.nodes["final"].params
    editor.undo()
    assert editor.graph.nodes["final"].params["factor"] == 1.0
    editor.reset_param("final", "factor")
    assert "factor" not in editor.graph.nodes["final"].params
    editor.undo()
    assert editor.graph.nodes["final"].params["factor"] == 1.0


def test_bypass_move_and_outputs_are_undoable(editor):
    editor.set_bypass("a2", True)
    assert editor.graph.nodes["a2"].bypass
    editor.move("a2", 120, 80)
    assert editor.graph.ui["positions"]["a2"] == [120.0, 80.0]
    editor.move("a2", 120, 80)  # no change, no undo step
    editor.set_output("partial", "sum", "total")
    assert editor.graph.outputs["partial"] == Ref("sum", "total")
    editor.remove_output("result")
    assert list(editor.graph.outputs) == ["partial"]
    for _ in range(4):
        assert editor.undo()
    assert not editor.undo()
    assert editor.graph == parse_graph(CHAIN)


def test_graph_input_defaults_are_parsed_by_type(toy_registry, write_yaml):
    ed = Editor(toy_registry)
    ed.open(write_yaml("inputs:\n  k: {type: Scalar, default: 1.0}\n  roi: {type: Rect}\n"
                       "nodes:\n  s: {type: toy.scale, in: {x: inputs.k}}\n"))
    ed.set_input("k", "2.5")
    ed.set_input("roi", "1, 2, 3, 4")
    assert ed.graph.inputs["k"].default == 2.5
    assert ed.graph.inputs["roi"].default == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(EditRefused, match="inputs.roi: expected 4 comma-separated numbers"):
        ed.set_input("roi", "1,2")
    ed.set_input("k", "auto")
    assert ed.graph.inputs["k"].default == "auto"


def test_problems_are_listed_per_node_after_every_edit(editor):
    editor.graph.nodes["a"].params["value"] = 1000.0  # behind the editor's back, as a file could
    editor.set_bypass("b", True)  # any edit validates again
    assert editor.node_problems("a") == [
        "value: bad value: 1000.0 is outside the range [-100.0, 100.0]"]
    assert editor.node_problems("b") == []


def test_rerun_after_one_param_change_reruns_only_downstream_nodes(editor):
    assert editor.run()
    editor.wait(10)
    assert {s.status for s in editor.status.values()} == {"ran"}
    assert editor.output_value("final", "y") == 22.0
    assert editor.output_value("a2", "y") == 2.0  # every port is kept for previews
    assert editor.run_message.startswith("done") and "6 ran, 0 cached" in editor.run_message

    editor.set_param("b2", "factor", 3.0)
    assert editor.run()
    editor.wait(10)
    assert {n: s.status for n, s in editor.status.items()} == {
        "a": "cached", "b": "cached", "a2": "cached", "b2": "ran", "sum": "ran", "final": "ran"}
    assert editor.output_value("final", "y") == 32.0
    assert all(s.seconds >= 0 for s in editor.status.values())


def test_run_reports_bypassed_and_failed_nodes(editor):
    editor.set_bypass("a2", True)
    editor.run()
    editor.wait(10)
    assert editor.status["a2"].status == "bypassed"
    assert editor.output_value("final", "y") == 21.0  # a2 passes a's value through
    editor.add_node("toy.broken", name="bad")
    editor.connect("a", "value", "bad", "x")
    editor.run()
    editor.wait(10)
    assert editor.status["bad"].status == "failed"
    assert "RuntimeError: boom" in editor.status["bad"].message
    assert editor.run_message.startswith("failed: node 'bad'")


def test_a_graph_with_problems_does_not_start(editor):
    editor.add_node("toy.scale")
    assert not editor.run()
    assert editor.run_message == "cannot run: 1 problem(s) in the graph"
    assert not editor.running


def test_events_arrive_only_through_poll(editor):
    editor.run()
    editor._thread.join(10)
    assert all(s.status == "pending" for s in editor.status.values())  # nothing applied yet
    reports = editor.poll()
    assert [kind for kind, _ in reports][-1] == "done"
    assert editor.status["final"].status == "ran"


def test_preview_renders_output_ports_by_type(toy_registry):
    import toy_nodes  # noqa: F401  (the registry fixture already loaded it)

    from nodegraph.execute import (
        RunResult,  # the preview only needs values, not a real run
    )
    ed = Editor(toy_registry, parse_graph("nodes:\n  a: {type: toy.number}\n"
                                          "  img: {type: toy.bad_output, in: {x: a.value}}\n"))
    ed._finish(RunResult({}, {}, {("img", "image"): np.full((400, 800, 3), 0.5, np.float32),
                                  ("a", "value"): 1.0}))
    picture = ed.preview("img", "image", max_side=200)
    assert picture.shape == (100, 200, 3) and picture.dtype == np.uint8
    assert int(picture[0, 0, 0]) == 128
    assert ed.preview("a", "value") is None  # a Scalar has no picture
    assert ed.preview("img", "nope") is None


def test_palette_search_and_auto_layout(editor):
    assert [s.id for s in editor.palette("scale")] == ["toy.scale"]
    assert [s.id for s in editor.palette("FILE size")] == ["toy.file_size"]
    assert len(editor.palette("")) == len(list(editor.registry))
    layout = editor.layout()
    assert layout["a"] == (10.0, 20.0) and layout["sum"] == (300.0, 40.0)
    auto = auto_layout(editor.graph)
    assert "a" not in auto and auto["final"][0] > auto["a2"][0] > auto["b"][0]


def test_quick_changes_of_one_parameter_are_one_undo_step(editor, monkeypatch):
    for value in (2.0, 3.0, 4.0):  # a slider being dragged
        editor.set_param("final", "factor", value)
    editor.undo()
    assert editor.graph.nodes["final"].params["factor"] == 1.0 and not editor.can_undo
    monkeypatch.setattr("nodegraph.editing.MERGE_SECONDS", -1.0)  # every change is a step
    editor.set_param("final", "factor", 2.0)
    editor.set_param("final", "factor", 3.0)
    editor.undo()
    assert editor.graph.nodes["final"].params["factor"] == 2.0
