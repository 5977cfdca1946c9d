"""The graph model and its YAML file format.

A graph file (``schema_version: 1``) has four blocks, all optional but ``nodes``::

    schema_version: 1
    description: Blur an image and write it.
    inputs:                       # typed graph inputs, bound with --set NAME=VALUE
      photo: {type: Path, default: photo.png}
      out: {type: OutPath, default: blurred.png}
    nodes:
      read:
        type: image.read          # a registered node type, or a graph file (subgraph)
        in:
          path: inputs.photo      # links: input port -> "node.port" or "inputs.NAME"
      blur:
        type: image.blur
        in:
          image: read.image
        params:
          sigma: 2.0
        bypass: false             # optional: pass inputs through (ablations)
    outputs:
      image: blur.image           # graph outputs: name -> "node.port"
    ui:                           # optional, for the editor
      positions:
        read: [40, 60]

A ``type`` ending in ``.yaml``/``.yml`` names another graph file, relative to this one: the
node's inputs are that graph's inputs, its outputs that graph's outputs, and its parameters
are the inner nodes' parameters as ``inner_node.param``.

Loading keeps the line of every key (:attr:`Graph.lines`) so that problems can point at it;
:func:`dump_graph` writes a file that loads back to an equal :class:`Graph`.

Graph files come from anywhere, so loading is bounded: a file is a regular file of at most
:data:`MAX_GRAPH_BYTES`; YAML aliases (``*name``), merge keys, tags other than the plain
scalar, list and mapping ones, keys that are not plain scalars and nesting deeper than
:data:`MAX_NESTING` are refused with the line where they occur, and duplicate keys are
problems instead of silently keeping the last value. A graph input may declare ``range: [lo,
hi]``: its value (each number of a Rect or Shift) must lie in it.
"""
from __future__ import annotations

import copy
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import GraphError, Problem, brief, clip
from .files import write_atomic

if TYPE_CHECKING:
    import networkx as nx

SCHEMA_VERSION = 1
INPUTS = "inputs"  # reserved source name of graph inputs in links: "inputs.NAME"
AUTO = "auto"  # a graph input value meaning "none given: the consuming node decides"

_TOP_KEYS = {"schema_version", "description", "inputs", "nodes", "outputs", "ui"}
_NODE_KEYS = {"type", "in", "params", "bypass", "doc"}
_INPUT_KEYS = {"type", "default", "doc", "range"}

MAX_GRAPH_BYTES = 256 << 10  # the shipped graphs are a few kB; PyYAML reads ~0.5 MB/s
MAX_NESTING = 32  # levels of lists and mappings; the format itself needs 5
_YAML_TAGS = {
    yaml.ScalarNode: {f"tag:yaml.org,2002:{name}"
                      for name in ("null", "bool", "int", "float", "str", "timestamp")},
    yaml.SequenceNode: {"tag:yaml.org,2002:seq"},
    yaml.MappingNode: {"tag:yaml.org,2002:map"},
}


@dataclass(frozen=True)
class Ref:
    """The source end of a link: output ``port`` of ``node`` (``node == "inputs"`` for graph inputs)."""

    node: str
    port: str

    @classmethod
    def parse(cls, text: Any) -> Ref:
        if not isinstance(text, str) or text.count(".") < 1 or text.startswith(".") or text.endswith("."):
            raise ValueError(f"a link must read 'node.port' or 'inputs.NAME', got {brief(text)}")
        node, port = text.split(".", 1)
        return cls(node, port)

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass
class GraphInput:
    name: str
    type: str  # a port type name
    default: Any = None  # None: no value (required unless the type's consumers are optional)
    doc: str = ""
    range: tuple[float, float] | None = None  # inclusive bounds of every number of the value


@dataclass
class NodeInstance:
    name: str
    type: str
    links: dict[str, Ref] = field(default_factory=dict)  # input port -> source (parsed on load)
    params: dict[str, Any] = field(default_factory=dict)
    bypass: bool = False
    doc: str = ""


