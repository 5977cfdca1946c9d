import json
import subprocess
import sys

import pytest

from nodegraph import cli
from nodegraph.registry import load_registry


@pytest.fixture
def registry(monkeypatch):
    """Built-in nodes plus the toy nodes, as the CLI's registry."""
    import toy_nodes
    registry = load_registry(include_plugins=False)
    registry.add_module(toy_nodes, "toy")
    monkeypatch.setattr(cli, "default_registry", lambda: registry)
    return registry


GOOD = """\
inputs:
  start: {type: Scalar, default: 2}
  out: {type: OutPath, default: result.txt}
nodes:
  n: {type: toy.number, params: {value: 3.0}}
  s: {type: toy.add, in: {a: n.value, b: inputs.start}}
  w: {type: toy.write_text, in: {value: s.total, path: inputs.out}}
outputs:
  total: s.total
"""


def test_run_succeeds_and_binds_settings(write_yaml, tmp_path, registry, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output path is taken from the current folder
    path = write_yaml(GOOD)
    assert cli.main(["run", str(path), "--set", "start=10", "--set", "n.value=1"]) == 0
    assert (tmp_path / "result.txt").read_text() == "11.0\n"
    out = tmp_path / "elsewhere.txt"
    assert cli.main(["run", str(path), "--out", str(out), "--profile"]) == 0
    assert out.read_text() == "5.0\n"
    table = capsys.readouterr().out
    assert "node" in table.splitlines()[0] and "peak MB" in table
    assert any(line.split()[:3] == ["w", "toy.write_text", "ran"] for line in table.splitlines())
    assert "total" in table.splitlines()[-1]


def test_validate_prints_every_problem_with_its_line_and_exits_2(write_yaml, registry, capsys):
    path = write_yaml("nodes:\n  a: {type: toy.nosuch}\n  b:\n    type: toy.scale\n"
                      "    params:\n      factor: 99\n  c:\n    type: toy.add\n")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: node 'a': unknown node type 'toy.nosuch'" in err
    assert f"{path}:6: node 'b', 'factor': bad value" in err
    assert f"{path}:3: node 'b', 'x': required input 'x'" in err
    assert f"{path}:7: node 'c', 'a': required input 'a'" in err
    assert "4 problem(s)" in err
    assert cli.main(["validate", str(write_yaml(GOOD, "ok.yaml"))]) == 0


def test_unknown_set_name_and_bad_out_exit_2(write_yaml, registry, capsys):
    path = write_yaml(GOOD)
    assert cli.main(["run", str(path), "--set", "nosuch=1"]) == 2
    assert "--set nosuch" in capsys.readouterr().err
    assert cli.main(["validate", str(path), "--set", "s.nope=1"]) == 2
    no_out = write_yaml("nodes:\n  n: {type: toy.number}\n", "no_out.yaml")
    assert cli.main(["run", str(no_out), "--out", "x.txt"]) == 2
    assert "--out needs a graph input named 'out'" in capsys.readouterr().err


def test_bad_yaml_and_missing_file_exit_2(write_yaml, tmp_path, registry, capsys):
    assert cli.main(["run", str(write_yaml("nodes: [\n", "bad.yaml"))]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert cli.main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the graph file" in capsys.readouterr().err


def test_node_failure_exits_1_naming_the_node(write_yaml, registry, capsys):
    path = write_yaml("nodes:\n  n: {type: toy.number}\n  boom: {type: toy.broken, in: {x: n.value}}\n")
    assert cli.main(["run", str(path)]) == 1
    assert "node 'boom' (toy.broken) failed: RuntimeError: boom" in capsys.readouterr().err


def test_existing_output_survives_a_failed_run(write_yaml, tmp_path, registry, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "result.txt"
    out.write_text("precious")
    path = write_yaml(GOOD.replace("n: {type: toy.number, params: {value: 3.0}}",
                                   "n: {type: toy.broken, in: {x: inputs.start}}").replace(
        "n.value", "n.y"))
    assert cli.main(["run", str(path)]) == 1
    assert out.read_text() == "precious"


def test_nodes_lists_types_as_text_and_json(registry, capsys):
    assert cli.main(["nodes"]) == 0
    text = capsys.readouterr().out
    assert "toy.scale v2 [toy]  (x: Scalar) -> (y: Scalar)" in text
    assert "- factor: float = 2.0 x in [0.0, 10.0]" in text
    assert cli.main(["nodes", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out)
    scale = next(n for n in catalogue["nodes"] if n["id"] == "toy.scale")
    assert scale["params"][1] == {"name": "mode", "type": "str", "default": "mul", "range": None,
                                  "choices": ["mul", "div"], "unit": "", "doc": ""}
    assert catalogue["plugin_failures"] == []


def test_console_script_is_installed_and_quiet_when_piped(write_yaml, tmp_path):
    path = write_yaml("inputs:\n  out: {type: OutPath, default: o.png}\n  photo: {type: Path}\n"
                      "nodes:\n  r: {type: image.read, in: {path: inputs.photo}}\n"
                      "  w: {type: image.write, in: {image: r.image, path: inputs.out}}\n")
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "p.png"), np.full((8, 8, 3), 200, np.uint8))
    run = subprocess.run(["nodegraph", "run", str(path), "--set", f"photo={tmp_path / 'p.png'}",
                          "--debug-dir", str(tmp_path / "dbg")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr  # no progress bar when not on a terminal
    assert (tmp_path / "o.png").exists()
    assert sorted(p.name for p in (tmp_path / "dbg").iterdir()) == ["00_r.image.png",
                                                                    "contact_sheet.png"]
    usage = subprocess.run([sys.executable, "-m", "nodegraph.cli", "frobnicate"],
                           capture_output=True, text=True)
    assert usage.returncode == 2


def test_console_ends_the_process_at_once_with_every_output_complete(write_yaml, tmp_path):
    """``run``, ``validate`` and ``nodes`` end with os._exit after main (cli.console): the
    written image decodes whole, piped stdout arrives whole, exit codes are main's."""
    import cv2
    import numpy as np

    path = write_yaml("inputs:\n  out: {type: OutPath, default: o.png}\n  photo: {type: Path}\n"
                      "nodes:\n  r: {type: image.read, in: {path: inputs.photo}}\n"
                      "  w: {type: image.write, in: {image: r.image, path: inputs.out}}\n")
    photo = np.random.default_rng(0).integers(0, 256, (600, 700, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), photo)
    run = subprocess.run([sys.executable, "-m", "nodegraph", "run", str(path),
                          "--set", f"photo={tmp_path / 'p.png'}"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout + run.stderr
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "o.png")), photo)
    listing = subprocess.run(["nodegraph", "nodes", "--json"], capture_output=True, text=True)
    assert listing.returncode == 0 and len(json.loads(listing.stdout)["nodes"]) > 20
    missing = subprocess.run(["nodegraph", "validate", str(tmp_path / "missing.yaml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("error:")


def _run_through_console(monkeypatch, argv, seen):
    """``nodegraph ARGV`` through cli.console, recording in ``seen`` whether the collector is
    on while the graph is planned and when the executor starts; (exit code, thread or None)
    of the warm-ups."""
    import gc
    import threading

    import nodegraph.execute

    real_load, real_run_plan = cli.load_for_run, nodegraph.execute.run_plan

    def load_for_run(*args, **kwargs):
        seen["enabled_while_planning"] = gc.isenabled()
        return real_load(*args, **kwargs)

    def run_plan(*args, **kwargs):
        seen["enabled_at_the_first_node"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()
        return real_run_plan(*args, **kwargs)

    monkeypatch.setattr(cli, "load_for_run", load_for_run)
    monkeypatch.setattr(nodegraph.execute, "run_plan", run_plan)
    monkeypatch.setattr(cli.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    monkeypatch.setattr(sys, "argv", ["nodegraph", *argv])
    try:
        with pytest.raises(SystemExit) as ended:
            cli.console()
        warm_up = next((t for t in threading.enumerate() if t.name == "nodegraph-warm-up"), None)
        if warm_up is not None:
            warm_up.join()
        seen["enabled_after"] = gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
    return ended.value.code


def test_console_pauses_the_collector_for_the_imports_only(write_yaml, tmp_path, registry, monkeypatch):
    """``run`` through cli.console: the cyclic collector is off while modules are imported and
    the graph is planned, and on (with the start-up's objects frozen) when nodes run: at once
    for nodes without a warm-up."""
    seen = {}
    code = _run_through_console(monkeypatch, ["run", str(write_yaml(GOOD)), "--out",
                                              str(tmp_path / "r.txt")], seen)
    assert code == 0 and (tmp_path / "r.txt").read_text() == "5.0\n"
    assert seen["enabled_while_planning"] is False and seen["enabled_at_the_first_node"] is True
    assert seen["frozen"] > 1000


def test_console_resumes_the_collector_when_the_warm_ups_are_done(write_yaml, tmp_path, registry,
                                                                  monkeypatch):
    """A warm-up (e.g. one that imports Numba) runs with the collector paused; the collector is
    back on, with what the warm-up made frozen, once it is done."""
    import gc
    import threading

    from nodegraph import Out, Scalar, node
    from nodegraph.node import spec_of

    seen, node_ran = {}, threading.Event()

    def warm_up():  # a long one: it lasts until the node has run
        seen["enabled_in_warm_up"] = gc.isenabled()
        node_ran.wait(timeout=30)

    @node("toy.warmed", warm_up=warm_up)
    def warmed(a: Scalar) -> Out(value=Scalar):
        seen["enabled_in_node"] = gc.isenabled()
        node_ran.set()
        return a

    registry.add(spec_of(warmed))
    graph = GOOD.replace("  w: {type: toy.write_text, in: {value: s.total,",
                         "  m: {type: toy.warmed, in: {a: s.total}}\n"
                         "  w: {type: toy.write_text, in: {value: m.value,")
    code = _run_through_console(monkeypatch, ["run", str(write_yaml(graph)), "--out",
                                              str(tmp_path / "r.txt")], seen)
    assert code == 0 and (tmp_path / "r.txt").read_text() == "5.0\n"
    assert seen["enabled_while_planning"] is False and seen["enabled_at_the_first_node"] is False
    assert seen["enabled_in_warm_up"] is False and seen["enabled_in_node"] is False
    assert seen["enabled_after"] is True
