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

**Strips.** Nodes declared local (``@node(..., local=Local(halo=r, whole=...))``, see
``nodegraph/node.py``) that follow each other in the run order and are linked form a *chain*
(:func:`local_chains`). A chain runs strip by strip: for output rows [y0, y1) each member gets
its inputs' rows widened by its own halo and by the halos of the members that read it (the
overlap is recomputed, never exchanged), so a value passed inside the chain only ever exists
as strips (a node with a grid of its own, ``Local(frame=...)``, computes the rows it is asked
for from inputs read whole). Only the chain's *exported* values, read by a node outside it
or a graph output, are assembled at full size; inputs read whole are converted once per
chain. Strips after the first run in a thread pool, one worker per available core (the
kernels inside release the GIL). Per node, the seconds recorded are the chain's wall time
shared among its members in proportion to the time their strips took (strips on several
threads overlap: their sum was thread-seconds, up to the core count times the wall time),
the peak memory that of the whole chain. A run that keeps every value
(``keep_all``: ``--debug-dir``, the editor) runs local nodes whole, as the values it shows
are full images anyway; a chain whose frames disagree (inputs of different sizes) or that
misses a required input also runs whole, so its error is the usual one. With a cache, a
chain is cached as a unit: its members' exported values under their keys, and it is reused
when every member's key is unchanged. An exported output declared ``Local(in_place=...)`` is
assembled over its input's array when nothing else holds that array (no cache, no later
reader, not a graph output, no other value sharing its memory): see :meth:`_Run._donor`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from .cores import thread_share
from .errors import InputError, NodeError
from .files import source_digest
from .graph import AUTO, INPUTS, Graph, Ref
from .memory import release_free_heap
from .node import NodeSpec, Note, Wrote, _strip, bypassed_outputs, call_node
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
    strips: int = 0  # strips it ran on (0: a whole-image call)


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

    def get(self, node: str, key: str, ports: Any = ()) -> dict[str, Any] | None:
        """The outputs stored for ``node`` under ``key``, if they include all of ``ports`` (a
        chain run stores only the values that leave the chain)."""
        entry = self._entries.get(node)
        if not entry or entry[0] != key or not all(port in entry[1] for port in ports):
            return None
        return entry[1]

    def put(self, node: str, key: str, outputs: dict[str, Any]) -> None:
        self._entries[node] = (key, outputs)  # replaces the stale entry: memory stays bounded

    def discard(self, node: str) -> None:
        """Drop ``node``'s entry: the run is about to replace it (a key that changed)."""
        self._entries.pop(node, None)

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
    """Hash of what determines a step's outputs: the node type, its version and the source of
    its package (:func:`nodegraph.files.source_digest`), parameters, inputs (upstream keys, the
    content of files read) and the node's own fingerprint."""
    sources = {}
    for port, source in sorted(step.sources.items()):
        sources[port] = (f"ref:{upstream[source.node]}:{source.port}" if isinstance(source, Ref)
                         else source.type.cache_token(source.value))
    fingerprint = step.spec.fingerprint(step.params) if step.spec.fingerprint and not step.bypass else ""
    # the code that computes it: a subgraph's own steps are keyed by theirs
    code = source_digest(step.spec.func.__module__ if step.spec.func is not None else __name__)
    recipe = [step.spec.id, step.spec.version, code, step.bypass, sorted(step.params.items(), key=str),
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
        self._window = 0  # counts resets: a sample taken before one must not land after it
        self._lock = threading.Lock()
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
            window = self._window
            rss = _rss_bytes()
            with self._lock:
                if window == self._window:
                    self._peak = max(self._peak, rss)

    def reset(self) -> None:
        with self._lock:
            self._window += 1
            self._peak = _rss_bytes()

    def window(self) -> float:
        self._peak = max(self._peak, _rss_bytes())
        return self._peak / 2**20


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
                output_types: dict[tuple[str, str], PortType], skip: Any = ()) -> dict[str, Any]:
    """The values a step reads (but the ports in ``skip``), each converted to its input port's
    type where the link converts (``PortType.convert``: a CompactImage read by an Image port
    becomes float32 for this call)."""
    inputs = {}
    for port, source in step.sources.items():
        if port in skip:
            continue
        target = step.spec.inputs[port].type
        if isinstance(source, Ref):
            inputs[port] = output_types[(source.node, source.port)].convert(
                values[(source.node, source.port)], target)
        else:
            inputs[port] = source.type.convert(source.value, target)
    return inputs


