"""The ``nodegraph`` command line (SPEC section 2).

    nodegraph run PIPELINE.yaml [--set NAME=VALUE ...] [--out PATH] [--debug-dir DIR] [--profile]
    nodegraph validate PIPELINE.yaml [--set NAME=VALUE ...]
    nodegraph nodes [--json]
    nodegraph batch PIPELINE.yaml ITEMS --out-dir DIR [--set ...] [--workers N] [--scheduler ADDRESS]
                    [--retries K]                        (see nodegraph/batch.py)

More commands (``eval``, ``train``, ``gui``) are contributed by installed packages through the
entry-point group ``nodegraph.commands``: each entry point is a function ``register(subparsers)``
that adds its sub-command and sets ``handler=fn(args) -> exit code``.

Exit codes: 0 success; 2 invalid graph, options or input files; 1 a node failed while running
(or any other unexpected error: one line, and ``--debug`` shows its traceback); 130
interrupted (SIGINT), 143 terminated (SIGTERM). Both signals stop the run the same way, so a
file being written is cleaned up (writes are atomic) before the process exits.
"""
from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import MESSAGE_LIMIT, GraphError, InputError, NodeError, Problem, clip
from .files import check_output_options
from .memory import reuse_freed_blocks
from .registry import Registry, default_registry

if TYPE_CHECKING:
    from .execute import Cache, Event, RunResult
    from .graph import Graph

# Start-up: the executor, graph model and validation (networkx, PyYAML), the debug renderer
# (OpenCV) and the modules of other commands are imported by the commands that use them, so
# `nodegraph nodes` or `nodegraph train --help` does not load them.

COMMANDS_GROUP = "nodegraph.commands"
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is so that cleanups run as they do for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def load_for_run(source: str | Graph, settings: list[str], registry: Registry,
                 out: str | None = None) -> Graph:
    """Load a graph file (or take an already loaded graph, left unchanged), apply ``--set``
    bindings and ``--out`` (binds the graph input ``out``), and validate it; GraphError lists
    every problem."""
    from .graph import Graph, load_graph, require_loadable
    from .validate import apply_settings, validate

    graph = source if isinstance(source, Graph) else require_loadable(load_graph(source))
    if out is not None:
        if "out" not in graph.inputs:
            raise GraphError([Problem(
                "--out needs a graph input named 'out' (type OutPath); this graph has inputs "
                f"{sorted(graph.inputs) or 'none'}", graph.file, graph.line("inputs"))])
        settings = [*settings, f"out={out}"]
    graph = apply_settings(graph, settings, registry)
    if out is not None:
        graph.bound["out"] = f"--out {out}"  # problems with the path name the option used
    problems = validate(graph, registry)
    if problems:
        raise GraphError(problems)
    return graph


