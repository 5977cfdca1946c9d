"""pipelines/tzsr.yaml: the HZSR stages used twice as a subgraph (UW + (W + T)), on the bundled
three-camera sample, scored against its ground truth; and opened in the editor's controller."""
import importlib.util
from pathlib import Path

from nodegraph.editing import Editor
from nodegraph.graph import load_graph
from nodegraph.registry import default_registry

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "tzsr.yaml"


def load_scorer():
    spec = importlib.util.spec_from_file_location("score_tzsr_sample",
                                                  REPO / "tools" / "score_tzsr_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_cameras_beat_bicubic_uw_and_the_two_camera_pipeline_on_the_sample():
    table = load_scorer().score()   # runs tzsr.yaml with no settings, and hzsr.yaml on W+T
    three = table["three cameras (tzsr.yaml)"]
    for baseline in ("bicubic UW", "two cameras (W+T)"):
        assert three["psnr_all"] > table[baseline]["psnr_all"] + 0.5, (baseline, table)
        assert three["psnr_w_footprint"] > table[baseline]["psnr_w_footprint"] + 0.5, (baseline, table)
        assert three["ssim_all"] > table[baseline]["ssim_all"], (baseline, table)


def test_the_editor_opens_tzsr_and_shows_its_two_subgraph_nodes(tmp_path):
    editor = Editor(default_registry())
    editor.open(PIPELINE)
    assert editor.graph_problems() == []
    for stage in ("wide_tele", "ultrawide_wide"):
        spec = editor.spec(stage)
        assert spec.subgraph is not None and spec.id == "hzsr_core.yaml"
        assert {"wide", "tele", "ratio", "zoom"} <= set(spec.inputs) and "image" in spec.outputs
        assert "fusion.tile" in spec.params or any(p.startswith("blend.") for p in spec.params)
        assert editor.node_problems(stage) == []
    saved = load_graph(editor.save_as(tmp_path / "copy.yaml"))
    original = load_graph(PIPELINE)
    for name, inst in original.nodes.items():  # saved elsewhere: subgraph types are rebased
        assert saved.nodes[name].links == inst.links
        if inst.type.endswith(".yaml"):
            assert (tmp_path / saved.nodes[name].type).resolve() == (PIPELINE.parent / inst.type).resolve()
