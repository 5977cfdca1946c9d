"""Running a graph: flatten subgraphs, order topologically, reuse cached results.

Every node gets a *recipe key*: a hash of its type and version, its parameters, the keys of
the outputs it reads and, for constant inputs, their values (the content of ``Path`` files,
not just their names). With a :class:`Cache`, a node whose key is unchanged is not run again,
so changing one parameter re-runs only the nodes downstream of it. Without one, each output
value is freed as soon as its last reader has run (per port, not per node) and the freed heap
is handed back to the OS, which keeps peak memory low for one-shot runs. A link that converts
(``PortType.convert``: a CompactImage read by an Image port) is converted for each reading
call; the stored value stays compact.

Per node the executor records wall time, peak resident memory while it ran, the warnings it
raised and whether it ran, came from the cache or was bypassed; the same facts go to an
optional ``events`` callback (progress bars, the editor).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .errors import InputError, NodeError
from .graph import AUTO, INPUTS, Graph, Ref
from .node import NodeSpec, Note, Wrote, bypassed_outputs, call_node
from .registry import Registry
from .subgraph import resolve_spec
from .types import PORT_TYPES, PortType
from .validate import check


@dataclass(frozen=True)
class Const:
    """A constant input value (from a graph input) with its type."""

    value: Any
    type: PortType


@dataclass
class Step:
    """One node of the flattened graph, ready to run."""

    name: str  # "node", or "subgraph/node" inside subgraphs
    spec: NodeSpec
    sources: dict[str, Ref | Const]  # input port -> where its value comes from
    params: dict[str, Any]
    bypass: bool = False


@dataclass
class Plan:
    """A flattened, topologically ordered graph."""

    steps: list[Step]
    outputs: dict[str, Ref | Const]
    graph: Graph


@dataclass
class NodeRecord:
    name: str
    type: str
    status: str = "pending"  # then ran, cached or bypassed (a failure raises instead)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # peak resident memory of the process while the node ran
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wrote: list[str] = field(default_factory=list)  # files the node reported writing


@dataclass
class Event:
    kind: str  # "start", "finish", "warning", "note", "wrote"
    node: str
    index: int
    total: int
    record: NodeRecord
    message: str = ""


@dataclass
class RunResult:
    outputs: dict[str, Any]
    records: dict[str, NodeRecord]
    values: dict[tuple[str, str], Any]  # every kept output value by (node, port)
    seconds: float = 0.0


class Cache:
    """In-process results by node: the latest recipe key and outputs of each node."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, dict[str, Any]]] = {}

    def get(self, node: str, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(node)
        return entry[1] if entry and entry[0] == key else None

    def put(self, node: str, key: str, outputs: dict[str, Any]) -> None:
        self._entries[node] = (key, outputs)  # replaces the stale entry: memory stays bounded

    def clear(self) -> None:
        self._entries.clear()


# ---------------------------------------------------------------- planning

def _input_value(graph: Graph, name: str) -> Const:
    gi = graph.inputs[name]
    ptype = PORT_TYPES[gi.type]
    value = None if gi.default == AUTO else ptype.resolve(gi.default, graph.base_dir)
    return Const(value, ptype)


def plan(graph: Graph, registry: Registry) -> Plan:
    """Validate ``graph`` and flatten it into steps in topological order."""
    check(graph, registry)
    steps: list[Step] = []
    outputs = _flatten(graph, registry, "", {n: _input_value(graph, n) for n in graph.inputs}, steps)
    return Plan(steps, outputs, graph)


def _flatten(graph: Graph, registry: Registry, prefix: str, inputs: dict[str, Ref | Const],
             steps: list[Step], param_overrides: dict[str, Any] | None = None
             ) -> dict[str, Ref | Const]:
    """Append the steps of ``graph`` (names prefixed); return where its outputs come from."""
    exported: dict[str, dict[str, Ref | Const]] = {}  # subgraph node -> its outputs

    def source_of(ref: Ref) -> Ref | Const:
        if ref.node == INPUTS:
            return inputs[ref.port]
        if ref.node in exported:
            return exported[ref.node][ref.port]
        return Ref(prefix + ref.node, ref.port)

    overrides = param_overrides or {}
    # Topological order (subgraphs expand before their readers resolve links into them);
    # ties keep file order, so runs and progress bars are repeatable.
    dag = graph.dependencies()
    position = {name: i for i, name in enumerate(graph.nodes)}
    for name in nx.lexicographical_topological_sort(dag, key=position.__getitem__):
        inst = graph.nodes[name]
        spec = resolve_spec(graph, inst.type, registry)
        params = {**spec.default_params(), **inst.params}
        params.update({k.split(".", 1)[1]: v for k, v in overrides.items()
                       if k.split(".", 1)[0] == name})
        sources = {port: source_of(ref) for port, ref in inst.links.items()}
        if spec.subgraph is not None and not inst.bypass:
            inner_inputs = {}
            for port in spec.inputs:
                inner_inputs[port] = sources.get(port) or _input_value(spec.subgraph, port)
            exported[name] = _flatten(spec.subgraph, registry, f"{prefix}{name}/", inner_inputs,
                                      steps, params)
            continue
        steps.append(Step(prefix + name, spec, sources, params, inst.bypass))
    return {out: source_of(ref) for out, ref in graph.outputs.items()}


# ---------------------------------------------------------------- hashing

def recipe_key(step: Step, upstream: dict[str, str]) -> str:
    """Hash of what determines a step's outputs."""
    sources = {}
    for port, source in sorted(step.sources.items()):
        sources[port] = (f"ref:{upstream[source.node]}:{source.port}" if isinstance(source, Ref)
                         else source.type.cache_token(source.value))
    fingerprint = step.spec.fingerprint(step.params) if step.spec.fingerprint and not step.bypass else ""
    recipe = [step.spec.id, step.spec.version, step.bypass, sorted(step.params.items(), key=str),
              sources, fingerprint]
    return hashlib.blake2b(json.dumps(recipe, default=repr).encode(), digest_size=16).hexdigest()


# ---------------------------------------------------------------- memory

def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: fall back to the process high-water mark
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakMemory:
    """Samples resident memory in a background thread; ``window()`` gives the peak since reset."""

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, _rss_bytes())

    def reset(self) -> None:
        self._peak = _rss_bytes()

    def window(self) -> float:
        self._peak = max(self._peak, _rss_bytes())
        return self._peak / 2**20


