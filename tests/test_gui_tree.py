"""The editor's DearPyGui item tree, built without a viewport (no display needed)."""
from pathlib import Path

import pytest

dpg = pytest.importorskip("dearpygui.dearpygui")

from nodegraph.editing import Editor  # noqa: E402
from nodegraph.graph import Ref, parse_graph  # noqa: E402
from nodegraph.gui.view import NEUTRAL_COLOUR, EditorView  # noqa: E402
from nodegraph.registry import default_registry  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "nodes" / "hzsr" / "sample"

# Generic image nodes, wired like the head and tail of pipelines/hzsr.yaml.
IMAGE_GRAPH = """\
inputs:
  photo: {type: Path, default: photo.png}
  out: {type: OutPath, default: out.png}
nodes:
  read: {type: image.read, in: {path: inputs.photo}}
  blur: {type: image.blur, in: {image: read.image}, params: {sigma: 2.5}}
  write: {type: image.write, in: {image: blur.image, path: inputs.out}}
outputs:
  image: blur.image
"""


@pytest.fixture
def context():
    dpg.create_context()
    yield
    dpg.destroy_context()


def build(editor):
    view = EditorView(editor)
    view.build()
    return view


def test_nodes_ports_links_and_param_widgets_exist(context):
    photo = str(SAMPLE / "wide.jpg")
    editor = Editor(default_registry(), parse_graph(IMAGE_GRAPH.replace("photo.png", photo)))
    view = build(editor)
    for name in ("read", "blur", "write", "@inputs", "@outputs"):
        assert dpg.does_item_exist(f"node:{name}"), name
    assert dpg.get_item_label("node:blur") == "blur  (image.blur)"
    for tag in ("out:inputs:photo", "in:read:path", "out:read:image", "in:blur:image",
                "out:blur:image", "in:write:image", "in:write:path", "in:@outputs:image"):
        assert view.ports[tag] == (tag.split(":")[0], *tag.split(":")[1:]), tag
    links = {"link:read:path": ("out:inputs:photo", "in:read:path"),
             "link:blur:image": ("out:read:image", "in:blur:image"),
             "link:write:path": ("out:inputs:out", "in:write:path"),
             "link:@outputs:image": ("out:blur:image", "in:@outputs:image")}
    for tag, (start, end) in links.items():
        config = dpg.get_item_configuration(tag)
        assert (dpg.get_item_alias(config["attr_1"]), dpg.get_item_alias(config["attr_2"])) == (start, end)
    assert len(dpg.get_item_children("node_editor", 0)) == 5  # link items are slot 0
    # The sigma widget is a slider over the parameter's range, showing the file's value.
    sigma = default_registry().get("image.blur").params["sigma"]
    assert dpg.get_item_type("param:blur:sigma") == "mvAppItemType::mvSliderFloat"
    assert dpg.get_value("param:blur:sigma") == pytest.approx(2.5)
    config = dpg.get_item_configuration("param:blur:sigma")
    assert (config["min_value"], config["max_value"]) == pytest.approx(sigma.range)
    assert dpg.get_value("input:photo") == photo
    assert dpg.get_value("problems_text") == "none: the graph can run"
    assert dpg.get_item_configuration("problems_text")["color"][:3] == pytest.approx(
        [c / 255 for c in NEUTRAL_COLOUR])  # not the colour of errors
    # A path cut off by its narrow field is shown whole when the mouse rests on it.
    assert dpg.get_value("tip:input:photo") == photo


def test_widget_kinds_follow_parameter_metadata(context, toy_registry):
    editor = Editor(toy_registry, parse_graph(
        "nodes:\n  n: {type: toy.number}\n  s: {type: toy.scale, in: {x: n.value}, "
        "params: {mode: div}}\n"))
    build(editor)
    assert dpg.get_item_type("param:s:factor") == "mvAppItemType::mvSliderFloat"
    assert dpg.get_item_type("param:s:mode") == "mvAppItemType::mvCombo"
    assert dpg.get_item_configuration("param:s:mode")["items"] == ["mul", "div"]
    assert dpg.get_value("param:s:mode") == "div"
    assert dpg.get_item_type("bypass:s") == "mvAppItemType::mvCheckbox"
    # Ports are drawn in their type's colour.
    assert dpg.get_item_type("in:s:x") == "mvAppItemType::mvNodeAttribute"


def test_palette_lists_the_registry_and_filters(context, toy_registry):
    view = build(Editor(toy_registry))
    assert all(dpg.does_item_exist(f"palette:{spec.id}") for spec in toy_registry)
    dpg.set_value("palette_search", "scale")
    view._fill_palette()
    shown = [dpg.get_item_label(i) for i in dpg.get_item_children("palette_list", 1)
             if dpg.get_item_type(i) == "mvAppItemType::mvSelectable"]
    assert shown == ["toy.scale"]


def test_edits_through_the_view_reach_the_editor_and_redraw(context, toy_registry):
    editor = Editor(toy_registry, parse_graph("nodes:\n  n: {type: toy.number}\n"
                                              "  t: {type: toy.describe}\n"))
    view = build(editor)
    assert dpg.get_value("problems:t") == "value: required input 'value' (Scalar) is not linked"
    view._on_link("node_editor", (dpg.get_alias_id("out:n:value"), dpg.get_alias_id("in:t:value")))
    view.frame()
    assert editor.graph.nodes["t"].links == {"value": Ref("n", "value")}
    assert dpg.does_item_exist("link:t:value") and dpg.get_value("problems:t") == ""
    view._on_add("palette:toy.add", None, "toy.add")
    view.frame()
    assert dpg.does_item_exist("node:add")
    view._on_link("node_editor", (dpg.get_alias_id("in:add:a"), dpg.get_alias_id("out:t:text")))
    assert view.message == "refused: type mismatch: t.text is Text, add.a needs Scalar"
    view._on_param("param:n:value", 500.0, ("n", toy_registry.get("toy.number").params["value"]))
    assert view.message.startswith("refused: n.value: 500.0 is outside the range")
    view._undo_redo(True)
    view.frame()
    assert not dpg.does_item_exist("node:add")


def test_run_status_and_preview_choices_are_shown_on_the_nodes(context, toy_registry):
    editor = Editor(toy_registry, parse_graph("nodes:\n  n: {type: toy.number}\n"
                                              "  s: {type: toy.scale, in: {x: n.value}}\n"))
    view = build(editor)
    view._on_run()
    editor._thread.join(10)
    view.frame()
    assert dpg.get_value("status:s").startswith("ran  ")
    editor.set_param("s", "factor", 3.0)
    view._on_run()
    editor._thread.join(10)
    view.frame()
    assert dpg.get_value("status:n").startswith("cached")
    assert dpg.get_value("status:s").startswith("ran")