_warm_ups_started: set[str] = set()
_warm_ups_lock = threading.Lock()


def start_warm_ups(specs: Iterable[NodeSpec], then: Callable[[], None] | None = None
                   ) -> threading.Thread | None:
    """Run the ``warm_up`` of each node type in ``specs`` not yet started in this process,
    one after another on a daemon thread (None when there is none to start), then ``then``
    (on that thread; at once when there is nothing to start).

    One-time start-up work (a JIT loading its compiled kernels) then overlaps the nodes that
    run before the ones needing it, which mostly wait in C code that releases the GIL
    (decoding, OpenCV). A warm-up that fails is dropped: it is only ahead-of-time work, and the
    node meets the same problem on its own call, where it is reported."""
    with _warm_ups_lock:
        pending = {spec.id: spec.warm_up for spec in specs
                   if spec.warm_up is not None and spec.id not in _warm_ups_started}
        _warm_ups_started.update(pending)
    if not pending:
        if then is not None:
            then()
        return None

    def warm_all() -> None:
        for warm_up in pending.values():
            try:
                warm_up()
            except Exception:  # noqa: BLE001, S110 - see the docstring
                pass
        if then is not None:
            then()

    thread = threading.Thread(target=warm_all, name="nodegraph-warm-up", daemon=True)
    thread.start()
    return thread


def run_plan(the_plan: Plan, *, cache: Cache | None = None, keep_all: bool = False,
             events: Callable[[Event], None] | None = None,
             also_writes: dict[str, str] | None = None, strip_rows: int | None = None,
             workers: int | None = None) -> RunResult:
    """Run the steps of a plan in order and return the graph outputs and per-node records.

    Before any step runs, missing input files, and outputs (the graph's, and the files in
    ``also_writes``: path -> who writes it) that would overwrite an input, raise InputError.
    Chains of local nodes run in strips of ``strip_rows`` rows (default: about a megapixel,
    at least twice the chain's halo) on ``workers`` threads (default: this process's share of
    the cores, ``nodegraph.cores.thread_share``: a batch worker's share, else every core it may use).
    """
    steps = the_plan.steps
    _check_paths(steps, also_writes or {})
    start_warm_ups(step.spec for step in steps)
    run = _Run(the_plan, cache, keep_all, events or (lambda event: None), strip_rows,
               workers or thread_share())
    chains = {} if keep_all else {chain[0].name: chain for chain in local_chains(steps)}
    chained = {step.name for chain in chains.values() for step in chain}
    started = time.perf_counter()
    with _PeakMemory() as run.memory:
        for index, step in enumerate(steps):
            if step.name in chains:
                run.chain(chains[step.name])
            elif step.name not in chained:
                run.step(index, step)
    result_outputs = {name: (run.values[(s.node, s.port)] if isinstance(s, Ref) else s.value)
                      for name, s in the_plan.outputs.items()}
    return RunResult(result_outputs, run.records, run.values, time.perf_counter() - started)


