"""nodegraph batch: Dask workers, isolated failures, worker deaths, resume, CSV items, exit codes.

The HZSR tests use small pairs made from the bundled sample (tools/make_pairs.py); the others
use toy nodes, on a 2-process cluster shared by the session (the ``dask_scheduler`` fixture).
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toy_nodes

from nodegraph.batch import FAILED, OK, SKIPPED, Item, read_items, run_batch
from nodegraph.cli import main
from nodegraph.errors import GraphError, InputError
from nodegraph.graph import load_graph

REPO = Path(__file__).resolve().parent.parent
HZSR = str(REPO / "pipelines" / "hzsr.yaml")

TOY_PIPELINE = """\
schema_version: 1
inputs:
  number: {type: Path, default: number.txt}
  out: {type: OutPath, default: result.txt}
nodes:
  read:
    type: toy.read_number
    in: {path: inputs.number}
  crash:
    type: toy.crash_once
    in: {x: read.value}
  slow:
    type: toy.slow
    in: {x: crash.y}
  write:
    type: toy.write_text
    in: {value: slow.y, path: inputs.out}
outputs:
  value: slow.y
"""


def _make_pairs():
    spec = importlib.util.spec_from_file_location("make_pairs", REPO / "tools" / "make_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_pairs


def _summary(out_dir: Path) -> dict:
    return json.loads((out_dir / "summary.json").read_text())


def _statuses(out_dir: Path) -> dict[str, str]:
    return {r["name"]: r["status"] for r in _summary(out_dir)["records"]}


@pytest.fixture
def toy_items(tmp_path):
    """A toy pipeline and a folder of 6 items, each a number file."""
    pipeline = tmp_path / "toy.yaml"
    pipeline.write_text(TOY_PIPELINE)
    items = tmp_path / "items"
    for index in range(1, 7):
        (items / f"n{index}").mkdir(parents=True)
        (items / f"n{index}" / "number.txt").write_text(f"{index}\n")
    return pipeline, items


def _toy_batch(pipeline, items, out_dir, scheduler, **options):
    graph = load_graph(pipeline)
    return run_batch(str(pipeline), read_items(items, graph), out_dir, scheduler=scheduler,
                     registry_factory=toy_nodes.registry, **options)


def test_hzsr_batch_on_two_local_workers_isolates_corrupt_pairs_and_resumes(tmp_path, capsys,
                                                                             dask_scheduler):
    _make_pairs()(tmp_path / "items", count=12, corrupt=2)
    out = tmp_path / "out"
    args = ["batch", HZSR, str(tmp_path / "items"), "--out-dir", str(out), "--workers", "2"]
    assert main(args) == 1
    captured = capsys.readouterr()
    printed = captured.out
    assert "item/s" not in captured.err  # no progress bar when stderr is not a terminal
    statuses = _statuses(out)
    assert [n for n, s in statuses.items() if s == FAILED] == ["pair11", "pair12"]
    assert sum(s == OK for s in statuses.values()) == 10
    outputs = sorted(out.glob("*/out.png"))
    assert len(outputs) == 10
    records = {r["name"]: r for r in _summary(out)["records"]}
    assert "pair11/wide.png" in records["pair11"]["error"] and "read_wide" in records["pair11"]["error"]
    assert "pair12/tele.png" in records["pair12"]["error"]
    assert records["pair01"]["outputs"] == {"out": "pair01/out.png"} and records["pair01"]["peak_rss_mb"] > 0
    assert "pair11" in printed and "2 failed" in printed
    assert not list(out.rglob("*.tmp"))

    # Repeated: nothing runs again (no cluster is even started); the failures are reported again.
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    assert main(args) == 1
    summary = _summary(out)
    assert (summary["skipped"], summary["failed"], summary["run_seconds"]) == (10, 2, 0)
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps

    # An edited input re-runs just its item.
    (tmp_path / "items" / "pair03" / "case.json").write_text(json.dumps({"settings": {"ratio": 2.0,
                                                                                     "zoom": 1.5}}))
    result = run_batch(HZSR, read_items(tmp_path / "items", load_graph(HZSR)), out, scheduler=dask_scheduler)
    assert [r.name for r in result.records if r.status == OK] == ["pair03"]


def test_all_items_ok_exits_0_on_an_existing_scheduler(tmp_path, dask_scheduler, capsys):
    _make_pairs()(tmp_path / "items", count=2)
    out = tmp_path / "out"
    assert main(["batch", HZSR, str(tmp_path / "items"), "--out-dir", str(out),
                 "--scheduler", dask_scheduler, "--set", "blend.smooth_sigma=3"]) == 0
    assert sorted(p.parent.name for p in out.glob("*/out.png")) == ["pair01", "pair02"]
    assert _summary(out)["settings"] == ["blend.smooth_sigma=3"]


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers 0"),
    (["--retries", "-1"], "--retries -1"),
    (["--set", "out=x.png"], "outputs go to --out-dir"),
    (["--set", "nosuch=1"], "nosuch"),
    (["--set", "tele=/no/such/tele.png"], "file not found"),
    (["--set", "zoom=0.5"], "--set zoom=0.5"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
])
def test_invalid_options_exit_2_before_any_work(tmp_path, capsys, extra, message):
    _make_pairs()(tmp_path / "items", count=1)
    out = tmp_path / "out"
    assert main(["batch", HZSR, str(tmp_path / "items"), "--out-dir", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_invalid_graph_or_items_exit_2(tmp_path, capsys, toy_items):
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes:\n  a: {type: no.such.node}\n")
    assert main(["batch", str(broken), str(tmp_path), "--out-dir", str(tmp_path / "o")]) == 2
    assert "no.such.node" in capsys.readouterr().err
    assert main(["batch", HZSR, str(tmp_path / "missing"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "no such folder or CSV file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", HZSR, str(tmp_path / "empty"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "no items" in capsys.readouterr().err
    assert main(["batch", HZSR, str(tmp_path / "nope.csv"), "--out-dir", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_worker_killed_mid_batch_is_retried_or_reported(tmp_path, toy_items, dask_scheduler):
    pipeline, items = toy_items
    flag = tmp_path / "kill_once"
    for retries, expected in ((1, OK), (0, FAILED)):
        flag.write_text("")
        (items / "n3" / "case.json").write_text(json.dumps({"settings": {"crash.flag": str(flag)}}))
        out = tmp_path / f"out{retries}"
        result = _toy_batch(pipeline, items, out, dask_scheduler, retries=retries)
        records = {r.name: r for r in result.records}
        assert not flag.exists()  # the worker running n3 was killed
        assert records["n3"].status == expected, records["n3"].error
        if expected == FAILED:
            assert "worker died" in records["n3"].error and records["n3"].attempts == 1
            assert not (out / "n3" / "item.json").exists()  # so a repeated command runs it again
        else:
            assert records["n3"].attempts == 2
            assert (out / "n3" / "out.txt").read_text() == "3.0\n"
        assert all(records[f"n{i}"].status == OK for i in (1, 2, 4, 5, 6))
        assert (out / "n6" / "out.txt").read_text() == "6.0\n"


def test_a_failing_item_is_named_and_the_others_finish(tmp_path, toy_items, dask_scheduler):
    pipeline, items = toy_items
    (items / "n2" / "number.txt").write_text("not a number")
    (items / "n5" / "number.txt").unlink()
    result = _toy_batch(pipeline, items, tmp_path / "out", dask_scheduler)
    records = {r.name: r for r in result.records}
    assert records["n2"].status == FAILED and "node 'read'" in records["n2"].error
    assert records["n5"].status == FAILED and "no number.* file" in records["n5"].error
    assert [r.name for r in result.records if r.status == OK] == ["n1", "n3", "n4", "n6"]


def test_resume_after_an_interruption_skips_finished_items(tmp_path, toy_items, dask_scheduler):
    """A batch killed mid-way (SIGKILL of the command) continues where it stopped."""
    pipeline, items = toy_items
    out = tmp_path / "out"
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import toy_nodes\n"
              "from nodegraph.batch import read_items, run_batch\nfrom nodegraph.graph import load_graph\n"
              f"run_batch({str(pipeline)!r}, read_items({str(items)!r}, load_graph({str(pipeline)!r})), "
              f"{str(out)!r}, settings=['slow.seconds=0.5'], scheduler={dask_scheduler!r}, "
              "registry_factory=toy_nodes.registry)\n")
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*/item.json"))) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "the batch ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.5)  # the items its workers were running finish (its queued ones are dropped)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/item.json")}
    assert 2 <= len(finished) < 6
    result = _toy_batch(pipeline, items, out, dask_scheduler, settings=["slow.seconds=0.5"])
    statuses = {r.name: r.status for r in result.records}
    assert all(statuses[name] == SKIPPED for name in finished)
    assert all(statuses[name] == OK for name in statuses if name not in finished)
    assert {name: (out / name / "item.json").stat().st_mtime_ns for name in finished} == finished
    assert all((out / f"n{i}" / "out.txt").read_text() == f"{i}.0\n" for i in range(1, 7))


def test_csv_items_bind_graph_inputs(tmp_path, toy_items, dask_scheduler):
    pipeline, items = toy_items
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("7")
    (tmp_path / "data" / "b.txt").write_text("8")
    table = tmp_path / "data" / "items.csv"
    table.write_text("name,number\nfirst,a.txt\nsecond,b.txt\n")  # paths relative to the CSV
    result = _toy_batch(pipeline, table, tmp_path / "out", dask_scheduler)
    assert [(r.name, r.status) for r in result.records] == [("first", OK), ("second", OK)]
    assert (tmp_path / "out" / "second" / "out.txt").read_text() == "8.0\n"

    unnamed = tmp_path / "data" / "unnamed.csv"
    unnamed.write_text("number\na.txt\n\nb.txt\n")
    assert [item.name for item in read_items(unnamed, load_graph(pipeline))] == ["row0001", "row0003"]


@pytest.mark.parametrize("text, message", [
    ("name,colour\na,red\n", "column 'colour' is not a graph input"),
    ("number,out\na.txt,x.txt\n", "outputs go to --out-dir"),
    ("name,number\na,1.txt\na,2.txt\n", "repeated: a"),
    ("name,number\n../up,1.txt\n", "cannot be an item name"),
    ("name,number\nsummary.json,1.txt\n", "cannot be an item name"),
    ("name,number\na\n", "1 cells, the header has 2"),
    ("", "no header row"),
])
def test_bad_csv_is_refused_before_any_work(tmp_path, write_yaml, text, message):
    table = tmp_path / "items.csv"
    table.write_text(text)
    with pytest.raises(InputError, match=message):
        read_items(table, load_graph(write_yaml(TOY_PIPELINE)))


def test_an_item_with_a_bad_setting_fails_alone(tmp_path, toy_items, dask_scheduler):
    pipeline, items = toy_items
    (items / "n4" / "case.json").write_text(json.dumps({"settings": {"slow.seconds": 99}}))
    (items / "n5" / "case.json").write_text("{not json")
    result = _toy_batch(pipeline, items, tmp_path / "out", dask_scheduler)
    records = {r.name: r for r in result.records}
    assert records["n4"].status == FAILED and "slow" in records["n4"].error
    assert records["n5"].status == FAILED and "case.json" in records["n5"].error
    assert sum(r.status == OK for r in result.records) == 4


def test_invalid_pipeline_raises_before_items_run(tmp_path, write_yaml):
    with pytest.raises(GraphError):
        run_batch(str(write_yaml("nodes:\n  a: {type: toy.nope}\n")), [Item("a")], tmp_path / "o",
                  registry_factory=toy_nodes.registry)
    assert not (tmp_path / "o").exists()


def test_workers_get_their_share_of_the_cores_and_leave_this_process_environment_alone(dask_scheduler):
    from dask.distributed import Client

    from nodegraph.cores import available_cores

    names = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
    before = {name: os.environ.get(name) for name in names}
    share = str(max(1, available_cores() // 2))
    with Client(dask_scheduler) as client:
        client.restart()  # the nannies spawn their workers again, as after a worker death
        seen = client.run(lambda: {name: os.environ.get(name) for name in names})
    assert len(seen) == 2 and all(env == dict.fromkeys(names, share) for env in seen.values()), seen
    assert {name: os.environ.get(name) for name in names} == before