class ProgressBar:
    """Event sink drawing a tqdm bar on a terminal, silent otherwise; prints node warnings and notes."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def __call__(self, event: Event) -> None:
        if event.kind in ("warning", "note"):
            self._write(f"{event.kind}: node '{event.node}': {event.message}")
            return
        if not self._enabled or event.kind not in ("start", "finish"):
            return
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=event.total, unit="node", file=sys.stderr, leave=False)
        if event.kind == "start":
            self._bar.set_description(event.node)
        elif event.kind == "finish":
            self._bar.update(1)

    def _write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            _say(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def profile_table(result: RunResult) -> str:
    rows = [("node", "type", "status", "seconds", "peak MB")]
    for record in result.records.values():
        rows.append((record.name, record.type, record.status, f"{record.seconds:.3f}",
                     f"{record.peak_rss_mb:.0f}"))
    total = sum(r.seconds for r in result.records.values())
    peak = max((r.peak_rss_mb for r in result.records.values()), default=0.0)
    rows.append(("total", "", "", f"{total:.3f}", f"{peak:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def execute(graph: Graph, registry: Registry, *, debug_dir: str | None = None,
            profile: bool = False, cache: Cache | None = None) -> RunResult:
    """Run a validated graph with a progress bar, optional debug images and profile table."""
    from .execute import plan, run_plan, start_warm_ups
    from .render import debug_paths, write_debug_dir

    progress = ProgressBar(sys.stderr.isatty())
    the_plan = plan(graph, registry)
    # the warm-ups import Numba and load its kernels: more start-up objects for the collector
    start_warm_ups((step.spec for step in the_plan.steps), then=_resume_collector)
    pictures = [(step.name, port, ptype) for step in the_plan.steps
                for port, ptype in step.spec.outputs.items() if ptype.previewable]
    debug_files = {}
    if debug_dir is not None:
        _prepare_debug_dir(debug_dir)
        paths = debug_paths(debug_dir, [f"{name}.{port}" for name, port, _ in pictures])
        debug_files = {str(path): "--debug-dir" for path in paths}
    try:
        result = run_plan(the_plan, cache=cache, keep_all=debug_dir is not None, events=progress,
                          also_writes=debug_files)
    finally:
        progress.close()
    if debug_dir is not None:
        items = [(f"{name}.{port}", result.values.get((name, port)), ptype)
                 for name, port, ptype in pictures]
        try:
            written = write_debug_dir(debug_dir, items)
        except OSError as error:
            raise InputError(f"--debug-dir {debug_dir}: cannot write {error.filename or 'a debug image'}: "
                             f"{error.strerror or error}") from None
        _say(f"wrote {len(written)} debug images to {debug_dir}")
    if profile:
        print(profile_table(result))
    return result


def _prepare_debug_dir(debug_dir: str) -> None:
    """Create the --debug-dir folder and check that it can be written, before any work."""
    try:
        os.makedirs(debug_dir, exist_ok=True)
    except OSError as error:
        raise InputError(f"--debug-dir {debug_dir}: cannot create the folder: "
                         f"{error.strerror or error}") from None
    try:  # a real file: permission bits do not tell (root, read-only mounts, /sys)
        with tempfile.TemporaryFile(dir=debug_dir):
            pass
    except OSError as error:
        raise InputError(f"--debug-dir {debug_dir}: cannot write in the folder: "
                         f"{error.strerror or error}") from None


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"array {tuple(shape)}" if shape is not None else repr(value)


def _shown_path(path: str) -> str:
    """``path`` relative to the current folder when it lies inside it, else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def cmd_run(args: argparse.Namespace) -> int:
    check_output_options({"--debug-dir": args.debug_dir}, folders=("--debug-dir",))
    registry = default_registry()
    graph = load_for_run(args.pipeline, list(args.set), registry, args.out)
    result = execute(graph, registry, debug_dir=args.debug_dir, profile=args.profile)
    for name, value in result.outputs.items():
        _say(f"{name}: {_describe(value)}")
    for record in result.records.values():
        for written in record.wrote:
            _say(f"wrote {_shown_path(written)}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .graph import load_graph
    from .validate import apply_settings, validate

    registry = default_registry()
    graph = load_graph(args.pipeline)
    problems = list(graph.load_problems)
    if not problems:
        try:
            graph = apply_settings(graph, list(args.set), registry)
        except GraphError as error:
            problems += error.problems
        problems += validate(graph, registry)
    for problem in problems:
        _say(f"error: {problem}")
    if problems:
        _say(f"{len(problems)} problem(s) in {args.pipeline}")
        return EXIT_INVALID
    print(f"{args.pipeline}: valid ({len(graph.nodes)} nodes)")
    return EXIT_OK


def node_catalogue(registry: Registry) -> dict[str, Any]:
    """Registered node types and plugin failures, as plain data (``nodegraph nodes --json``)."""
    nodes = []
    for spec in registry:
        nodes.append({
            "id": spec.id, "version": spec.version, "source": spec.source, "doc": spec.doc,
            "side_effect": spec.side_effect,
            "inputs": [{"name": i.name, "type": i.type.name, "optional": i.optional,
                        # JSON has no infinity: an open upper bound is null
                        "range": [i.type.range[0], i.type.range[1] if i.type.range[1] < float("inf")
                                  else None] if i.type.range else None,
                        "suffixes": list(i.type.suffixes) or None}
                       for i in spec.inputs.values()],
            "outputs": [{"name": n, "type": t.name} for n, t in spec.outputs.items()],
            "params": [{"name": p.name, "type": p.type.__name__, "default": p.default,
                        "range": list(p.range) if p.range else None,
                        "choices": list(p.choices) if p.choices else None,
                        "unit": p.unit, "doc": p.doc} for p in spec.params.values()],
        })
    failures = [{"name": f.name, "target": f.target, "error": f.error} for f in registry.failures]
    return {"nodes": nodes, "plugin_failures": failures}


def _accepts(port: dict[str, Any]) -> str:
    """What a narrowed input port accepts, as shown by ``nodegraph nodes`` (" >= 1", " .png|.jpg")."""
    if port["range"]:
        low, high = port["range"]
        return f" >= {low:g}" if high is None else f" in [{low:g}, {high:g}]"
    return f" {'|'.join(port['suffixes'])}" if port["suffixes"] else ""


def cmd_nodes(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures are listed below instead
        catalogue = node_catalogue(default_registry())
    if args.json:
        print(json.dumps(catalogue, indent=2, default=str))
        return EXIT_OK
    for entry in catalogue["nodes"]:
        ins = ", ".join(f"{i['name']}: {i['type']}{'?' if i['optional'] else ''}{_accepts(i)}"
                        for i in entry["inputs"])
        outs = ", ".join(f"{o['name']}: {o['type']}" for o in entry["outputs"])
        summary = entry["doc"].strip().splitlines()[0] if entry["doc"].strip() else ""
        print(f"{entry['id']} v{entry['version']} [{entry['source']}]  ({ins}) -> ({outs})")
        if summary:
            print(f"    {summary}")
        for p in entry["params"]:
            bounds = f" in [{p['range'][0]}, {p['range'][1]}]" if p["range"] else ""
            choices = f" one of {p['choices']}" if p["choices"] else ""
            unit = f" {p['unit']}" if p["unit"] else ""
            print(f"    - {p['name']}: {p['type']} = {p['default']!r}{unit}{bounds}{choices}")
    for failure in catalogue["plugin_failures"]:
        print(f"FAILED plugin {failure['name']} ({failure['target']}): {failure['error']}")
    return EXIT_OK


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="bind a graph input (wide=a.jpg), a node parameter (blend.smooth_sigma=2) "
                             "or a node's bypass flag (occlusion.bypass=true); repeatable")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given the ``command`` about to run, of the built-in ones
    and that one: the other commands' modules are then not imported (start-up time)."""
    parser = argparse.ArgumentParser(
        prog="nodegraph", description="Typed node graphs for image pipelines (HZSR built in).")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help="show the traceback of an unexpected error (accepted anywhere)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a pipeline")
    run.add_argument("pipeline", help="graph file (YAML)")
    _add_settings(run)
    run.add_argument("--out", metavar="PATH",
                     help="output file (binds the graph input 'out'); its extension picks the format")
    run.add_argument("--debug-dir", metavar="DIR",
                     help="write every intermediate as PNG plus a contact sheet into DIR")
    run.add_argument("--profile", action="store_true", help="print per-node time and memory")
    run.set_defaults(handler=cmd_run)
    check = sub.add_parser("validate", help="report every problem of a pipeline, exit 2 if any")
    check.add_argument("pipeline", help="graph file (YAML)")
    _add_settings(check)
    check.set_defaults(handler=cmd_validate)
    nodes = sub.add_parser("nodes", help="list registered node types")
    nodes.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    nodes.set_defaults(handler=cmd_nodes)
    if command in (None, "batch"):
        from . import batch  # imported here: it builds on this module's load_for_run
        batch.register(sub)
    for entry_point in importlib.metadata.entry_points(group=COMMANDS_GROUP):
        if command is not None and entry_point.name != command:
            continue
        try:
            register: Callable[[Any], None] = entry_point.load()
            register(sub)
        except Exception as error:  # one broken command must not break the others
            _say(f"warning: command plugin {entry_point.name!r} failed to load: {error}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure becomes one line on stderr and an exit code.

    ``--debug`` (anywhere on the line) lets an unexpected error show its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    parser = build_parser(_command_named(argv))
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return _handle(args)
    except Exception as error:  # a bug or an unforeseen condition: one line, not a traceback
        if debug:
            traceback.print_exc()
        where = f"{args.command}: " if getattr(args, "command", None) else ""
        _say(f"error: {where}unexpected {type(error).__name__}: {clip(str(error), MESSAGE_LIMIT)}"
             + ("" if debug else f" (re-run with {DEBUG_FLAG} to see the traceback)"))
        return EXIT_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


DEBUG_FLAG = "--debug"
BUILT_IN = ("run", "validate", "nodes", "batch")
# Commands after which the process ends without the interpreter's teardown (:func:`console`).
FAST_EXIT = ("run", "validate", "nodes")
_collector_paused = False  # console() paused the cyclic garbage collector for the imports


def _resume_collector() -> None:
    """The collector back on, once the start-up's imports are done (:func:`console`), with
    every object they made frozen (never scanned again); nothing when it was not paused.
    ``run`` calls it when its nodes' warm-ups are done, from their thread."""
    global _collector_paused
    if _collector_paused:
        gc.freeze()
        gc.enable()
        _collector_paused = False


def console() -> NoReturn:
    """The ``nodegraph`` command and ``python -m nodegraph``: :func:`main` on ``sys.argv``,
    then exit with its code.

    After ``run``, ``validate`` and ``nodes`` the process ends at once (``os._exit`` once
    stdout and stderr are flushed): every file they write is closed by then, and the
    interpreter's orderly teardown, mostly freeing the Numba kernels' compiled LLVM modules,
    took ~0.3 s after each run, on the bundled sample and at 12 MP alike. Other commands
    (``batch`` with its Dask cluster, the editor, plugins) exit normally.

    For the same commands the cyclic garbage collector is paused while the libraries and the
    node modules are imported (NumPy, OpenCV, networkx, and on the warm-up thread Numba and
    its kernels: ~60k objects, made once and kept to the end): its ~320 passes over them took
    0.11-0.13 s of every run. ``run`` resumes it when its nodes' warm-ups are done (the first
    nodes run meanwhile): resumed before the first node instead, it spent 0.09-0.10 s on
    Numba's import in every run, 0.013-0.018 s so; ``validate`` and ``nodes`` end first.

    Freed blocks are reused by later ones (:func:`nodegraph.memory.reuse_freed_blocks`).
    """
    global _collector_paused
    reuse_freed_blocks()
    argv = sys.argv[1:]
    fast_exit = _command_named([arg for arg in argv if arg != DEBUG_FLAG]) in FAST_EXIT
    if fast_exit:
        gc.disable()
        _collector_paused = True
    code = main(argv)
    if fast_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _command_named(argv: list[str]) -> str | None:
    """The sub-command ``argv`` runs when it names a known one, else None (help, a typo: the
    parser then lists every command)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in BUILT_IN:
        return command
    names = {entry_point.name for entry_point in importlib.metadata.entry_points(group=COMMANDS_GROUP)}
    return command if command in names else None


def _handle(args: argparse.Namespace) -> int:
    """Run a parsed command, turning the errors that reach users into exit codes."""
    try:
        return args.handler(args)
    except GraphError as error:
        for problem in error.problems:
            _say(f"error: {problem}")
        return EXIT_INVALID
    except InputError as error:
        _say(f"error: {clip(str(error), MESSAGE_LIMIT)}")
        return EXIT_INVALID
    except NodeError as error:
        _say(f"error: {clip(str(error), MESSAGE_LIMIT)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Terminated:
        _say("terminated")
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    console()