class _Run:
    """The state of one run: values, keys and records, and how to run a step or a chain."""

    def __init__(self, the_plan: Plan, cache: Cache | None, keep_all: bool,
                 emit: Callable[[Event], None], strip_rows: int | None, workers: int) -> None:
        self.steps = the_plan.steps
        self.cache, self.keep_all, self.emit = cache, keep_all, emit
        self.strip_rows, self.workers = strip_rows, workers
        self.index = {step.name: i for i, step in enumerate(self.steps)}
        # readers per output port: a value is dropped after its own last reader, not after
        # the last reader of any output of its node (align's I_ref need not live until the uncrop)
        self.readers: dict[tuple[str, str], int] = {}
        self.reader_steps: dict[tuple[str, str], set[str]] = {}
        for step in self.steps:
            for source in step.sources.values():
                if isinstance(source, Ref):
                    port = (source.node, source.port)
                    self.readers[port] = self.readers.get(port, 0) + 1
                    self.reader_steps.setdefault(port, set()).add(step.name)
        self.needed = {(s.node, s.port) for s in the_plan.outputs.values() if isinstance(s, Ref)}
        self.output_types = {(s.name, port): ptype for s in self.steps
                             for port, ptype in s.spec.outputs.items()}
        self.values: dict[tuple[str, str], Any] = {}
        self.keys: dict[str, str] = {}
        self.records = {s.name: NodeRecord(s.name, s.spec.id) for s in self.steps}
        self.memory: _PeakMemory

    def _event(self, kind: str, step: Step, message: str = "") -> None:
        self.emit(Event(kind, step.name, self.index[step.name], len(self.steps),
                        self.records[step.name], message))

    def _done(self, step: Step) -> None:
        self._event("finish", step)
        if not self.keep_all:
            _release(step, self.values, self.readers, self.needed)

    def step(self, index: int, step: Step) -> None:
        """Run one step on whole images (or take it from the cache, or bypass it)."""
        record = self.records[step.name]
        self._event("start", step)
        key = self.keys[step.name] = recipe_key(step, self.keys)
        inputs = step_inputs(step, self.values, self.output_types)
        self.memory.reset()
        t0 = time.perf_counter()
        cache = None if step.spec.side_effect else self.cache
        outputs = None if cache is None else cache.get(step.name, key, step.spec.outputs)
        if cache is not None and outputs is None:
            # before the call, so that its outputs reuse the stale ones' memory (a re-run
            # after one blend parameter at 12 MP: ~300 MB that would otherwise be fresh)
            cache.discard(step.name)
        if outputs is not None:
            record.status = "cached"
        elif step.bypass:
            outputs, record.status = bypassed_outputs(step.spec, inputs), "bypassed"
        else:
            outputs = _call(step, inputs, record, index, len(self.steps), self.emit)
            record.status = "ran"
            if cache is not None:
                cache.put(step.name, key, outputs)
        record.seconds = time.perf_counter() - t0
        record.peak_rss_mb = self.memory.window()
        del inputs
        for port, value in outputs.items():
            self.values[(step.name, port)] = value
        self._done(step)
        if not self.keep_all:
            release_free_heap()

    def chain(self, chain: list[Step]) -> None:
        """Run a chain of local steps strip by strip (see the module docstring)."""
        names = {step.name for step in chain}
        exported = {step.name: [port for port in step.spec.outputs
                                if (step.name, port) in self.needed
                                or self.reader_steps.get((step.name, port), set()) - names]
                    for step in chain}
        keys = dict(self.keys)
        for step in chain:
            keys[step.name] = recipe_key(step, keys)
        hits = ([] if self.cache is None else
                [self.cache.get(step.name, keys[step.name], exported[step.name]) for step in chain])
        if hits and all(hit is not None for hit in hits):
            self.keys.update(keys)
            for step, hit in zip(chain, hits):
                self._event("start", step)
                self.records[step.name].status = "cached"
                self.values.update({(step.name, port): hit[port] for port in exported[step.name]})
                self._done(step)
            return
        frame = self._frame(chain, names)
        if frame is None:
            for step in chain:
                self.step(self.index[step.name], step)
            return
        if self.cache is not None:  # as in step(): the chain replaces every member's entry
            for step in chain:
                self.cache.discard(step.name)
        self.keys.update(keys)
        for step in chain:
            self._event("start", step)
        self.memory.reset()
        strips = _Strips(chain, names, exported, frame, self)
        strips.donors = {(step.name, port): donor for step in chain for port in exported[step.name]
                         if (donor := self._donor(step, port, names)) is not None}
        started = time.perf_counter()
        strips.run(self.strip_rows, self.workers)
        wall, peak = time.perf_counter() - started, self.memory.window()
        busy = {step.name: sum(strips.seconds[step.name]) for step in chain}
        for step in chain:
            record = self.records[step.name]
            record.status, record.peak_rss_mb = "ran", peak
            record.seconds = wall * busy[step.name] / (sum(busy.values()) or 1.0)
            record.strips = strips.count
            outputs = {port: strips.assembled[(step.name, port)] for port in exported[step.name]}
            self.values.update({(step.name, port): value for port, value in outputs.items()})
            if self.cache is not None:
                self.cache.put(step.name, keys[step.name], outputs)
            for kind, message in strips.messages[step.name]:
                getattr(record, {"note": "notes", "warning": "warnings"}[kind]).append(message)
                self._event(kind, step, message)
            self._done(step)
        del strips  # its whole inputs converted for the chain: freed before the heap is trimmed
        release_free_heap()

    def _frame(self, chain: list[Step], names: set[str]) -> tuple[int, int] | None:
        """(H, W) shared by the rasters the chain slices into strips, or None when it cannot
        run in strips: sizes that disagree, or a required input without a value."""
        sizes = set()
        for step in chain:
            values = self.stored_inputs(step)
            for port, source in step.sources.items():
                if isinstance(source, Ref) and source.node in names:
                    continue
                value = values[port]
                if value is None:
                    if not step.spec.inputs[port].optional:
                        return None
                elif port in _sliced_ports(step):
                    if getattr(value, "ndim", 0) < 2:
                        return None
                    sizes.add(tuple(value.shape[:2]))
            if any(port not in step.sources and not spec.optional
                   for port, spec in step.spec.inputs.items()):
                return None
            if step.spec.local.frame is not None:  # its inputs are all from outside the chain
                try:
                    frame = step.spec.local.frame(values, step.params)
                except Exception:  # bad inputs: the whole run reports them as usual
                    return None
                if frame is None:
                    return None
                sizes.add(tuple(frame))
        return sizes.pop() if len(sizes) == 1 else None

    def _donor(self, step: Step, output: str, names: set[str]) -> np.ndarray | None:
        """The stored array that ``step``'s exported ``output`` may be assembled in
        (``Local.in_place``): the input's value when nothing else holds it; else None."""
        written = dict(step.spec.local.in_place).get(output)
        source = step.sources.get(written) if written is not None else None
        if not isinstance(source, Ref) or source.node in names or self.cache is not None or self.keep_all:
            return None
        key = (source.node, source.port)
        value = self.values.get(key)
        if (not isinstance(value, np.ndarray) or self.readers.get(key) != 1 or key in self.needed
                or not value.flags.c_contiguous or not value.flags.writeable
                or self.output_types[key].name != step.spec.inputs[written].type.name):
            return None
        if any(other_key != key and isinstance(other, np.ndarray) and np.may_share_memory(other, value)
               for other_key, other in self.values.items()):  # e.g. a bypassed node passing it on
            return None
        return value

    def stored_inputs(self, step: Step) -> dict[str, Any]:
        """A step's input values as stored (not converted), None for unlinked ones."""
        return {port: (self.values.get((source.node, source.port)) if isinstance(source, Ref)
                       else source.value) if (source := step.sources.get(port)) is not None else None
                for port in step.spec.inputs}