@dataclass
class Graph:
    inputs: dict[str, GraphInput] = field(default_factory=dict)
    nodes: dict[str, NodeInstance] = field(default_factory=dict)
    outputs: dict[str, Ref] = field(default_factory=dict)  # graph output -> source
    ui: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    schema_version: int = SCHEMA_VERSION
    # Where it came from; not part of the graph's identity.
    source: Path | None = field(default=None, compare=False)
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, compare=False, repr=False)
    load_problems: list[Problem] = field(default_factory=list, compare=False, repr=False)
    # Graph inputs bound on the command line -> the option that bound them ("--set zoom=2"),
    # so that a problem with the value names the option instead of a line of the file.
    bound: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def file(self) -> str | None:
        return str(self.source) if self.source else None

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in this file are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    def line(self, *key: str) -> int | None:
        """Line of the most specific known key, e.g. line("nodes", "blur", "params", "sigma")."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.lines:
                return self.lines[key[:end]]
        return None

    def problem(self, message: str, key: tuple[str, ...], node: str | None = None,
                port: str | None = None) -> Problem:
        return Problem(message, self.file, self.line(*key), node, port)

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def positions(self) -> dict[str, list[float]]:
        return self.ui.setdefault("positions", {})

    def dependencies(self) -> nx.DiGraph:
        """The node-to-node dependency graph: an edge source -> reader for every link between
        two nodes of this graph (graph inputs and links to unknown nodes are left out)."""
        import networkx as nx  # here, not at the top: loading a graph does not need it (start-up)

        dag = nx.DiGraph()
        dag.add_nodes_from(self.nodes)
        for name, inst in self.nodes.items():
            for ref in inst.links.values():
                if ref.node in self.nodes and ref.node != name:
                    dag.add_edge(ref.node, name)
        return dag


# ---------------------------------------------------------------- loading

if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _Events(yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor,
                  yaml.resolver.Resolver):
        """libyaml's C parser (ten times faster than PyYAML's on graph files) under PyYAML's
        Python composer, whose steps the limits below hook into."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _OFFSETS_IN_BYTES = True  # libyaml reads UTF-8 bytes
else:
    _Events = yaml.SafeLoader
    _OFFSETS_IN_BYTES = False


