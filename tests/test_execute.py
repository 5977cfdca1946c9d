import pytest

from nodegraph.errors import InputError, NodeError
from nodegraph.execute import Cache, plan, run_graph, run_plan
from nodegraph.graph import parse_graph
from nodegraph.validate import apply_settings

CHAIN = """\
nodes:
  a: {type: toy.number, params: {value: 1.0}}
  b: {type: toy.number, params: {value: 10.0}}
  a2: {type: toy.scale, in: {x: a.value}}
  b2: {type: toy.scale, in: {x: b.value}}
  sum: {type: toy.add, in: {a: a2.y, b: b2.y}}
  final: {type: toy.scale, in: {x: sum.total}, params: {factor: 1.0}}
outputs:
  result: final.y
"""


def statuses(result):
    return {name: record.status for name, record in result.records.items()}


def test_changing_one_parameter_reruns_only_its_downstream(toy_registry):
    graph = parse_graph(CHAIN)
    cache = Cache()
    first = run_graph(graph, toy_registry, cache=cache)
    assert first.outputs["result"] == 22.0
    assert set(statuses(first).values()) == {"ran"}

    graph.nodes["b2"].params["factor"] = 3.0
    second = run_graph(graph, toy_registry, cache=cache)
    assert second.outputs["result"] == 32.0
    assert statuses(second) == {"a": "cached", "b": "cached", "a2": "cached", "b2": "ran",
                                "sum": "ran", "final": "ran"}

    third = run_graph(graph, toy_registry, cache=cache)
    assert set(statuses(third).values()) == {"cached"}

    graph.nodes["final"].params["factor"] = 0.5
    fourth = run_graph(graph, toy_registry, cache=cache)
    assert [n for n, s in statuses(fourth).items() if s == "ran"] == ["final"]
    assert fourth.outputs["result"] == 16.0


def test_changing_an_input_file_content_invalidates_the_cache(tmp_path, toy_registry):
    data = tmp_path / "data.bin"
    data.write_bytes(b"1234")
    graph = parse_graph(f"inputs:\n  f: {{type: Path, default: {data}}}\nnodes:\n"
                        "  size: {type: toy.file_size, in: {path: inputs.f}}\n"
                        "  twice: {type: toy.scale, in: {x: size.size}}\noutputs: {n: twice.y}\n")
    cache = Cache()
    assert run_graph(graph, toy_registry, cache=cache).outputs["n"] == 8.0
    assert set(statuses(run_graph(graph, toy_registry, cache=cache)).values()) == {"cached"}
    data.write_bytes(b"123456")  # same name, new content
    again = run_graph(graph, toy_registry, cache=cache)
    assert again.outputs["n"] == 12.0 and statuses(again) == {"size": "ran", "twice": "ran"}


def test_node_version_is_part_of_the_key(toy_registry):
    from dataclasses import replace
    graph = parse_graph(CHAIN)
    cache = Cache()
    run_graph(graph, toy_registry, cache=cache)
    toy_registry.specs["toy.scale"] = replace(toy_registry.specs["toy.scale"], version=99)
    result = run_graph(graph, toy_registry, cache=cache)
    assert statuses(result) == {"a": "cached", "b": "cached", "a2": "ran", "b2": "ran",
                                "sum": "ran", "final": "ran"}


def test_without_cache_values_are_released_after_their_last_reader(toy_registry):
    result = run_graph(parse_graph(CHAIN), toy_registry)
    assert set(result.values) == {("final", "y")}
    kept = run_graph(parse_graph(CHAIN), toy_registry, keep_all=True)
    assert ("a2", "y") in kept.values and len(kept.values) == 6


def test_records_time_memory_and_events(toy_registry):
    events = []
    result = run_graph(parse_graph(CHAIN), toy_registry, events=events.append)
    assert [e.kind for e in events[:2]] == ["start", "finish"] and len(events) == 12
    assert all(r.seconds >= 0 and r.peak_rss_mb > 10 for r in result.records.values())