def _sliced_ports(step: Step) -> list[str]:
    """The inputs a local step receives as strips: its raster inputs not declared whole
    (those of a type that cannot be cut in rows, a CompactFlow, are read whole)."""
    return [port for port, spec in step.spec.inputs.items()
            if spec.type.raster and spec.type.in_strips and port not in step.spec.local.whole]


def local_chains(steps: list[Step]) -> list[list[Step]]:
    """The chains of a plan, in run order: runs of local, non-bypassed steps that follow each
    other in the run order, each run split into the groups of steps linked to each other. A
    step that reads a value of the run as a whole input starts a new run.

    Consecutive steps only: every input from outside a chain is then ready before it starts,
    and no outside step needs one of its values while it runs.
    """
    runs: list[list[Step]] = [[]]
    for step in steps:
        if step.spec.local is None or step.bypass:
            runs.append([])
            continue
        in_run = {s.name for s in runs[-1]}
        if any(isinstance(source, Ref) and source.node in in_run and port not in _sliced_ports(step)
               for port, source in step.sources.items()):
            runs.append([])  # it reads a value of the run whole: that value must be assembled
        runs[-1].append(step)
    chains = []
    for run in filter(None, runs):
        links = nx.Graph()
        links.add_nodes_from(step.name for step in run)
        links.add_edges_from((source.node, step.name) for step in run for source in step.sources.values()
                             if isinstance(source, Ref) and source.node in links)
        for group in nx.connected_components(links):
            chains.append([step for step in run if step.name in group])
    order = {step.name: i for i, step in enumerate(steps)}
    return sorted(chains, key=lambda chain: order[chain[0].name])


STRIP_PIXELS = 1 << 20  # default strip: ~1 MP, a few MB per intermediate; small enough to spread