class _BoundedLoader(_Events):
    """A SafeLoader whose composer refuses what a graph file never needs and a hostile one
    abuses: aliases (a few hundred bytes of nested aliases expand to gigabytes once a value is
    printed or copied), merge keys, unknown or mistyped tags, non-scalar keys, deep nesting
    (the composer recurses). Duplicate keys are collected in ``duplicates``, not fatal."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.duplicates: list[tuple[str, int, int]] = []  # (key, first line, repeated line)

    def _refuse(self, message: str, mark: yaml.Mark) -> None:
        raise yaml.composer.ComposerError(None, None, message, mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._refuse("aliases (*name) are not allowed in graph files", event.start_mark)
        if self.depth >= MAX_NESTING:
            self._refuse(f"nested more than {MAX_NESTING} levels deep", event.start_mark)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if node.tag == "tag:yaml.org,2002:merge":
            self._refuse("merge keys (<<) are not allowed in graph files", node.start_mark)
        if node.tag not in _YAML_TAGS[type(node)]:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._refuse(f"unsupported tag {clip(tag, 60)!r} (graph files hold plain text, "
                         "numbers, booleans, lists and mappings)", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            try:  # an explicit tag may not fit its value: !!float abc
                self.yaml_constructors[node.tag](self, node)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError, yaml.YAMLError):
                self._refuse(f"{brief(node.value)} is not a valid {node.tag.rsplit(':', 1)[-1]}",
                             node.start_mark)
        elif isinstance(node, yaml.MappingNode):
            self._check_keys(node)
        return node

    def _check_keys(self, node: yaml.MappingNode) -> None:
        first_line: dict[str, int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self._refuse("a mapping key must be a plain value, not a list or mapping",
                             key.start_mark)
            line = key.start_mark.line + 1
            if key.value in first_line:
                self.duplicates.append((key.value, first_line[key.value], line))
            else:
                first_line[key.value] = line


# PyYAML reads YAML 1.1, whose floats need a dot and a signed exponent: 1e3, 2E-4 and 1.5e2
# would be text. YAML 1.2 and every other reader of a number take them as numbers, and so
# does a graph file.
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def _located(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _plain(node: yaml.Node) -> Any:
    """Python value of a composed YAML node (its tags were checked while composing)."""
    return yaml.constructor.SafeConstructor().construct_document(node)


def _compose(text: str, graph: Graph) -> yaml.Node | None:
    """The YAML node tree of ``text``; None after recording a problem with its line."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # checks every character first
        root = loader.get_single_node()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
            before = text.encode("utf-8")[:error.position] if _OFFSETS_IN_BYTES else text[:error.position]
            line = before.count(b"\n" if _OFFSETS_IN_BYTES else "\n") + 1
            reason = f"the character {error.character:#06x} is not allowed"
        else:
            parts = (getattr(error, "context", None), getattr(error, "problem", None))
            reason = "; ".join(part for part in parts if part) or str(error)
        graph.load_problems.append(Problem(f"not valid YAML: {clip(reason, 200)}", graph.file, line))
        return None
    finally:
        if loader is not None:
            loader.dispose()
    for key, first, repeated in loader.duplicates:
        graph.load_problems.append(Problem(
            f"duplicate key {brief(key)} (first at line {first}); each key may appear once",
            graph.file, repeated))
    if root is None:
        graph.load_problems.append(Problem("the file is empty", graph.file, 1))
    return root


def _mapping(node: yaml.Node | None, graph: Graph, key: tuple[str, ...],
             what: str) -> list[tuple[str, yaml.Node, int]]:
    """(key, value node, line) of a YAML mapping; records a problem if it is not one."""
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
        return []
    if not isinstance(node, yaml.MappingNode):
        graph.load_problems.append(graph.problem(f"{what} must be a mapping", key))
        return []
    items = []
    for key_node, value_node in node.value:
        name = str(_plain(key_node))
        line = _located(key_node)
        graph.lines[key + (name,)] = line
        items.append((name, value_node, line))
    return items


def parse_graph(text: str, source: Path | str | None = None) -> Graph:
    """Build a :class:`Graph` from YAML text; structural problems go to ``load_problems``."""
    graph = Graph(source=Path(source) if source else None)
    root = _compose(text, graph)
    if root is None:
        return graph
    top = _mapping(root, graph, (), "the file")
    for name, _value, line in top:
        if name not in _TOP_KEYS:
            graph.load_problems.append(Problem(
                f"unknown key {brief(name)}; expected one of {sorted(_TOP_KEYS)}", graph.file, line))
    blocks = {name: value for name, value, _ in top}
    if "schema_version" in blocks:
        graph.schema_version = _plain(blocks["schema_version"])
        if graph.schema_version != SCHEMA_VERSION:
            graph.load_problems.append(graph.problem(
                f"schema_version {brief(graph.schema_version)} is not supported (expected {SCHEMA_VERSION})",
                ("schema_version",)))
    if "description" in blocks:
        graph.description = str(_plain(blocks["description"]) or "")
    _load_inputs(graph, blocks.get("inputs"))
    if "nodes" not in blocks:
        graph.load_problems.append(Problem("the graph has no 'nodes' block", graph.file, 1))
    _load_nodes(graph, blocks.get("nodes"))
    for name, value, _line in _mapping(blocks.get("outputs"), graph, ("outputs",), "'outputs'"):
        ref = _link(graph, value, ("outputs", name), None, name)
        if ref is not None:
            graph.outputs[name] = ref
    if "ui" in blocks:
        ui = _plain(blocks["ui"])
        if isinstance(ui, dict):
            graph.ui = ui
        else:
            graph.load_problems.append(graph.problem("'ui' must be a mapping", ("ui",)))
    return graph


