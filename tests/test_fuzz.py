"""Fuzzing the command line with hostile inputs (issue 18).

A seeded generator mutates the shipped graph files (values replaced by hostile ones, keys
deleted, renamed or repeated, lines cut, aliases, tags, control characters, deep nesting,
subgraphs that are pipes, devices or folders) and ``--set`` values (nan, inf, 1e308, 1_0,
files that are not images or models...). Each case goes through ``nodegraph validate`` and,
when it validates, through ``nodegraph run`` on a tiny wide/tele pair. A corpus of bad images
(generated here) goes through ``run`` as each camera. Every outcome must be exit 0, 1 or 2
with bounded output, at most one ``error:`` line for a run, no traceback, no hang, and no
input file changed. Cases run in-process through ``nodegraph.cli.main`` (a few seconds of
start-up each would not fit in CI); a sample of the worst ones also runs in a subprocess,
whose CPU time and peak memory are checked.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from nodegraph import cli

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "pipelines" / "hzsr.yaml", *sorted((REPO / "pipelines" / "ablations").glob("*.yaml")),
           REPO / "examples" / "plugin" / "posterize.yaml"]
SAMPLE = REPO / "nodes" / "hzsr" / "sample"
SEED = 18
YAML_CASES = 420
SET_CASES = 120
CASE_SECONDS = 60  # longer is a hang (the first run compiles kernels; shared machines are slow)
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LINE_LIMIT = 1000  # characters of one output line
OUTPUT_LIMIT = 20_000  # characters of one case's output


class Hang(BaseException):
    """Raised by the alarm in a case that runs too long (a BaseException: nothing catches it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(argv: list[str]) -> tuple[int, str]:
    """Exit code and output (stdout + stderr) of ``nodegraph ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(CASE_SECONDS):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue() + err.getvalue()


def check_outcome(code: int, output: str, what: str, run_of: str | None = None) -> None:
    """Exit 0, 1 or 2; bounded output without a traceback; a failure says why in an ``error:``
    line. A failed run (``run_of``: its graph file) says it in one line, unless it lists
    problems of the graph file, one per line, as validate does."""
    assert code in (0, 1, 2), f"{what}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output, f"{what}:\n{output[-3000:]}"
    assert len(output) <= OUTPUT_LIMIT, f"{what}: {len(output)} characters of output"
    lines = output.splitlines()
    assert all(len(line) <= LINE_LIMIT for line in lines), f"{what}: a line of {max(map(len, lines))}"
    errors = [line for line in lines if line.startswith("error:")]
    if code != 0:
        assert errors, f"{what}: exit {code} without an error line:\n{output[-2000:]}"
    if run_of is not None and code != 0:
        graph_problems = all(line.startswith(f"error: {run_of}") for line in errors)
        assert len(errors) == 1 or graph_problems, f"{what}: more than one error line:\n{output}"


def digests(folder: Path) -> dict[str, str]:
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            result[str(path)] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    return result


# ---------------------------------------------------------------- inputs

def tiny_pair(folder: Path) -> tuple[Path, Path]:
    """The bundled sample pair shrunk to 120x80: every node runs, in about half a second."""
    paths = []
    for name in ("wide", "tele"):
        image = cv2.imread(str(SAMPLE / f"{name}.jpg"))
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.resize(image, (120, 80), interpolation=cv2.INTER_AREA))
        paths.append(path)
    return paths[0], paths[1]


def subgraph_targets(folder: Path) -> list[str]:
    """Files a subgraph ``type:`` may name that are not graph files one can read."""
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "folder.yaml").mkdir()
    (folder / "big.yaml").write_text("# padding\n" * 40_000)
    (folder / "loop_a.yaml").write_text("nodes:\n  b: {type: loop_b.yaml}\n")
    (folder / "loop_b.yaml").write_text("nodes:\n  a: {type: loop_a.yaml}\n")
    (folder / "binary.yaml").write_bytes(b"nodes:\n  \xff\xfe: 1\n")
    return ["fifo.yaml", "zero.yaml", "folder.yaml", "big.yaml", "loop_a.yaml", "binary.yaml",
            "missing.yaml", "/dev/null.yaml"]


def hostile_values(rng: random.Random, targets: list[str]) -> list:
    nested: object = 1
    for _ in range(40):
        nested = [nested]
    return [None, "", " ", 0, -1, 1e308, float("nan"), float("inf"), -float("inf"), True,
            "auto", "x" * rng.choice((300, 100_000)), [], {}, [1, 2], {"a": 1}, nested,
            "inputs.nowhere", "nowhere.port", "read_wide.image", "align.src", "../../../../etc/passwd",
            "/dev/zero", "hzsr.nosuch", "Path", "Scalar", "Image", "image.read", 10**30, "1_0",
            "é" * 50, "a.b.c", ".", "inputs.", *targets]


# ---------------------------------------------------------------- YAML mutations

def _paths(data, prefix=()):
    """Every key path of a nested dict/list structure."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield prefix + (index,)
            yield from _paths(value, prefix + (index,))


def _parent(data, path):
    for key in path[:-1]:
        data = data[key]
    return data


TEXT_SNIPPETS = [
    "bomb: &a [x, x, x, x, x, x, x, x, x]\nbomb2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
    "x: !!python/object/apply:os.system ['echo owned']\n",
    "x: !!float abc\n", "x: !custom thing\n", "x: !!binary aGVsbG8=\n", "<<: {type: image.read}\n",
    "? [a, b]\n: 1\n", "x: \x00\n", "x: \x07bell\n", "\tx: 1\n", "x: " + "[" * 500 + "]" * 500 + "\n",
    "x: &anchor 1\ny: *anchor\n", "x: *undefined\n", "%YAML 1.1\n---\n", "---\n---\n", "x: '\n",
    "x: 2020-13-45\n", "x: !!int 1e400\n", "x: " + "9" * 5000 + "\n",
]


def mutate_yaml(rng: random.Random, source: Path, values: list) -> bytes:
    """One mutation of a shipped graph file, as the bytes of a file."""
    data = yaml.load(source.read_text(), Loader=FAST_LOADER)
    kind = rng.choice(["replace", "replace", "replace", "delete", "rename", "add", "type",
                       "line_dup", "line_drop", "truncate", "snippet", "bytes", "indent"])
    paths = list(_paths(data))
    path = rng.choice(paths)
    if kind == "replace":
        _parent(data, path)[path[-1]] = rng.choice(values)
    elif kind == "delete":
        del _parent(data, path)[path[-1]]
    elif kind == "rename" and isinstance(_parent(data, path), dict):
        parent = _parent(data, path)
        parent[rng.choice(["", "inputs", "a.b", "x" * 2000, "type", "nodes", "0"])] = parent.pop(path[-1])
    elif kind == "add":
        parent = _parent(data, path)
        if isinstance(parent, dict):
            parent[rng.choice(["extra", "range", "bypass", "default", "doc", "in"])] = rng.choice(values)
    elif kind == "type":
        node = rng.choice(list(data["nodes"]))
        data["nodes"][node]["type"] = rng.choice(values)
    text = yaml.dump(data, Dumper=FAST_DUMPER, sort_keys=False, allow_unicode=True, width=100)
    lines = text.splitlines(keepends=True)
    at = rng.randrange(len(lines))
    if kind == "line_dup":
        lines.insert(at, lines[at])
    elif kind == "line_drop":
        del lines[at]
    elif kind == "truncate":
        return text[:rng.randrange(len(text))].encode()
    elif kind == "snippet":
        indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
        snippet = rng.choice(TEXT_SNIPPETS)
        lines.insert(at, "".join(indent + line + "\n" for line in snippet.splitlines()))
    elif kind == "bytes":
        raw = bytearray("".join(lines).encode())
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    elif kind == "indent":
        lines[at] = " " * rng.choice((1, 3, 7)) + lines[at]
    return "".join(lines).encode()


SET_NAMES = ["zoom", "ratio", "focus_roi", "wide", "tele", "out", "defocus.gamma", "defocus.k",
             "blend.smooth_sigma", "flow.method", "flow.work_height", "fusion.model",
             "flow.onnx_model", "read_wide.max_megapixels", "read_tele.min_side", "uncrop.feather",
             "nosuch", "", "defocus.", ".x", "defocus.nosuch", "write.bit_depth"]
SET_VALUES = ["nan", "-nan", "inf", "-inf", "1e308", "1e400", "1_0", "0x10", "", " ", "auto", "none",
              "-1", "0", "1", "2", "20", "21", "100", "1e-300", "x" * 10_000, "1,2,3,4",
              "nan,0,10,10", "0,0,1e308,1", "10,10,inf,20", "/etc/passwd", "/dev/zero", "/", "true",
              "é", "\t2", "onnx", "16", "=", "a=b"]


# ---------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    inputs = root / "in"
    inputs.mkdir()
    wide, tele = tiny_pair(inputs)
    targets = subgraph_targets(inputs)
    return root, inputs, wide, tele, targets


def run_args(wide: Path, tele: Path, out: Path) -> list[str]:
    return [*pair_args(wide, tele), f"--set=out={out}"]


def pair_args(wide: Path, tele: Path, source: Path | None = None) -> list[str]:
    """The --set options binding the tiny pair to the inputs of a (mutated) shipped graph: the
    defaults name sample files relative to the shipped file, which a copy elsewhere lacks."""
    if source is not None and source.name == "posterize.yaml":
        return [f"--set=photo={wide}"]
    return [f"--set=wide={wide}", f"--set=tele={tele}", "--set=ratio=2"]


def test_fuzzed_graph_files_and_settings(workspace, monkeypatch):
    root, inputs, wide, tele, targets = workspace
    monkeypatch.chdir(root)
    rng = random.Random(SEED)
    values = hostile_values(rng, targets)
    shipped_before = {p: p.read_bytes() for p in SHIPPED}
    cases: list[tuple[Path, list[str], list[str]]] = []  # (file, pair bindings, mutated settings)
    for i in range(YAML_CASES):
        path = inputs / f"case{i:03d}.yaml"
        source = rng.choice(SHIPPED)
        path.write_bytes(mutate_yaml(rng, source, values))
        cases.append((path, pair_args(wide, tele, source), []))
    base = inputs / "base.yaml"
    base.write_bytes((REPO / "pipelines" / "hzsr.yaml").read_bytes())
    for _ in range(SET_CASES):
        settings = [f"--set={rng.choice(SET_NAMES)}={rng.choice(SET_VALUES)}"
                    for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.1:
            settings.append(f"--set=out={rng.choice((wide, tele, base))}")  # an input as output
        cases.append((base, pair_args(wide, tele), settings))
    before = digests(inputs)
    outcomes: dict[str, int] = {}
    ran: dict[str, int] = {}
    seen_runs: set[str] = set()
    started = time.perf_counter()
    for index, (path, pair, settings) in enumerate(cases):
        what = f"case {index}: {path.name} {settings}"
        code, output = call(["validate", str(path), *pair, *settings])
        check_outcome(code, output, what)
        outcomes[f"validate {code}"] = outcomes.get(f"validate {code}", 0) + 1
        if code != 0:
            continue
        # Graphs that differ only in documentation run the same way: run each recipe once.
        recipe = json.dumps([_without_docs(yaml.load(path.read_text(), Loader=FAST_LOADER)), settings],
                            default=str)
        if recipe in seen_runs:
            continue
        seen_runs.add(recipe)
        out = root / "out" / f"{index}.png"
        code, output = call(["run", str(path), *pair, f"--set=out={out}", *settings])
        check_outcome(code, output, what + " (run)", run_of=str(path))
        ran[f"run {code}"] = ran.get(f"run {code}", 0) + 1
        assert digests(inputs) == before, f"{what}: an input file changed"
    assert len(cases) >= 500
    assert {p: p.read_bytes() for p in SHIPPED} == shipped_before
    assert not list(inputs.glob(".*.tmp")) and not list((root / "out").glob(".*.tmp"))
    # The generator must reach both outcomes, or it tests little.
    assert outcomes.get("validate 2", 0) > 100 and outcomes.get("validate 0", 0) > 20, outcomes
    assert ran.get("run 0", 0) > 5, ran
    print(f"\n{len(cases)} cases in {time.perf_counter() - started:.0f} s: {outcomes}, {ran}")


def _without_docs(data):
    if isinstance(data, dict):
        return {k: _without_docs(v) for k, v in data.items() if k not in ("doc", "description", "ui")}
    if isinstance(data, list):
        return [_without_docs(v) for v in data]
    return data


# ---------------------------------------------------------------- bad images

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, rows: int = 0) -> bytes:
    """A grey PNG whose header declares width x height; ``rows`` rows of zeros are stored."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def jpeg_with_focal(image: np.ndarray, focal) -> bytes:
    from PIL import Image as PilImage
    pil = PilImage.fromarray(image)
    exif = PilImage.Exif()
    exif.get_ifd(0x8769)[0xA405] = focal
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def bad_images(folder: Path, wide: Path) -> dict[str, Path]:
    good = wide.read_bytes()
    pixels = cv2.imread(str(wide))[:, :, ::-1].copy()
    ok, jpeg = cv2.imencode(".jpg", pixels[:, :, ::-1])
    from PIL.TiffImagePlugin import IFDRational
    files = {
        "bomb_20000x20000": png_claiming(20000, 20000),  # a real one is 389 kB; the header suffices
        "bomb_60000x60000": png_claiming(60000, 60000),
        "tall_1x300000000": png_claiming(1, 300_000_000),
        "one_pixel": png_claiming(1, 1, rows=1),
        "thin_4000x8": png_claiming(4000, 8, rows=8),
        "thin_8x4000": png_claiming(8, 4000, rows=4000),
        "sliver_4000x32": png_claiming(4000, 32, rows=32),
        "small_31x31": png_claiming(31, 31, rows=31),
        "header_only_100x100": png_claiming(100, 100),
        "empty": b"",
        "text": b"hello, I am not an image\n",
        "random": bytes(random.Random(1).randrange(256) for _ in range(5000)),
        "truncated_png": good[:len(good) // 2],
        "truncated_jpeg": jpeg.tobytes()[:len(jpeg) // 2],
        "png_bad_crc": good[:29] + bytes([good[29] ^ 0xFF]) + good[30:],
        "png_signature_only": good[:8],
        "focal_100000": jpeg_with_focal(pixels, 100000),
        "focal_nan": jpeg_with_focal(pixels, IFDRational(0, 0)),
        "focal_negative": jpeg_with_focal(pixels, IFDRational(-26, 1)),
    }
    paths = {}
    for name, payload in files.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(payload)
    os.mkfifo(folder / "fifo.png")
    paths["fifo"] = folder / "fifo.png"
    (folder / "zero.png").symlink_to("/dev/zero")
    paths["dev_zero"] = folder / "zero.png"
    (folder / "folder.png").mkdir()
    paths["folder"] = folder / "folder.png"
    return paths


def test_bad_images_as_either_camera(workspace, monkeypatch):
    root, _inputs, wide, tele, _targets = workspace
    folder = root / "images"
    folder.mkdir()
    monkeypatch.chdir(root)
    images = bad_images(folder, wide)
    before = digests(folder) | digests(wide.parent)
    pipeline = str(REPO / "pipelines" / "hzsr.yaml")
    codes = {}
    for name, path in images.items():
        for role in ("wide", "tele"):
            pair = {"wide": wide, "tele": tele, role: path}
            out = root / "out_images" / f"{name}_{role}.png"
            code, output = call(["run", pipeline, *run_args(pair["wide"], pair["tele"], out)])
            check_outcome(code, output, f"{name} as {role}", run_of=pipeline)
            codes[(name, role)] = code
    assert digests(folder) | digests(wide.parent) == before
    for name in ("bomb_20000x20000", "bomb_60000x60000", "tall_1x300000000", "one_pixel",
                 "thin_4000x8", "thin_8x4000", "empty", "text", "fifo", "dev_zero", "folder"):
        assert codes[(name, "wide")] == codes[(name, "tele")] == 2, name


def test_exif_focal_lengths_that_make_no_sense_are_ignored_with_a_note(workspace, monkeypatch):
    root, _inputs, wide, tele, _targets = workspace
    monkeypatch.chdir(root)
    pixels = cv2.imread(str(SAMPLE / "tele.jpg"))[:, :, ::-1].copy()
    silly = root / "tele_focal_100000.jpg"
    silly.write_bytes(jpeg_with_focal(pixels, 100000))
    code, output = call(["run", str(REPO / "pipelines" / "hzsr.yaml"), f"--set=tele={silly}",
                         f"--set=out={root / 'silly.png'}"])
    assert code == 0, output
    assert "note: node 'ratio': ignoring the field-of-view ratio 3846 from the EXIF" in output
    assert "note: node 'align': tele footprint" in output  # registration measured it instead


# ---------------------------------------------------------------- a sample in a subprocess

_MEASURED = ("import resource, sys; from nodegraph import cli; code = cli.main(sys.argv[1:]); "
             "use = resource.getrusage(resource.RUSAGE_SELF); "
             "print('usage', use.ru_utime + use.ru_stime, use.ru_maxrss, file=sys.stderr); "
             "sys.exit(code)")


def run_process(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, output, CPU seconds, peak resident MB) of ``nodegraph ARGS`` in a new process.

    CPU time rather than wall time: the shared CI machine may be slow, not the command."""
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    usage = [line.split() for line in lines if line.startswith("usage ")]
    output = "\n".join(line for line in lines if not line.startswith("usage "))
    cpu, peak_kb = (float(usage[0][1]), int(usage[0][2])) if usage else (0.0, 0)
    return done.returncode, output, cpu, peak_kb / 1024


def alias_bomb() -> str:
    """The issue's file: nested anchors under ui: (9^10 strings once expanded), an alias as a
    parameter."""
    lines = ["schema_version: 1", "ui:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines += ["nodes:", "  blur:", "    type: image.blur", "    params:", "      sigma: *l9"]
    return "\n".join(lines) + "\n"


def real_bomb_png(path: Path) -> None:
    """A valid 20000x20000 grey PNG (about 400 kB): 400 MP, 4.8 GB as float RGB."""
    path.write_bytes(png_claiming(20000, 20000, rows=20000))


def test_reproducers_in_a_subprocess_end_fast_small_and_in_one_line(workspace, tmp_path):
    _root, _inputs, wide, tele, _targets = workspace
    pipeline = str(REPO / "pipelines" / "hzsr.yaml")
    bomb = tmp_path / "bomb.png"
    real_bomb_png(bomb)
    (tmp_path / "alias_bomb.yaml").write_text(alias_bomb())
    debug = tmp_path / "dbg"
    debug.mkdir()
    (debug / "00_read_wide.image.png").write_bytes(wide.read_bytes())
    (debug / "contact_sheet.png").write_bytes(tele.read_bytes())
    before = digests(tmp_path) | digests(wide.parent)
    cases = {
        "bomb as wide": (["run", pipeline, f"--set=wide={bomb}", "--out", "o1.png"], 2),
        "bomb as tele": (["run", pipeline, f"--set=tele={bomb}", "--out", "o2.png"], 2),
        "alias bomb": (["validate", "alias_bomb.yaml"], 2),
        "fusion model": (["run", pipeline, "--set=fusion.model=/etc/passwd", "--out", "o3.png"], 2),
        "flow model": (["run", pipeline, "--set=flow.method=onnx", "--set=flow.onnx_model=/etc/passwd",
                        "--out", "o4.png"], 2),
        "debug dir over inputs": (["run", pipeline, f"--set=wide={debug / '00_read_wide.image.png'}",
                                   f"--set=tele={debug / 'contact_sheet.png'}", "--debug-dir",
                                   str(debug), "--out", "o5.png"], 2),
    }
    for what, (args, expected) in cases.items():
        code, output, cpu_seconds, peak_mb = run_process(args, tmp_path)
        check_outcome(code, output, what, run_of=args[1] if args[0] == "run" else None)
        assert code == expected, f"{what}: {output}"
        assert 0 < cpu_seconds < 10 and peak_mb < 1024, f"{what}: {cpu_seconds:.1f} s, {peak_mb:.0f} MB"
        assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1, output
    assert digests(tmp_path) | digests(wide.parent) == before