class _Strips:
    """One chain run strip by strip: member margins, the strip runner and the assembled values."""

    def __init__(self, chain: list[Step], names: set[str], exported: dict[str, list[str]],
                 frame: tuple[int, int], run: _Run) -> None:
        self.chain, self.exported, self.frame, self.owner = chain, exported, frame, run
        self.halo = {step.name: step.spec.local.rows(step.params, frame) for step in chain}
        # margin: rows beyond the strip a member must get right, for the members reading it
        self.margin: dict[str, int] = {}
        for step in reversed(chain):
            readers = [s for s in chain if any(isinstance(src, Ref) and src.node == step.name
                                               for src in s.sources.values())]
            self.margin[step.name] = max((self.margin[r.name] + self.halo[r.name] for r in readers),
                                         default=0)
        self.internal = names
        self.whole = {step.name: step_inputs(step, run.values, run.output_types, skip=_sliced_ports(step))
                      for step in chain}
        self.assembled: dict[tuple[str, str], Any] = {}
        self.donors: dict[tuple[str, str], np.ndarray] = {}  # outputs assembled over an input
        self.seconds: dict[str, list[float]] = {step.name: [] for step in chain}
        self.messages: dict[str, list[tuple[str, str]]] = {step.name: [] for step in chain}
        self.count = 0
        self._lock = threading.Lock()

    def run(self, strip_rows: int | None, workers: int) -> None:
        height, width = self.frame
        context = max(self.margin[s.name] + self.halo[s.name] for s in self.chain)
        rows = strip_rows or max(math.ceil(STRIP_PIXELS / max(width, 1)), 2 * context)
        strips = [(y0, min(y0 + rows, height)) for y0 in range(0, height, max(1, rows))]
        self.count = len(strips)
        with _WarningLog() as log:
            self._strip(*strips[0], log)  # alone first: it allocates the assembled outputs
            rest = strips[1:]
            if min(workers, len(rest)) <= 1:
                for strip in rest:
                    self._strip(*strip, log)
            else:
                futures = [_strip_pool(workers).submit(self._strip, *strip, log) for strip in rest]
                try:
                    for future in futures:
                        future.result()
                finally:  # after a failure: drop the strips not started, wait for the others
                    for future in futures:
                        future.cancel()
                    wait(futures)
        for name, kind, message in log.caught:
            if (kind, message) not in self.messages[name]:
                self.messages[name].append((kind, message))

    def _strip(self, y0: int, y1: int, log: _WarningLog) -> None:
        """Run every member on output rows [y0, y1); store the rows of the exported values."""
        height = self.frame[0]
        produced: dict[tuple[str, str], tuple[int, Any]] = {}  # -> (first row, strip value)
        for step in self.chain:
            margin, halo = self.margin[step.name], self.halo[step.name]
            top, bottom = max(0, y0 - margin - halo), min(height, y1 + margin + halo)
            inputs = self._inputs(step, top, bottom, produced)
            t0 = time.perf_counter()
            outputs = _call_on_strip(step, inputs, (self.frame, (top, bottom)), log)
            self.seconds[step.name].append(time.perf_counter() - t0)
            for port, value in outputs.items():
                if value is not None and value.shape[0] != bottom - top:
                    raise NodeError(step.name, step.spec.id, ValueError(
                        f"output '{port}': a local node must return the rows it was given "
                        f"({bottom - top}), got {value.shape[0]}"))
                produced[(step.name, port)] = (top, value)
            for port in self.exported[step.name]:
                self._assemble((step.name, port), outputs[port], y0 - top, y0, y1)

    def _inputs(self, step: Step, top: int, bottom: int,
                produced: dict[tuple[str, str], tuple[int, Any]]) -> dict[str, Any]:
        """A member's inputs for rows [top, bottom): strips of the sliced ones (converted strip
        by strip), the others whole (converted once, in ``__init__``)."""
        inputs = {}
        for port in _sliced_ports(step):
            source = step.sources.get(port)
            if source is None:
                continue
            if isinstance(source, Ref) and source.node in self.internal:
                first, value = produced[(source.node, source.port)]
                value = None if value is None else value[top - first: bottom - first]
            else:
                value = self.owner.stored_inputs(step)[port]
                value = None if value is None else value[top:bottom]
            source_type = (self.owner.output_types[(source.node, source.port)]
                           if isinstance(source, Ref) else source.type)
            inputs[port] = source_type.convert(value, step.spec.inputs[port].type)
        return {**self.whole[step.name], **inputs}

    def _assemble(self, key: tuple[str, str], value: Any, offset: int, y0: int, y1: int) -> None:
        if value is None:
            self.assembled.setdefault(key, None)
            return
        with self._lock:  # only the first strip allocates; strips write disjoint rows
            if key not in self.assembled:
                shape, donor = (self.frame[0], *value.shape[1:]), self.donors.get(key)
                self.assembled[key] = (donor if donor is not None and donor.shape == shape
                                       and donor.dtype == value.dtype else np.empty(shape, value.dtype))
        whole = self.assembled[key]
        if whole is None or whole.shape[1:] != value.shape[1:] or whole.dtype != value.dtype:
            step = next(s for s in self.chain if s.name == key[0])
            raise NodeError(step.name, step.spec.id, ValueError(
                f"output '{key[1]}': its strips differ in columns or type"))
        whole[y0:y1] = value[offset: offset + y1 - y0]