def test_subgraph_is_a_node_with_the_inner_graph_ports(write_yaml, toy_registry):
    write_yaml("inputs:\n  x: {type: Scalar}\n  k: {type: Scalar, default: 5}\nnodes:\n"
               "  sc: {type: toy.scale, in: {x: inputs.x}}\n"
               "  plus: {type: toy.add, in: {a: sc.y, b: inputs.k}}\n"
               "outputs:\n  y: plus.total\n", "inner.yaml")
    outer = write_yaml("nodes:\n  n: {type: toy.number, params: {value: 2.0}}\n"
                       "  sub:\n    type: inner.yaml\n    in: {x: n.value}\n"
                       "    params: {sc.factor: 10.0}\n"
                       "  after: {type: toy.scale, in: {x: sub.y}, params: {factor: 1.0}}\n"
                       "outputs:\n  r: after.y\n", "outer.yaml")
    from nodegraph.graph import load_graph
    graph = load_graph(outer)
    result = run_graph(graph, toy_registry)
    assert result.outputs["r"] == 25.0  # 2 * 10 + 5
    assert set(result.records) == {"n", "sub/sc", "sub/plus", "after"}
    bound = apply_settings(graph, ["sub.sc.factor=1"], toy_registry)
    assert run_graph(bound, toy_registry).outputs["r"] == 7.0


def test_subgraph_that_includes_itself_is_refused(write_yaml, toy_registry):
    from nodegraph.graph import load_graph
    from nodegraph.validate import validate
    write_yaml("nodes:\n  again: {type: b.yaml}\n", "a.yaml")
    path = write_yaml("nodes:\n  again: {type: a.yaml}\n", "b.yaml")
    problems = validate(load_graph(path), toy_registry)
    assert problems and "includes itself" in problems[0].message and problems[0].line == 2


def test_bypass_passes_a_compatible_input_through(toy_registry):
    graph = parse_graph(CHAIN)
    graph.nodes["final"].bypass = True
    result = run_graph(graph, toy_registry)
    assert result.outputs["result"] == 22.0 and result.records["final"].status == "bypassed"


def test_side_effect_nodes_always_run_and_cannot_overwrite_inputs(tmp_path, toy_registry):
    out = tmp_path / "n.txt"
    text = (f"inputs:\n  out: {{type: OutPath, default: {out}}}\n  src: {{type: Path, default: {out}}}\n"
            "nodes:\n  n: {type: toy.number}\n  w: {type: toy.write_text, in: {value: n.value, path: inputs.out}}\n")
    graph = parse_graph(text.replace("  src: {type: Path, default: " + str(out) + "}\n", ""))
    cache = Cache()
    run_graph(graph, toy_registry, cache=cache)
    out.write_text("changed")
    again = run_graph(graph, toy_registry, cache=cache)
    assert again.records["w"].status == "ran" and out.read_text() == "1.0\n"

    clash = parse_graph(text + "  size: {type: toy.file_size, in: {path: inputs.src}}\n")
    with pytest.raises(InputError, match="also an input"):
        run_graph(clash, toy_registry)
    assert out.read_text() == "1.0\n"


def test_missing_input_file_is_refused_by_validation_and_by_the_executor(tmp_path, toy_registry):
    from nodegraph.errors import GraphError
    from nodegraph.execute import plan, run_plan
    data = tmp_path / "data.bin"
    graph = parse_graph(f"inputs:\n  f: {{type: Path, default: {data}}}\n"
                        "nodes:\n  s: {type: toy.file_size, in: {path: inputs.f}}\n")
    with pytest.raises(GraphError, match="'f': .*data.bin: file not found .*node 's', input 'path'"):
        run_graph(graph, toy_registry)
    data.write_bytes(b"12")
    the_plan = plan(graph, toy_registry)
    data.unlink()  # gone between validation and the run
    with pytest.raises(InputError, match="node 's', input 'path': file not found: .*data.bin"):
        run_plan(the_plan)


def test_failures_name_the_node(toy_registry):
    graph = parse_graph("nodes:\n  n: {type: toy.number}\n  b: {type: toy.broken, in: {x: n.value}}\n")
    with pytest.raises(NodeError, match="node 'b' \\(toy.broken\\) failed: RuntimeError: boom"):
        run_graph(graph, toy_registry)
    graph = parse_graph("nodes:\n  n: {type: toy.number}\n  b: {type: toy.bad_output, in: {x: n.value}}\n")
    with pytest.raises(NodeError, match="output 'image': expected a numpy array"):
        run_graph(graph, toy_registry)


