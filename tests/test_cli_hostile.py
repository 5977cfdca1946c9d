"""The command line against hostile options (issue 18): --debug-dir over inputs, SIGTERM."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np

from nodegraph import cli

COPY = """\
inputs:
  photo: {type: Path}
  out: {type: OutPath, default: copy.png}
nodes:
  read: {type: image.read, in: {path: inputs.photo}}
  write: {type: image.write, in: {image: read.image, path: inputs.out}}
"""


def _photo(path):
    cv2.imwrite(str(path), (np.arange(24 * 32 * 3) % 251).reshape(24, 32, 3).astype(np.uint8))
    return path


def test_debug_dir_never_writes_over_an_input(write_yaml, tmp_path, capsys):
    graph = write_yaml(COPY)
    debug = tmp_path / "dbg"
    debug.mkdir()
    photo = _photo(debug / "00_read.image.png")  # the name of read.image's debug picture
    before = photo.read_bytes()
    code = cli.main(["run", str(graph), f"--set=photo={photo}", "--out", str(tmp_path / "o.png"),
                     "--debug-dir", str(debug)])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to overwrite it" in err and "--debug-dir" in err
    assert photo.read_bytes() == before and not (tmp_path / "o.png").exists()
    sheet = _photo(debug / "contact_sheet.png")
    os.unlink(photo)
    assert cli.main(["run", str(graph), f"--set=photo={sheet}", "--debug-dir", str(debug)]) == 2
    assert "contact_sheet.png is also an input" in capsys.readouterr().err


def test_debug_dir_writes_what_it_says(write_yaml, tmp_path, capsys):
    graph = write_yaml(COPY)
    photo = _photo(tmp_path / "photo.png")
    debug = tmp_path / "dbg"
    assert cli.main(["run", str(graph), f"--set=photo={photo}", "--out", str(tmp_path / "o.png"),
                     "--debug-dir", str(debug)]) == 0
    assert "wrote 2 debug images" in capsys.readouterr().err
    assert sorted(p.name for p in debug.iterdir()) == ["00_read.image.png", "contact_sheet.png"]


def test_unusable_debug_dir_is_refused_before_any_work(write_yaml, tmp_path, capsys):
    graph = write_yaml(COPY)
    photo = _photo(tmp_path / "photo.png")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for folder in (blocker / "dbg", "/proc/self"):
        code = cli.main(["run", str(graph), f"--set=photo={photo}", "--out", str(tmp_path / "o.png"),
                         "--debug-dir", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"error: --debug-dir {folder}") and "wrote" not in err
        assert len(err.splitlines()) == 1 and not (tmp_path / "o.png").exists()


def test_sigterm_stops_a_write_cleanly_like_ctrl_c(write_yaml, tmp_path):
    graph = write_yaml(COPY)
    photo = _photo(tmp_path / "photo.png")
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    # fsync is where the temporary file is complete but not yet renamed: stall there
    script = textwrap.dedent(f"""
        import os, sys, time
        from nodegraph import cli
        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(30)
        os.fsync = slow_fsync
        sys.exit(cli.main(["run", {str(graph)!r}, "--set=photo={photo}", "--out", {str(out)!r}]))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline().strip()
    if first != "writing":
        process.kill()
        raise AssertionError(f"the child did not reach the write: {first!r} {process.communicate()}")
    assert [p.name for p in tmp_path.glob(".out.png.*.tmp")]  # the temporary file exists now
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert time.perf_counter() - started < 20  # not the 30 s sleep: the signal cut it short
    assert process.returncode == 143 and err.strip().splitlines()[-1] == "terminated"
    assert out.read_bytes() == b"previous result"
    assert not list(tmp_path.glob(".*.tmp"))