_pools: dict[int, ThreadPoolExecutor] = {}


def _strip_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``workers`` threads, kept for the process: threads made anew for each
    chain would each get their own allocator arena and kernel thread teams, which stay
    resident (measured at 12 MP: +100 MB after a run)."""
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="strip")
    return _pools[workers]


class _WarningLog:
    """Warnings and notes raised by node calls on any thread, each with the node that raised it
    (``warnings.catch_warnings`` alone cannot tell which thread's call a warning came from)."""

    def __init__(self) -> None:
        self.caught: list[tuple[str, str, str]] = []  # (node, "note" | "warning", message)
        self._current = threading.local()
        self._guard = warnings.catch_warnings()

    def __enter__(self) -> _WarningLog:
        self._guard.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._show
        return self

    def __exit__(self, *exc: object) -> None:
        self._guard.__exit__(*exc)

    def calling(self, node: str | None) -> None:
        self._current.node = node

    def _show(self, message, category, *args: Any, **kwargs: Any) -> None:
        node = getattr(self._current, "node", None)
        if node is not None:
            kind = "note" if issubclass(category, Note) else "warning"
            self.caught.append((node, kind, str(message)))


def _call_on_strip(step: Step, inputs: dict[str, Any],
                   strip: tuple[tuple[int, int], tuple[int, int]], log: _WarningLog) -> dict[str, Any]:
    """Call a local step on one strip (``strip``: the frame's (H, W), the rows [top, bottom)
    the call covers); errors name the node as :func:`_call`'s do."""
    _require_inputs(step, inputs)
    token = _strip.set(strip)
    log.calling(step.name)
    try:
        outputs = _call_naming_node(step, inputs)
    finally:
        log.calling(None)
        _strip.reset(token)
    _check_outputs(step, outputs)
    return outputs


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


def _require_inputs(step: Step, inputs: dict[str, Any]) -> None:
    for port, in_spec in step.spec.inputs.items():
        inputs.setdefault(port, None)
        if inputs[port] is None and not in_spec.optional:
            raise NodeError(step.name, step.spec.id, ValueError(
                f"required input '{port}' received no value (an upstream node gave none)"))


def _check_outputs(step: Step, outputs: dict[str, Any]) -> None:
    for port, value in outputs.items():
        problem = None if value is None else step.spec.outputs[port].problem_with(value)
        if problem:
            raise NodeError(step.name, step.spec.id, TypeError(f"output '{port}': {problem}"))


def _call_naming_node(step: Step, inputs: dict[str, Any]) -> dict[str, Any]:
    """The step's outputs; any error it raises becomes one that names the node."""
    try:
        return call_node(step.spec, inputs, step.params)
    except InputError as error:
        raise InputError(f"node '{step.name}' ({step.spec.id}): {error}") from error
    except Exception as error:
        raise NodeError(step.name, step.spec.id, error) from error


def _call(step: Step, inputs: dict[str, Any], record: NodeRecord, index: int, total: int,
          emit: Callable[[Event], None]) -> dict[str, Any]:
    _require_inputs(step, inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = _call_naming_node(step, inputs)
    for warning in caught:
        message = str(warning.message)
        kind = ("wrote" if issubclass(warning.category, Wrote) else
                "note" if issubclass(warning.category, Note) else "warning")
        {"wrote": record.wrote, "note": record.notes, "warning": record.warnings}[kind].append(message)
        emit(Event(kind, step.name, index, total, record, message))
    _check_outputs(step, outputs)
    return outputs


def run_graph(graph: Graph, registry: Registry, **options: Any) -> RunResult:
    """Validate, plan and run ``graph``; options as for :func:`run_plan`."""
    return run_plan(plan(graph, registry), **options)