def test_relative_paths_are_resolved_against_the_graph_file(tmp_path, toy_registry):
    (tmp_path / "data.bin").write_bytes(b"xyz")
    graph = parse_graph("inputs:\n  f: {type: Path, default: data.bin}\n"
                        "nodes:\n  s: {type: toy.file_size, in: {path: inputs.f}}\noutputs: {n: s.size}\n",
                        tmp_path / "g.yaml")
    assert run_plan(plan(graph, toy_registry)).outputs["n"] == 3.0


def test_subgraph_specs_are_cached_by_content_of_every_file_they_use(write_yaml, toy_registry, monkeypatch):
    from nodegraph import subgraph
    from nodegraph.graph import load_graph
    write_yaml("inputs:\n  x: {type: Scalar}\nnodes:\n  sc: {type: toy.scale, in: {x: inputs.x}}\n"
               "outputs:\n  y: sc.y\n", "leaf.yaml")
    write_yaml("inputs:\n  x: {type: Scalar}\nnodes:\n  leaf: {type: leaf.yaml, in: {x: inputs.x}}\n"
               "outputs:\n  y: leaf.y\n", "middle.yaml")
    outer = load_graph(write_yaml("nodes:\n  n: {type: toy.number, params: {value: 2.0}}\n"
                                  "  sub: {type: middle.yaml, in: {x: n.value}}\noutputs:\n  r: sub.y\n"))
    loads = []
    real_load = subgraph.load_graph
    monkeypatch.setattr(subgraph, "load_graph", lambda path: loads.append(path) or real_load(path))
    first = subgraph.resolve_spec(outer, "middle.yaml", toy_registry)
    assert len(loads) == 2  # middle and leaf
    for _ in range(3):  # the editor asks on every frame: no file is read again
        assert subgraph.resolve_spec(outer, "middle.yaml", toy_registry).params == first.params
    assert len(loads) == 2
    # A change two levels down (same path, new content) is seen.
    write_yaml("inputs:\n  x: {type: Scalar}\nnodes:\n  sc: {type: toy.scale, in: {x: inputs.x}}\n"
               "  sc2: {type: toy.scale, in: {x: sc.y}}\noutputs:\n  y: sc2.y\n", "leaf.yaml")
    assert "leaf.sc2.factor" in subgraph.resolve_spec(outer, "middle.yaml", toy_registry).params
    assert run_graph(outer, toy_registry).outputs["r"] == 2.0 * 2 * 2  # toy.scale factor 2 twice


def _run_on_photo(tmp_path, pixels, nodes: str, outputs: str):
    """Run a graph that reads ``pixels`` (written as a PNG) with the built-in nodes."""
    import cv2

    from nodegraph.registry import default_registry
    cv2.imwrite(str(tmp_path / "p.png"), pixels)
    graph = parse_graph(f"inputs:\n  photo: {{type: Path, default: {tmp_path / 'p.png'}}}\n"
                        "nodes:\n  read: {type: image.read, in: {path: inputs.photo}}\n"
                        f"{nodes}outputs:\n{outputs}")
    return run_graph(graph, default_registry())


def test_compact_image_is_kept_compact_and_converted_for_each_image_reader(tmp_path):
    import numpy as np
    pixels = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    result = _run_on_photo(tmp_path, pixels,
                           "  gray: {type: image.to_gray, in: {image: read.image}}\n"
                           "  bypassed: {type: image.blur, in: {image: read.image}, bypass: true}\n",
                           "  stored: read.image\n  gray: gray.gray\n  passed: bypassed.image\n")
    assert result.outputs["stored"].dtype == np.uint8  # what lives in memory stays 8-bit
    rgb = pixels[:, :, ::-1] / 255.0
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(result.outputs["gray"], expected, atol=1e-6)  # read as float32
    assert result.outputs["passed"].dtype == np.float32  # a bypass gives its output's type
    np.testing.assert_allclose(result.outputs["passed"], rgb, atol=1e-7)


def test_values_are_released_per_output_port(tmp_path):
    """An output nobody reads is dropped at once even when a sibling output lives on."""
    import numpy as np
    result = _run_on_photo(tmp_path, np.zeros((4, 5, 3), np.uint8),
                           "  gray: {type: image.to_gray, in: {image: read.image}}\n",
                           "  stored: read.image\n")
    assert set(result.values) == {("read", "image")}  # not read.focal_35mm, not gray.gray


def _with_warm_up(toy_registry, node_id, warm_up):
    from dataclasses import replace
    toy_registry.specs[node_id] = replace(toy_registry.specs["toy.scale"], id=node_id, warm_up=warm_up)
    return parse_graph(CHAIN.replace("toy.scale", node_id))