def _load_malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0), or a no-op elsewhere.

    Nodes free many mid-sized buffers (onnxruntime activations, OpenCV temporaries) that glibc
    keeps in its heaps rather than giving back; trimming after each node returns them, so the
    next node's peak does not stack on the last one's garbage (measured at 12 MP: -160 MB at
    the blend and the uncrop). A few milliseconds per node.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


_malloc_trim = _load_malloc_trim()


# ---------------------------------------------------------------- running

def _check_paths(steps: list[Step], also_writes: dict[str, str]) -> None:
    """Refuse missing input files and outputs that would overwrite an input; ``also_writes``
    maps files written besides the graph's outputs (debug pictures) to who writes them."""
    reads: dict[str, str] = {}
    writes: dict[str, str] = {os.path.realpath(path): where for path, where in also_writes.items()}
    for step in steps:
        for port, source in step.sources.items():
            if isinstance(source, Const) and source.value is not None:
                where = f"node '{step.name}', input '{port}'"
                if source.type.file_role == "read":
                    if not os.path.isfile(source.value):
                        missing = "not a regular file" if os.path.exists(source.value) else "file not found"
                        raise InputError(f"{where}: {missing}: {source.value}")
                    reads[os.path.realpath(source.value)] = where
                elif source.type.file_role == "write":
                    writes[os.path.realpath(source.value)] = where
    for path, where in writes.items():
        if path in reads:
            raise InputError(f"{where}: the output {path} is also an input ({reads[path]}); "
                             "refusing to overwrite it")


def step_inputs(step: Step, values: dict[tuple[str, str], Any],
                output_types: dict[tuple[str, str], PortType]) -> dict[str, Any]:
    """The values a step reads, each converted to its input port's type where the link converts
    (``PortType.convert``: a CompactImage read by an Image port becomes float32 for this call)."""
    inputs = {}
    for port, source in step.sources.items():
        target = step.spec.inputs[port].type
        if isinstance(source, Ref):
            inputs[port] = output_types[(source.node, source.port)].convert(
                values[(source.node, source.port)], target)
        else:
            inputs[port] = source.type.convert(source.value, target)
    return inputs