def _type_name(graph: Graph, value: Any, key: tuple[str, ...], node: str | None = None,
               port: str | None = None) -> str:
    """The text of a ``type:`` entry; '' after recording a problem when it is empty or not text."""
    if isinstance(value, str) and value.strip():
        return value
    graph.load_problems.append(graph.problem(
        f"'type' must name a type, got {brief(value)}", key, node, port))
    return ""


def _bounds(graph: Graph, value: Any, key: tuple[str, ...], port: str) -> tuple[float, float] | None:
    """A graph input's ``range: [lo, hi]`` as a tuple; None after recording a problem."""
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value) and value[0] <= value[1]):
        return float(value[0]), float(value[1])
    graph.load_problems.append(graph.problem(
        f"'range' must be [low, high] with finite numbers low <= high, got {brief(value)}",
        key, port=port))
    return None


def _load_inputs(graph: Graph, block: yaml.Node | None) -> None:
    for name, value, _line in _mapping(block, graph, ("inputs",), "'inputs'"):
        key = ("inputs", name)
        if name == INPUTS or "." in name:
            graph.load_problems.append(graph.problem(
                f"invalid graph input name {brief(name)}", key, port=name))
        spec = _plain(value)
        if isinstance(spec, str):  # short form: "name: Type"
            spec = {"type": spec}
        if not isinstance(spec, dict) or "type" not in spec:
            graph.load_problems.append(graph.problem(
                "a graph input needs at least a 'type'", key, port=name))
            continue
        if isinstance(value, yaml.MappingNode):
            _mapping(value, graph, key, "a graph input")
        for entry in spec:
            if entry not in _INPUT_KEYS:
                graph.load_problems.append(graph.problem(
                    f"unknown key {brief(entry)} in graph input; expected {sorted(_INPUT_KEYS)}",
                    key + (str(entry),), port=name))
        bounds = spec.get("range")
        graph.inputs[name] = GraphInput(
            name, _type_name(graph, spec["type"], key + ("type",), port=name), spec.get("default"),
            str(spec.get("doc") or ""),
            None if bounds is None else _bounds(graph, bounds, key + ("range",), name))


def _load_nodes(graph: Graph, block: yaml.Node | None) -> None:
    for name, value, _line in _mapping(block, graph, ("nodes",), "'nodes'"):
        key = ("nodes", name)
        if name in (INPUTS,) or "." in name or "/" in name or name.startswith("@"):
            graph.load_problems.append(graph.problem(
                f"invalid node name {brief(name)} (no '.', '/', no leading '@' (the editor's "
                "boxes), and not 'inputs')", key, node=name))
        fields = dict((k, v) for k, v, _ in _mapping(value, graph, key, f"node {brief(name)}"))
        for unknown in sorted(set(fields) - _NODE_KEYS):
            graph.load_problems.append(graph.problem(
                f"unknown key {brief(unknown)}; expected one of {sorted(_NODE_KEYS)}",
                key + (unknown,), node=name))
        if "type" not in fields:
            graph.load_problems.append(graph.problem("the node has no 'type'", key, node=name))
        instance = NodeInstance(name, _type_name(graph, _plain(fields["type"]), key + ("type",), name)
                                if "type" in fields else "")
        for port, link, _ in _mapping(fields.get("in"), graph, key + ("in",), "'in'"):
            ref = _link(graph, link, key + ("in", port), name, port)
            if ref is not None:
                instance.links[port] = ref
        for param, param_value, _ in _mapping(fields.get("params"), graph, key + ("params",),
                                              "'params'"):
            instance.params[param] = _plain(param_value)
        if "bypass" in fields:
            bypass = _plain(fields["bypass"])
            if not isinstance(bypass, bool):
                graph.load_problems.append(graph.problem(
                    f"'bypass' must be true or false, got {brief(bypass)}", key + ("bypass",), node=name))
            instance.bypass = bypass is True
        if "doc" in fields:
            instance.doc = str(_plain(fields["doc"]) or "")
        graph.nodes[name] = instance


