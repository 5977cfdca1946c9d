"""Every path option is checked before any work: exit 2 and one line naming the option, no
traceback, nothing written. Unexpected errors: one line and a --debug hint, exit 1."""
from pathlib import Path

import pytest

from nodegraph import cli

REPO = Path(__file__).resolve().parents[1]
PIPELINE = str(REPO / "pipelines" / "hzsr.yaml")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("a file, not a folder\n")
    (tmp_path / "debug").mkdir()
    return tmp_path


def refused(capsys, argv: list[str], option: str) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {option}"), lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "option", "reason"), [
    (["--debug-dir", "notes.md"], "--debug-dir notes.md", "is a file, not a folder"),
    (["--debug-dir", "notes.md/dbg"], "--debug-dir notes.md/dbg", "'notes.md' is a file"),
    (["--out", "notes.md/out.png"], "--out notes.md/out.png", "notes.md' is a file, not a folder"),
    (["--out", "debug"], "--out debug", "is a folder; give a file name"),
    (["--out", "x.xyz"], "--out x.xyz", "'.xyz' is not a known extension; use one of .png"),
    (["--set", "zoom=0.5"], "--set zoom=0.5", "must be a finite number >= 1"),
    (["--set", "zoom=nan"], "--set zoom=nan", "expected a finite number"),
    (["--set", "ratio=inf"], "--set ratio=inf", "expected a finite number"),
])
def test_run_refuses_bad_path_and_range_options_before_any_work(workdir, capsys, args, option,
                                                                reason):
    line = refused(capsys, ["run", PIPELINE, *args], option)
    assert reason in line
    assert sorted(p.name for p in workdir.iterdir()) == ["debug", "notes.md"]  # nothing written
    assert not any((workdir / "debug").iterdir())


def test_eval_refuses_bad_output_options_and_names_a_missing_cases_folder(workdir, capsys):
    cases = str(workdir)
    line = refused(capsys, ["eval", PIPELINE, cases, "--out-dir", "notes.md"], "--out-dir notes.md")
    assert "is a file, not a folder" in line
    refused(capsys, ["eval", PIPELINE, cases, "--report", "notes.md/r.json"], "--report notes.md/r.json")
    refused(capsys, ["eval", PIPELINE, cases, "--report", "r.txt"], "--report r.txt")
    line = refused(capsys, ["eval", PIPELINE, "no_such_cases"], "cases folder no_such_cases")
    assert "no such folder" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["debug", "notes.md"]


def test_train_refuses_an_unwritable_model_path_before_simulating(workdir, capsys):
    pytest.importorskip("torch")
    line = refused(capsys, ["train", "fusion", "--out", "notes.md/x.onnx"], "--out notes.md/x.onnx")
    assert "'notes.md' is a file" in line
    refused(capsys, ["train", "fusion", "--out", "model.pt"], "--out model.pt")
    assert sorted(p.name for p in workdir.iterdir()) == ["debug", "notes.md"]


def test_a_copied_graph_names_the_input_and_the_path_it_looked_for(workdir, capsys):
    copy = workdir / "copy.yaml"
    copy.write_text(Path(PIPELINE).read_text())
    assert cli.main(["run", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy}:9: 'wide': {workdir.parent / 'nodes'}" in err  # line of wide's default
    assert "file not found (the default '../nodes/hzsr/sample/wide.jpg' is taken from the graph " \
           f"file's folder, {workdir}; give the file with --set wide=PATH)" in err


def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_validate", broken)
    assert cli.main(["validate", PIPELINE]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: validate: unexpected ZeroDivisionError: division by zero "
        "(re-run with --debug to see the traceback)"]
    assert cli.main(["validate", PIPELINE, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("ZeroDivisionError: division by zero")


def test_a_run_says_what_it_wrote(workdir, capsys):
    assert cli.main(["run", PIPELINE, "--out", "fused.png"]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == "wrote fused.png (370x250)"


def test_the_node_catalogue_shows_what_narrowed_ports_accept(capsys):
    import json
    assert cli.main(["nodes"]) == 0
    text = capsys.readouterr().out
    assert "zoom: Scalar? >= 1)" in text and "path: OutPath .png|.jpg|.jpeg|.tif|.tiff)" in text
    assert cli.main(["nodes", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)  # no Infinity
    uncrop = next(n for n in catalogue["nodes"] if n["id"] == "hzsr.uncrop")
    assert uncrop["inputs"][-1]["range"] == [1.0, None]
