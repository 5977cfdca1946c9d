"""Editing a graph: the controller behind the visual editor, with no GUI in it.

:class:`Editor` owns one :class:`~nodegraph.graph.Graph` and changes it only through edits
that are checked first and undoable: add, delete, connect, disconnect, set a parameter or a
graph input, bypass, move. A refused edit raises :class:`EditRefused` with the reason (a
link between incompatible port types, an unknown port, a cycle, a parameter value out of
range...) and leaves the graph as it was. After every edit the whole graph is validated
again, so the view can show each problem next to the node it concerns.

Undo keeps a stack of (before, after) snapshots of the graph: graphs are small (tens of
nodes), so a deep copy per edit is cheap, and a snapshot cannot get out of step with the
edit that made it the way hand-written inverse operations can.

Running happens in a background thread over a copy of the graph, with one
:class:`~nodegraph.execute.Cache` kept for the editor's lifetime, so running again after one
parameter change re-runs only the nodes downstream of it. The thread only puts events on a
queue; :meth:`Editor.poll` (called by the view once per frame, on its own thread) applies
them to :attr:`Editor.status` and :attr:`Editor.values`.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from .errors import GraphError, InputError, NodeError, Problem
from .execute import Cache, Event, RunResult, plan, run_plan
from .graph import AUTO, INPUTS, Graph, NodeInstance, Ref, load_graph, save_graph
from .node import NodeSpec
from .registry import Registry
from .render import downscaled
from .subgraph import is_subgraph_type, resolve_spec
from .types import PORT_TYPES, PortType
from .validate import validate


class EditRefused(ValueError):
    """An edit that was not applied; the message says why."""


@dataclass
class NodeStatus:
    """What the last run did with one node (for subgraph nodes: with all their inner nodes)."""

    status: str  # pending, running, ran, cached, bypassed, failed
    seconds: float = 0.0
    message: str = ""  # the error of a failed node, or its warnings


MERGE_SECONDS = 1.0


@dataclass
class _Edit:
    label: str
    before: Graph
    after: Graph
    time: float  # when it was last changed (time.monotonic), for merging


INPUTS_BOX, OUTPUTS_BOX = "@inputs", "@outputs"  # the boxes of the graph's inputs and outputs
DEFAULT_SIZE = (230.0, 120.0)  # a box's (width, height) before the view has measured it
_SWEEPS = 8  # barycenter passes; small graphs settle in two or three


def layer_graph(graph: Graph) -> nx.DiGraph:
    """The graph's boxes and links as a DAG for drawing: its nodes, plus the inputs box (an
    edge into each node reading a graph input) and the outputs box (an edge from each node a
    graph output reads). A link that closes a cycle is left out, so a broken graph is drawn too."""
    dag = nx.DiGraph()
    if graph.inputs:
        dag.add_node(INPUTS_BOX)
    dag.add_nodes_from(graph.nodes)
    for source, reader in graph.dependencies().edges:
        dag.add_edge(source, reader)
        if not nx.is_directed_acyclic_graph(dag):
            dag.remove_edge(source, reader)
    for name, inst in graph.nodes.items():
        if graph.inputs and any(ref.node == INPUTS for ref in inst.links.values()):
            dag.add_edge(INPUTS_BOX, name)
    if graph.outputs:
        dag.add_node(OUTPUTS_BOX)
        for ref in graph.outputs.values():
            if ref.node in graph.nodes:
                dag.add_edge(ref.node, OUTPUTS_BOX)
    return dag


def layers(graph: Graph) -> list[list[str]]:
    """The graph's boxes in columns, left to right, each column top to bottom (the ordered
    columns of :func:`layering` without its placeholders)."""
    return [[name for name in column if not name.startswith(PLACEHOLDER)]
            for column in layering(graph)[1]]


PLACEHOLDER = "\0"  # prefix of the placeholders of links that skip columns (no name has it)


def layering(graph: Graph) -> tuple[list[list[str]], list[list[str]], list[tuple[str, str]]]:
    """(columns in file order, columns ordered for few crossings, links between adjacent
    columns), placeholders included.

    Sugiyama's scheme: a box's column is the longest chain of links leading to it (the inputs
    box first, the outputs box last); links that skip columns get a placeholder in every
    column they cross; then the order within each column is sorted by the mean position of
    each box's neighbours in the previous column, then the next (barycenter heuristic),
    keeping the order with the fewest crossing links (:func:`crossings`).
    """
    dag = layer_graph(graph)
    rank: dict[str, int] = {}
    for name in nx.topological_sort(dag):
        rank[name] = max((rank[p] + 1 for p in dag.predecessors(name)), default=0)
    if OUTPUTS_BOX in rank:
        rank[OUTPUTS_BOX] = max((r + 1 for name, r in rank.items() if name != OUTPUTS_BOX), default=0)
    # Split links that skip columns into unit links through placeholders (named by the link).
    edges: list[tuple[str, str]] = []
    for source, target in dag.edges:
        chain = [source] + [f"{PLACEHOLDER}{source}>{target}@{r}"
                            for r in range(rank[source] + 1, rank[target])]
        for r, placeholder in enumerate(chain[1:], rank[source] + 1):
            rank[placeholder] = r
        edges += list(zip(chain, chain[1:] + [target]))
    columns: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for name in [*dag.nodes, *(n for n in rank if n not in dag)]:  # file order to start with
        columns[rank[name]].append(name)
    initial = [list(c) for c in columns]
    best, best_crossings = initial, crossings(columns, edges)
    for sweep in range(_SWEEPS):
        downward = sweep % 2 == 0
        order = range(1, len(columns)) if downward else range(len(columns) - 2, -1, -1)
        for c in order:
            fixed = {name: i for i, name in enumerate(columns[c - 1 if downward else c + 1])}
            neighbours: dict[str, list[int]] = {name: [] for name in columns[c]}
            for source, target in edges:
                mine, other = (target, source) if downward else (source, target)
                if mine in neighbours and other in fixed:
                    neighbours[mine].append(fixed[other])
            current = {name: i for i, name in enumerate(columns[c])}
            columns[c].sort(key=lambda n: (sum(neighbours[n]) / len(neighbours[n])
                                           if neighbours[n] else current[n], current[n]))
        count = crossings(columns, edges)
        if count < best_crossings:
            best, best_crossings = [list(c) for c in columns], count
    return initial, best, edges


def crossings(columns: list[list[str]], edges: list[tuple[str, str]]) -> int:
    """How many pairs of links cross, for links between adjacent columns drawn straight."""
    where = {name: (c, i) for c, column in enumerate(columns) for i, name in enumerate(column)}
    count = 0
    by_column: dict[int, list[tuple[int, int]]] = {}
    for source, target in edges:
        (c, i), (_, j) = where[source], where[target]
        by_column.setdefault(c, []).append((i, j))
    for pairs in by_column.values():
        for a, (i1, j1) in enumerate(pairs):
            for i2, j2 in pairs[a + 1:]:
                count += (i1 - i2) * (j1 - j2) < 0
    return count


def auto_layout(graph: Graph, sizes: dict[str, tuple[float, float]] | None = None,
                gap: float = 40, origin: tuple[float, float] = (20.0, 20.0),
                view: tuple[float, float] | None = None) -> dict[str, tuple[float, float]]:
    """Positions for the boxes (nodes, :data:`INPUTS_BOX`, :data:`OUTPUTS_BOX`) that have none
    in ``ui.positions``: the columns of :func:`layers` left to right, ``gap`` apart, each as
    wide as its widest box and centred on the tallest column of its band. ``sizes`` gives each
    box's drawn (width, height) when the view knows it (default :data:`DEFAULT_SIZE`).

    A long chain is wider than a screen is tall: given the ``view`` (width, height) it will be
    shown in, the columns are cut into one, two or three bands stacked top to bottom, however
    many let the whole graph be drawn largest in that view.
    """
    positions = graph.ui.get("positions", {}) if isinstance(graph.ui, dict) else {}
    size = {**{name: DEFAULT_SIZE for name in layer_graph(graph)}, **(sizes or {})}
    columns = layers(graph)
    widths = [max((size[n][0] for n in column), default=0.0) + gap for column in columns]
    heights = [sum(size[n][1] + gap for n in column) for column in columns]

    def bands_of(count: int) -> list[list[int]]:
        """Column indexes cut into ``count`` runs of about equal width."""
        total, bands, run, used = sum(widths), [], [], 0.0
        for c, width in enumerate(widths):
            if run and used + width / 2 > total * (len(bands) + 1) / count:
                bands.append(run)
                run = []
            run.append(c)
            used += width
        return bands + [run] if run else bands

    def scale(bands: list[list[int]]) -> float:
        width = max(sum(widths[c] for c in band) for band in bands)
        height = sum(max(heights[c] for c in band) for band in bands)
        return min(1.0, view[0] / width, view[1] / height) if view else 1.0  # ties: fewer bands

    options = [bands_of(count) for count in (1, 2, 3) if count <= max(len(columns), 1)]
    bands = max(options, key=scale) if view and columns else [list(range(len(columns)))]
    result, top = {}, origin[1]
    for band in bands:
        tallest, x = max((heights[c] for c in band), default=0.0), origin[0]
        for c in band:
            y = top + (tallest - heights[c]) / 2
            for name in columns[c]:
                if name not in positions:
                    result[name] = (x, y)
                y += size[name][1] + gap
            x += widths[c]
        top += tallest + gap
    return result


def fit_zoom(layout: dict[str, tuple[float, float]], sizes: dict[str, tuple[float, float]],
             view: tuple[float, float], levels: tuple[float, ...], margin: float = 20
             ) -> float:
    """The largest of ``levels`` (<= 1) at which every box of ``layout`` fits in ``view``
    (width, height) with ``margin`` around it; the smallest level when none does."""
    if not layout:
        return 1.0
    left = min(x for x, _ in layout.values())
    top = min(y for _, y in layout.values())
    right = max(x + sizes.get(n, DEFAULT_SIZE)[0] for n, (x, _) in layout.items())
    bottom = max(y + sizes.get(n, DEFAULT_SIZE)[1] for n, (_, y) in layout.items())
    scale = min(1.0, (view[0] - 2 * margin) / max(right - left, 1.0),
                (view[1] - 2 * margin) / max(bottom - top, 1.0))
    return max((level for level in levels if level <= scale + 1e-9), default=min(levels))


class Editor:
    """Checked, undoable edits of one graph, validation after each, and background runs."""

    def __init__(self, registry: Registry, graph: Graph | None = None) -> None:
        self.registry = registry
        self.graph = graph if graph is not None else Graph()
        self.problems: list[Problem] = []
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self._saved: Graph = self.graph.copy()
        self.cache = Cache()
        self.status: dict[str, NodeStatus] = {}
        self.values: dict[tuple[str, str], Any] = {}  # outputs of the last successful run
        self.run_message = ""  # one line about the last run, for a status bar
        self._events: queue.Queue[tuple[int, str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._run_id = 0
        self.revision = 0  # bumped on every change of the graph, so views know to redraw
        self._validate()

    # ------------------------------------------------------------ queries

    @property
    def path(self) -> Path | None:
        return self.graph.source

    @property
    def dirty(self) -> bool:
        """True when the graph differs from the file it was opened from or saved to."""
        return self.graph != self._saved

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def spec(self, node: str) -> NodeSpec | None:
        """The spec of a node's type, or None when it cannot be resolved (see the problems)."""
        inst = self.graph.nodes.get(node)
        if inst is None:
            return None
        try:
            return resolve_spec(self.graph, inst.type, self.registry)
        except (KeyError, GraphError, RecursionError, OSError):
            return None

    def node_problems(self, node: str) -> list[str]:
        """Messages of the current problems that concern ``node`` (port or parameter first)."""
        return [f"{p.port}: {p.message}" if p.port else p.message
                for p in self.problems if p.node == node]

    def graph_problems(self) -> list[str]:
        """Messages of problems that concern no single node (graph inputs, outputs, the file)."""
        return [str(Problem(p.message, port=p.port)) for p in self.problems if p.node is None]

    def position(self, box: str) -> tuple[float, float] | None:
        """The saved position of a node, :data:`INPUTS_BOX` or :data:`OUTPUTS_BOX`, or None."""
        saved = self.graph.ui.get("positions", {}).get(box) if isinstance(self.graph.ui, dict) else None
        return (float(saved[0]), float(saved[1])) if saved else None

    def boxes(self) -> list[str]:
        """Everything the view draws as a box: the inputs box, the nodes, the outputs box.

        The outputs box is always there, so a graph output can be made from any port."""
        return [*([INPUTS_BOX] if self.graph.inputs else []), *self.graph.nodes, OUTPUTS_BOX]

    def layout(self, sizes: dict[str, tuple[float, float]] | None = None,
               view: tuple[float, float] | None = None) -> dict[str, tuple[float, float]]:
        """Where every box is drawn: its saved position, else an automatic one (for a
        ``view`` of that (width, height), see :func:`auto_layout`)."""
        result = auto_layout(self.graph, sizes, view=view)
        for box in self.boxes():
            saved = self.position(box)
            if saved is not None:
                result[box] = saved
        if OUTPUTS_BOX not in result:  # a graph without outputs yet: right of everything
            right = max((x + (sizes or {}).get(n, DEFAULT_SIZE)[0] for n, (x, _) in result.items()),
                        default=0.0)
            result[OUTPUTS_BOX] = (right + 40, 20.0)
        return result

    def palette(self, search: str = "") -> list[NodeSpec]:
        """Registered node types whose id or summary contains every word of ``search``."""
        words = search.lower().split()
        return [spec for spec in self.registry
                if all(w in f"{spec.id} {spec.summary}".lower() for w in words)]

    # ------------------------------------------------------------ edits

    def add_node(self, type_name: str, name: str | None = None,
                 pos: tuple[float, float] | None = None) -> str:
        """Add a node of a registered type (or a subgraph file); returns its name."""
        try:
            resolve_spec(self.graph, type_name, self.registry)
        except KeyError:
            raise EditRefused(f"unknown node type {type_name!r}") from None
        except (GraphError, RecursionError, OSError) as error:
            raise EditRefused(f"subgraph {type_name!r} is not usable: {error}") from None
        if name is None:
            name = self._fresh_name(type_name)
        elif name in self.graph.nodes:
            raise EditRefused(f"there is already a node named {name!r}")
        elif not name or name == INPUTS or "." in name or "/" in name or name.startswith("@"):
            raise EditRefused(f"invalid node name {name!r} (no '.', '/', no leading '@', "
                              "and not 'inputs')")

        def apply(graph: Graph) -> None:
            graph.nodes[name] = NodeInstance(name, type_name)
            if pos is not None:
                graph.positions()[name] = [float(pos[0]), float(pos[1])]

        self._edit(f"add {name}", apply)
        return name

    def delete_node(self, node: str) -> None:
        """Remove a node with every link into or out of it and the graph outputs it feeds."""
        self._require_node(node)

        def apply(graph: Graph) -> None:
            del graph.nodes[node]
            for inst in graph.nodes.values():
                for port in [p for p, ref in inst.links.items() if ref.node == node]:
                    del inst.links[port]
            for out in [o for o, ref in graph.outputs.items() if ref.node == node]:
                del graph.outputs[out]
            if isinstance(graph.ui.get("positions"), dict):
                graph.ui["positions"].pop(node, None)

        self._edit(f"delete {node}", apply)

    def connect(self, src_node: str, src_port: str, dst_node: str, dst_port: str) -> None:
        """Link output ``src_node.src_port`` (or graph input ``inputs.NAME``) into an input.

        An existing link into that input is replaced. Refused when a port is unknown, the
        types cannot be linked (:meth:`PortType.can_feed`) or the link would close a cycle.
        """
        source_type = self._output_type(src_node, src_port)
        spec = self._spec_or_refuse(dst_node)
        if dst_port not in spec.inputs:
            raise EditRefused(f"{dst_node} ({spec.id}) has no input {dst_port!r}; its inputs are "
                              f"{sorted(spec.inputs) or 'none'}")
        target = spec.inputs[dst_port].type
        if not source_type.can_feed(target):
            raise EditRefused(f"type mismatch: {src_node}.{src_port} is {source_type.name}, "
                              f"{dst_node}.{dst_port} needs {target.name}")
        if src_node != INPUTS:
            loop = self._path(dst_node, src_node)
            if loop is not None:
                raise EditRefused("the link would create a cycle: "
                                  + " -> ".join(loop + [dst_node]))
        link = Ref(src_node, src_port)
        self._edit(f"connect {link} -> {dst_node}.{dst_port}",
                   lambda graph: graph.nodes[dst_node].links.__setitem__(dst_port, link))

    def disconnect(self, dst_node: str, dst_port: str) -> None:
        """Remove the link into input ``dst_node.dst_port``."""
        self._require_node(dst_node)
        if dst_port not in self.graph.nodes[dst_node].links:
            raise EditRefused(f"{dst_node}.{dst_port} is not linked")
        self._edit(f"disconnect {dst_node}.{dst_port}",
                   lambda graph: graph.nodes[dst_node].links.pop(dst_port))

    def set_output(self, name: str, src_node: str, src_port: str) -> None:
        """Make graph output ``name`` read ``src_node.src_port`` (added if new)."""
        self._output_type(src_node, src_port)
        if not name or "." in name:
            raise EditRefused(f"invalid output name {name!r}")
        self._edit(f"output {name}",
                   lambda graph: graph.outputs.__setitem__(name, Ref(src_node, src_port)))

    def add_output(self, src_node: str, src_port: str) -> str:
        """Make a new graph output read ``src_node.src_port``; it is named after the port
        (``image``, ``image_2``...). Returns the name."""
        name, index = src_port, 2
        while name in self.graph.outputs:
            name, index = f"{src_port}_{index}", index + 1
        self.set_output(name, src_node, src_port)
        return name

    def remove_output(self, name: str) -> None:
        if name not in self.graph.outputs:
            raise EditRefused(f"there is no graph output {name!r}")
        self._edit(f"remove output {name}", lambda graph: graph.outputs.pop(name))

    def set_param(self, node: str, param: str, value: Any) -> None:
        """Set a parameter, checked against its ParamSpec (type, range, choices)."""
        spec = self._spec_or_refuse(node)
        pspec = spec.params.get(param)
        if pspec is None:
            raise EditRefused(f"{node} ({spec.id}) has no parameter {param!r}; its parameters "
                              f"are {sorted(spec.params) or 'none'}")
        if pspec.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # widgets hand over ints for whole numbers
        problem = pspec.problem_with(value)
        if problem:
            raise EditRefused(f"{node}.{param}: {problem}")
        self._edit(f"set {node}.{param}",
                   lambda graph: graph.nodes[node].params.__setitem__(param, value), merge=True)

    def reset_param(self, node: str, param: str) -> None:
        """Drop a parameter from the file, so the node's default applies."""
        self._require_node(node)
        if param not in self.graph.nodes[node].params:
            raise EditRefused(f"{node}.{param} already has its default")
        self._edit(f"reset {node}.{param}", lambda graph: graph.nodes[node].params.pop(param))

    def set_input(self, name: str, value: Any) -> None:
        """Set the default value of a graph input (a string is parsed by the input's type)."""
        gi = self.graph.inputs.get(name)
        if gi is None:
            raise EditRefused(f"there is no graph input {name!r}")
        ptype = PORT_TYPES.get(gi.type)
        if ptype is None:
            raise EditRefused(f"graph input {name!r} has unknown type {gi.type!r}")
        if isinstance(value, str) and value.strip().lower() in ("", "auto"):
            value = "auto" if value.strip() else None
        elif isinstance(value, str):
            try:
                value = ptype.parse(value)
            except ValueError as error:
                raise EditRefused(f"inputs.{name}: {error}") from None
            problem = ptype.problem_with(value)
            if problem:
                raise EditRefused(f"inputs.{name}: {problem}")
        if isinstance(value, tuple):
            value = list(value)  # YAML has lists, and that is what loading gives back
        self._edit(f"set inputs.{name}",
                   lambda graph: setattr(graph.inputs[name], "default", value))

    def set_bypass(self, node: str, bypass: bool) -> None:
        self._require_node(node)
        self._edit(f"{'bypass' if bypass else 'enable'} {node}",
                   lambda graph: setattr(graph.nodes[node], "bypass", bool(bypass)))

    def move(self, node: str, x: float, y: float) -> None:
        """Store the position of a node (or of :data:`INPUTS_BOX`, :data:`OUTPUTS_BOX`) in the
        graph's ``ui.positions`` block."""
        if node not in (INPUTS_BOX, OUTPUTS_BOX):
            self._require_node(node)
        position = [float(x), float(y)]
        if self.graph.ui.get("positions", {}).get(node) == position:
            return
        self._edit(f"move {node}", lambda graph: graph.positions().__setitem__(node, position),
                   merge=True)

    def undo(self) -> bool:
        """Go back one edit; False when there is nothing to undo."""
        if not self._undo:
            return False
        edit = self._undo.pop()
        self._redo.append(edit)
        self._replace(edit.before)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        edit = self._redo.pop()
        self._undo.append(edit)
        self._replace(edit.after)
        return True

    # ------------------------------------------------------------ files

    def open(self, path: str | Path) -> None:
        """Load a graph file (structural problems are kept as problems, not raised)."""
        graph = load_graph(path)
        self.graph = graph
        self._saved = graph.copy()
        self._undo.clear()
        self._redo.clear()
        self.cache = Cache()  # a run still going keeps the old one to itself
        self._run_id += 1  # and its late reports are ignored
        self.status = {}
        self.values = {}
        self.revision += 1
        self._validate()

    def save(self) -> Path:
        if self.graph.source is None:
            raise EditRefused("the graph has no file yet: use save as")
        return self.save_as(self.graph.source)

    def save_as(self, path: str | Path) -> Path:
        """Write the graph as YAML (atomically); it becomes the graph's file."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml"):
            raise EditRefused(f"a graph file must end in .yaml or .yml, got {path.name!r}")
        old_base, new_base = self.graph.base_dir.resolve(), path.resolve().parent
        if old_base != new_base:
            # Relative file paths are relative to the graph file: keep them pointing at the
            # same files, in the undo history too.
            for edit in self._undo + self._redo:
                _rebase(edit.before, old_base, new_base)
                _rebase(edit.after, old_base, new_base)
            _rebase(self.graph, old_base, new_base)
        save_graph(self.graph, path)
        self._saved = self.graph.copy()
        self._validate()
        return path

    # ------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> bool:
        """Start running a copy of the graph in the background; False if it cannot start.

        A graph with problems does not start (:attr:`run_message` says why). Progress
        arrives through :meth:`poll`.
        """
        if self.running:
            self.run_message = "already running"
            return False
        graph = self.graph.copy()
        try:
            the_plan = plan(graph, self.registry)
        except GraphError as error:
            self.run_message = f"cannot run: {len(error.problems)} problem(s) in the graph"
            return False
        self.status = {name: NodeStatus("pending") for name in graph.nodes}
        self.run_message = "running"
        self._run_id += 1
        self._thread = threading.Thread(target=self._run_worker,
                                        args=(the_plan, self.cache, self._run_id), daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until a run ends, then apply its events (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.poll()

    def _run_worker(self, the_plan: Any, cache: Cache, run_id: int) -> None:
        def report(kind: str, payload: Any) -> None:
            self._events.put((run_id, kind, payload))

        def forward(event: Event) -> None:
            # Records are mutated by the executor afterwards: hand over a frozen copy.
            report("event", (event.kind, event.node, event.record.status, event.record.seconds,
                             event.message))

        try:
            result = run_plan(the_plan, cache=cache, keep_all=True, events=forward)
        except NodeError as error:
            report("failed", (error.node, str(error)))
        except InputError as error:
            report("failed", (None, f"input error: {error}"))
        except Exception as error:  # the view must survive anything a run throws
            report("failed", (None, f"{type(error).__name__}: {error}"))
        else:
            report("done", result)

    def poll(self) -> list[tuple[str, Any]]:
        """Apply what the background run reported since the last call; returns those reports."""
        drained = []
        while True:
            try:
                run_id, kind, payload = self._events.get_nowait()
            except queue.Empty:
                return drained
            if run_id != self._run_id:
                continue  # from a run of a graph that has since been replaced by open()
            drained.append((kind, payload))
            if kind == "event":
                self._apply_event(*payload)
            elif kind == "failed":
                node, message = payload
                if node is not None:
                    self._set_status(node, NodeStatus("failed", message=message))
                for status in self.status.values():
                    if status.status in ("pending", "running"):
                        status.status = "pending"
                self.run_message = f"failed: {message}"
            elif kind == "done":
                self._finish(payload)

    def _apply_event(self, kind: str, step: str, status: str, seconds: float,
                     message: str) -> None:
        if kind == "start":
            self._set_status(step, NodeStatus("running"))
        elif kind == "finish":
            self._set_status(step, NodeStatus(status, seconds))
        elif kind in ("warning", "note"):
            top = self.status.get(step.split("/", 1)[0])
            if top is not None:
                top.message = (top.message + "\n" if top.message else "") + f"{kind}: {message}"

    def _set_status(self, step: str, new: NodeStatus) -> None:
        """Record a step's status on its top-level node (a subgraph node sums its steps)."""
        top, inner = step.split("/", 1)[0], "/" in step
        old = self.status.get(top)
        if inner and old is not None and old.status not in ("pending",):
            rank = ["cached", "bypassed", "ran", "running", "failed"]
            worst = max(old.status, new.status, key=lambda s: rank.index(s) if s in rank else -1)
            new = NodeStatus(worst, old.seconds + new.seconds, new.message or old.message)
        if old is not None and old.message and not new.message:
            new.message = old.message
        self.status[top] = new

    def _finish(self, result: RunResult) -> None:
        self.values = result.values
        ran = sum(1 for r in result.records.values() if r.status == "ran")
        cached = sum(1 for r in result.records.values() if r.status == "cached")
        self.run_message = f"done in {result.seconds:.2f} s: {ran} ran, {cached} cached"

    def output_value(self, node: str, port: str) -> Any:
        """The value an output port had in the last run (None if not run or not available)."""
        return self.values.get((node, port))

    def preview(self, node: str, port: str, max_side: int = 320) -> np.ndarray | None:
        """A downscaled uint8 BGR picture of an output port's last value, or None.

        Masks come out as heat maps and flow fields in colour (:meth:`nodegraph.types.PortType.picture`).
        """
        spec = self.spec(node)
        if spec is None or port not in spec.outputs:
            return None
        picture = spec.outputs[port].picture(self.output_value(node, port))
        return None if picture is None else downscaled(picture, max_side)

    # ------------------------------------------------------------ internals

    def _edit(self, label: str, apply: Any, merge: bool = False) -> None:
        """Apply an edit to a copy of the graph and push it on the undo stack.

        With ``merge``, an edit with the same label right after the previous one (within
        :data:`MERGE_SECONDS`) joins it: dragging a slider or a node is one undo step.
        """
        now = time.monotonic()
        after = self.graph.copy()
        apply(after)
        top = self._undo[-1] if self._undo else None
        if (merge and top is not None and top.label == label and not self._redo
                and now - top.time <= MERGE_SECONDS):
            top.after, top.time = after, now
        else:
            self._undo.append(_Edit(label, self.graph.copy(), after, now))
        self._redo.clear()
        self._replace(after)

    def _replace(self, graph: Graph) -> None:
        # The stack keeps its own snapshot: the live graph must be a separate copy.
        graph = graph.copy()
        graph.source = self.graph.source
        graph.lines = {}  # line numbers of the file no longer match an edited graph
        self.graph = graph
        self.revision += 1
        self._validate()

    def _validate(self) -> None:
        self.problems = validate(self.graph, self.registry)

    def _require_node(self, node: str) -> NodeInstance:
        inst = self.graph.nodes.get(node)
        if inst is None:
            raise EditRefused(f"there is no node named {node!r}")
        return inst

    def _spec_or_refuse(self, node: str) -> NodeSpec:
        inst = self._require_node(node)
        spec = self.spec(node)
        if spec is None:
            raise EditRefused(f"{node}: its type {inst.type!r} is unknown or unusable")
        return spec

    def _output_type(self, node: str, port: str) -> PortType:
        if node == INPUTS:
            gi = self.graph.inputs.get(port)
            if gi is None:
                raise EditRefused(f"there is no graph input {port!r}")
            if gi.type not in PORT_TYPES:
                raise EditRefused(f"graph input {port!r} has unknown type {gi.type!r}")
            return PORT_TYPES[gi.type]
        spec = self._spec_or_refuse(node)
        if port not in spec.outputs:
            raise EditRefused(f"{node} ({spec.id}) has no output {port!r}; its outputs are "
                              f"{sorted(spec.outputs)}")
        return spec.outputs[port]

    def _path(self, start: str, end: str) -> list[str] | None:
        """Nodes along a chain of links from ``start`` to ``end`` (``[start]`` if equal)."""
        try:
            return nx.shortest_path(self.graph.dependencies(), start, end)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def _fresh_name(self, type_name: str) -> str:
        base = Path(type_name).stem if is_subgraph_type(type_name) else type_name.split(".")[-1]
        base = base.replace(".", "_").replace("/", "_") or "node"
        if base == INPUTS:
            base = "node"
        name, index = base, 2
        while name in self.graph.nodes:
            name, index = f"{base}_{index}", index + 1
        return name


def _rebase(graph: Graph, old_base: Path, new_base: Path) -> None:
    """Rewrite relative file paths of ``graph`` (input defaults, subgraph types) for a new folder."""
    def moved(relative: str) -> str:
        return os.path.relpath(old_base / relative, new_base)

    for gi in graph.inputs.values():
        if (gi.type in PORT_TYPES and PORT_TYPES[gi.type].file_role is not None and isinstance(gi.default, str)
                and gi.default != AUTO and not os.path.isabs(os.path.expanduser(gi.default))):
            gi.default = moved(gi.default)
    for inst in graph.nodes.values():
        if is_subgraph_type(inst.type) and not os.path.isabs(inst.type):
            inst.type = moved(inst.type)