def _link(graph: Graph, value: yaml.Node, key: tuple[str, ...], node: str | None,
          port: str) -> Ref | None:
    """The parsed link of a YAML value, or None after recording a load problem."""
    try:
        return Ref.parse(_plain(value))
    except ValueError as error:
        graph.load_problems.append(graph.problem(str(error), key, node, port))
        return None


def load_graph(path: str | os.PathLike) -> Graph:
    """Read a graph file. Raises GraphError naming the file if it cannot be read at all: it must
    be a regular file (not a pipe or a device) of at most MAX_GRAPH_BYTES, in UTF-8."""
    path = Path(path)

    def refuse(message: str, line: int | None = None) -> GraphError:
        return GraphError([Problem(f"cannot read the graph file: {message}", str(path), line)])

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not a regular file")
        if info.st_size > MAX_GRAPH_BYTES:
            raise refuse(f"{info.st_size} bytes; graph files are limited to {MAX_GRAPH_BYTES}")
        with open(path, "rb") as handle:
            data = handle.read(MAX_GRAPH_BYTES + 1)
    except OSError as error:
        raise refuse(error.strerror or str(error)) from None
    if len(data) > MAX_GRAPH_BYTES:  # it grew after the check
        raise refuse(f"more than {MAX_GRAPH_BYTES} bytes; graph files are limited to that")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refuse(f"not UTF-8 text (byte 0x{data[error.start]:02x})",
                     data.count(b"\n", 0, error.start) + 1) from None
    return parse_graph(text, path)


# ---------------------------------------------------------------- saving

class _BlockDumper(yaml.SafeDumper):
    """Block style everywhere except short lists of numbers (positions), which stay on one line;
    never anchors and aliases (loading refuses them), even for values that are shared."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = len(data) <= 4 and all(isinstance(v, (int, float, str, bool)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_BlockDumper.add_representer(list, _represent_list)
_BlockDumper.add_representer(tuple, _represent_list)


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    data: dict[str, Any] = {"schema_version": graph.schema_version}
    if graph.description:
        data["description"] = graph.description
    if graph.inputs:
        data["inputs"] = {}
        for name, gi in graph.inputs.items():
            entry: dict[str, Any] = {"type": gi.type}
            if gi.default is not None:
                entry["default"] = gi.default
            if gi.doc:
                entry["doc"] = gi.doc
            if gi.range is not None:
                entry["range"] = list(gi.range)
            data["inputs"][name] = entry
    data["nodes"] = {}
    for name, inst in graph.nodes.items():
        entry = {"type": inst.type}
        if inst.doc:
            entry["doc"] = inst.doc
        if inst.links:
            entry["in"] = {port: str(ref) for port, ref in inst.links.items()}
        if inst.params:
            entry["params"] = dict(inst.params)
        if inst.bypass:
            entry["bypass"] = True
        data["nodes"][name] = entry
    if graph.outputs:
        data["outputs"] = {name: str(ref) for name, ref in graph.outputs.items()}
    if graph.ui:
        data["ui"] = graph.ui
    return data


def dump_graph(graph: Graph) -> str:
    """YAML text of ``graph`` in block style; parsing it gives back an equal graph."""
    return yaml.dump(graph_to_dict(graph), Dumper=_BlockDumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=100)


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    """Write ``graph`` to ``path`` atomically (an existing file is replaced only on success)."""
    path = Path(path)
    write_atomic(path, dump_graph(graph).encode("utf-8"))
    graph.source = path


def require_loadable(graph: Graph) -> Graph:
    """Raise GraphError if the file had structural problems."""
    if graph.load_problems:
        raise GraphError(graph.load_problems)
    return graph