def run_plan(the_plan: Plan, *, cache: Cache | None = None, keep_all: bool = False,
             events: Callable[[Event], None] | None = None,
             also_writes: dict[str, str] | None = None) -> RunResult:
    """Run the steps of a plan in order and return the graph outputs and per-node records.

    Before any step runs, missing input files, and outputs (the graph's, and the files in
    ``also_writes``: path -> who writes it) that would overwrite an input, raise InputError.
    """
    steps = the_plan.steps
    _check_paths(steps, also_writes or {})
    # readers per output port: a value is dropped after its own last reader, not after the
    # last reader of any output of its node (align's I_ref need not live until the uncrop)
    readers: dict[tuple[str, str], int] = {}
    for step in steps:
        for source in step.sources.values():
            if isinstance(source, Ref):
                readers[(source.node, source.port)] = readers.get((source.node, source.port), 0) + 1
    needed = {(s.node, s.port) for s in the_plan.outputs.values() if isinstance(s, Ref)}
    output_types = {(s.name, port): ptype for s in steps for port, ptype in s.spec.outputs.items()}
    values: dict[tuple[str, str], Any] = {}
    keys: dict[str, str] = {}
    records = {s.name: NodeRecord(s.name, s.spec.id) for s in steps}
    emit = events or (lambda event: None)
    started = time.perf_counter()
    with _PeakMemory() as memory:
        for index, step in enumerate(steps):
            record = records[step.name]
            emit(Event("start", step.name, index, len(steps), record))
            key = keys[step.name] = recipe_key(step, keys)
            inputs = step_inputs(step, values, output_types)
            memory.reset()
            t0 = time.perf_counter()
            outputs = None if step.spec.side_effect or cache is None else cache.get(step.name, key)
            if outputs is not None:
                record.status = "cached"
            elif step.bypass:
                outputs, record.status = bypassed_outputs(step.spec, inputs), "bypassed"
            else:
                outputs = _call(step, inputs, record, index, len(steps), emit)
                record.status = "ran"
                if cache is not None and not step.spec.side_effect:
                    cache.put(step.name, key, outputs)
            record.seconds = time.perf_counter() - t0
            record.peak_rss_mb = memory.window()
            del inputs
            for port, value in outputs.items():
                values[(step.name, port)] = value
            emit(Event("finish", step.name, index, len(steps), record))
            if not keep_all:
                _release(step, values, readers, needed)
                _malloc_trim()
    result_outputs = {name: (values[(s.node, s.port)] if isinstance(s, Ref) else s.value)
                      for name, s in the_plan.outputs.items()}
    return RunResult(result_outputs, records, values, time.perf_counter() - started)


def _release(step: Step, values: dict[tuple[str, str], Any], readers: dict[tuple[str, str], int],
             needed: set[tuple[str, str]]) -> None:
    """Drop the values no later step reads: the inputs ``step`` was the last reader of, and its
    own outputs that nothing reads."""
    for source in step.sources.values():
        if isinstance(source, Ref):
            key = (source.node, source.port)
            readers[key] -= 1
            if readers[key] == 0 and key not in needed:
                values.pop(key, None)
    for port in step.spec.outputs:
        key = (step.name, port)
        if readers.get(key, 0) == 0 and key not in needed:
            values.pop(key, None)


def _call(step: Step, inputs: dict[str, Any], record: NodeRecord, index: int, total: int,
          emit: Callable[[Event], None]) -> dict[str, Any]:
    for port, in_spec in step.spec.inputs.items():
        inputs.setdefault(port, None)
        if inputs[port] is None and not in_spec.optional:
            raise NodeError(step.name, step.spec.id, ValueError(
                f"required input '{port}' received no value (an upstream node gave none)"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outputs = call_node(step.spec, inputs, step.params)
        except InputError as error:
            raise InputError(f"node '{step.name}' ({step.spec.id}): {error}") from error
        except Exception as error:
            raise NodeError(step.name, step.spec.id, error) from error
    for warning in caught:
        message = str(warning.message)
        kind = ("wrote" if issubclass(warning.category, Wrote) else
                "note" if issubclass(warning.category, Note) else "warning")
        {"wrote": record.wrote, "note": record.notes, "warning": record.warnings}[kind].append(message)
        emit(Event(kind, step.name, index, total, record, message))
    for port, value in outputs.items():
        problem = None if value is None else step.spec.outputs[port].problem_with(value)
        if problem:
            raise NodeError(step.name, step.spec.id, TypeError(f"output '{port}': {problem}"))
    return outputs


def run_graph(graph: Graph, registry: Registry, **options: Any) -> RunResult:
    """Validate, plan and run ``graph``; options as for :func:`run_plan`."""
    return run_plan(plan(graph, registry), **options)