def test_warm_up_runs_once_per_process_on_a_background_thread(toy_registry):
    import threading
    import uuid
    calls = []
    ran = threading.Event()

    def warm_up():
        calls.append(threading.current_thread() is threading.main_thread())
        ran.set()

    graph = _with_warm_up(toy_registry, f"toy.warm_{uuid.uuid4().hex}", warm_up)
    first = run_graph(graph, toy_registry)
    assert ran.wait(10)
    second = run_graph(graph, toy_registry)
    assert calls == [False]  # one call for the three nodes of that type and two runs, not on the main thread
    assert first.outputs["result"] == second.outputs["result"] == 22.0


def test_a_failing_warm_up_changes_nothing_of_the_run(toy_registry):
    import uuid

    def warm_up():
        raise RuntimeError("no kernels here")

    graph = _with_warm_up(toy_registry, f"toy.warm_{uuid.uuid4().hex}", warm_up)
    result = run_graph(graph, toy_registry)
    assert result.outputs["result"] == 22.0 and set(statuses(result).values()) == {"ran"}


def test_every_builtin_warm_up_runs():
    from nodegraph.registry import default_registry
    with_warm_up = [spec for spec in default_registry().specs.values() if spec.warm_up is not None]
    assert {"hzsr.warp", "hzsr.occlusion", "hzsr.flow_uncertainty", "hzsr.reject", "hzsr.defocus",
            "hzsr.blend", "hzsr.blend_raw_weight"} <= {spec.id for spec in with_warm_up}
    for spec in with_warm_up:
        spec.warm_up()  # raises if a warm-up no longer matches its kernels' wrappers


def _plugin_package(root, body="FACTOR = 2.0\n"):
    """A node plugin package on disk: recipes/nodes.py declares toyplug.double, helpers.py holds
    the constant it uses (a change there must count as a change of the node's code)."""
    package = root / "toyplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(body)
    (package / "nodes.py").write_text(
        "from nodegraph import Out, Scalar, node\n"
        "from toyplug.helpers import FACTOR\n\n\n"
        "@node('toyplug.double')\n"
        "def double(x: Scalar) -> Out(y=Scalar):\n"
        "    return {'y': FACTOR * x}\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "ignored.py").write_text("changes nothing")
    return package


def test_recipe_keys_follow_the_source_of_the_node_package(tmp_path, monkeypatch):
    """Edited code of a node's package (a helper module included, the node's version not)
    gives new recipe keys, so a batch or an evaluation never resumes outputs of older code;
    the same code in another folder gives the same digest."""
    import importlib
    import sys

    from nodegraph.files import _source_digest, source_digest

    first, second = _plugin_package(tmp_path / "a"), _plugin_package(tmp_path / "b")
    assert _source_digest((str(first),), ()) == _source_digest((str(second),), ())
    (second / "__pycache__" / "ignored.py").write_text("still nothing")
    _source_digest.cache_clear()  # computed once per process; here the files change under it
    assert _source_digest((str(first),), ()) == _source_digest((str(second),), ())
    (second / "helpers.py").write_text("FACTOR = 3.0\n")
    _source_digest.cache_clear()
    assert _source_digest((str(first),), ()) != _source_digest((str(second),), ())

    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    for name in [m for m in sys.modules if m.startswith("toyplug")]:
        monkeypatch.delitem(sys.modules, name)
    nodes = importlib.import_module("toyplug.nodes")
    from nodegraph.node import spec_of
    from nodegraph.registry import Registry

    registry = Registry()
    registry.add(spec_of(nodes.double))
    graph = parse_graph("inputs:\n  x: {type: Scalar, default: 2}\n"
                        "nodes:\n  d: {type: toyplug.double, in: {x: inputs.x}}\n"
                        "outputs:\n  y: d.y\n")
    before = source_digest("toyplug.nodes")
    cache = Cache()
    assert run_graph(graph, registry, cache=cache).outputs["y"] == 4.0
    (first / "helpers.py").write_text("FACTOR = 2.0  # same value, edited file\n")
    _source_digest.cache_clear()  # what a new process would compute
    source_digest.cache_clear()
    assert source_digest("toyplug.nodes") != before
    assert statuses(run_graph(graph, registry, cache=cache)) == {"d": "ran"}
