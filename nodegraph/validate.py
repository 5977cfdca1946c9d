"""Checking a graph before it runs: every problem at once, each with file, line, node and port.

Checks: structure of the file, unknown node types (or unreadable subgraph files), unknown
ports, type mismatches on links, missing required inputs, cycles (networkx), unknown
parameters, parameter values of the wrong type or out of range, graph inputs of unknown type
or with a bad default, bad graph outputs, and unknown ``--set`` names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from .errors import GraphError, Problem
from .graph import AUTO, INPUTS, Graph, Ref, load_graph
from .node import InputSpec, NodeSpec, ParamSpec
from .registry import Registry
from .types import PORT_TYPES, PortType

SUBGRAPH_SUFFIXES = (".yaml", ".yml")


def is_subgraph_type(type_name: str) -> bool:
    return type_name.endswith(SUBGRAPH_SUFFIXES)


def resolve_spec(graph: Graph, type_name: str, registry: Registry,
                 _stack: tuple[Path, ...] = ()) -> NodeSpec:
    """The NodeSpec of a node type: a registered id, or a subgraph file relative to ``graph``.

    Raises KeyError (unknown id), GraphError (bad subgraph) or RecursionError (a subgraph that
    includes itself).
    """
    if not is_subgraph_type(type_name):
        return registry.get(type_name)
    path = (graph.base_dir / type_name).resolve()
    if path in _stack or path == (graph.source.resolve() if graph.source else None):
        raise RecursionError(f"subgraph {type_name!r} includes itself")
    inner = load_graph(path)
    problems = validate(inner, registry, _stack=_stack + (path,))
    if problems:
        raise GraphError(problems)
    inputs = {name: InputSpec(name, PORT_TYPES[gi.type], gi.default is not None)
              for name, gi in inner.inputs.items()}
    outputs: dict[str, PortType] = {}
    for name, ref_text in inner.outputs.items():
        outputs[name] = _source_type(inner, Ref.parse(ref_text), registry, _stack + (path,))
    params: dict[str, ParamSpec] = {}
    for node_name, inst in inner.nodes.items():
        inner_spec = resolve_spec(inner, inst.type, registry, _stack + (path,))
        for pname, pspec in inner_spec.params.items():
            default = inst.params.get(pname, pspec.default)
            params[f"{node_name}.{pname}"] = ParamSpec(
                f"{node_name}.{pname}", pspec.type, default, pspec.optional, pspec.range,
                pspec.choices, pspec.unit, pspec.doc)
    return NodeSpec(id=type_name, version=1, func=None, inputs=inputs, params=params,
                    outputs=outputs, doc=inner.description, source=str(path), subgraph=inner)


def _source_type(graph: Graph, ref: Ref, registry: Registry, stack: tuple[Path, ...]) -> PortType:
    if ref.node == INPUTS:
        return PORT_TYPES[graph.inputs[ref.port].type]
    return resolve_spec(graph, graph.nodes[ref.node].type, registry, stack).outputs[ref.port]


def validate(graph: Graph, registry: Registry, *, _stack: tuple[Path, ...] = ()) -> list[Problem]:
    """Every problem of ``graph`` (empty list when it can run)."""
    problems = list(graph.load_problems)
    specs: dict[str, NodeSpec] = {}
    for name, inst in graph.nodes.items():
        key = ("nodes", name, "type")
        if not inst.type:
            continue
        try:
            specs[name] = resolve_spec(graph, inst.type, registry, _stack)
        except KeyError:
            problems.append(graph.problem(
                f"unknown node type {inst.type!r} (see 'nodegraph nodes' for the known types)",
                key, node=name))
        except (GraphError, RecursionError, OSError) as error:
            problems.append(graph.problem(f"subgraph {inst.type!r} is not usable: {error}",
                                          key, node=name))

    problems += _check_graph_inputs(graph)
    dependencies = nx.DiGraph()
    dependencies.add_nodes_from(graph.nodes)
    for name, inst in graph.nodes.items():
        spec = specs.get(name)
        for port, link_text in inst.links.items():
            key = ("nodes", name, "in", port)
            if spec is not None and port not in spec.inputs:
                problems.append(graph.problem(
                    f"unknown input port; {inst.type} has inputs {sorted(spec.inputs) or 'none'}",
                    key, name, port))
                continue
            source_type = _check_link(graph, specs, link_text, key, name, port, problems)
            if source_type is not None and spec is not None:
                target = spec.inputs[port].type
                if not source_type.can_feed(target):
                    problems.append(graph.problem(
                        f"type mismatch: {link_text} is {source_type.name}, the input is "
                        f"{target.name}", key, name, port))
            if isinstance(link_text, str) and link_text.split(".")[0] in graph.nodes:
                dependencies.add_edge(link_text.split(".")[0], name)
        if spec is not None:
            for port, input_spec in spec.inputs.items():
                if not input_spec.optional and port not in inst.links:
                    problems.append(graph.problem(
                        f"required input '{port}' ({input_spec.type.name}) is not linked",
                        ("nodes", name), name, port))
            problems += _check_params(graph, name, spec)
    for cycle in nx.simple_cycles(dependencies):
        first = sorted(cycle)[0]
        loop = " -> ".join(cycle + [cycle[0]])
        problems.append(graph.problem(f"cycle: {loop}", ("nodes", first), node=first))
    for out_name, link_text in graph.outputs.items():
        _check_link(graph, specs, link_text, ("outputs", out_name), None, out_name, problems)
    return problems


def _check_link(graph: Graph, specs: dict[str, NodeSpec], link_text: Any, key: tuple[str, ...],
                node: str | None, port: str, problems: list[Problem]) -> PortType | None:
    """Type of the value a link points at, or None (after recording a problem) if it is broken."""
    try:
        ref = Ref.parse(link_text)
    except ValueError as error:
        problems.append(graph.problem(str(error), key, node, port))
        return None
    if ref.node == INPUTS:
        if ref.port not in graph.inputs:
            problems.append(graph.problem(
                f"{link_text}: no graph input {ref.port!r} (graph inputs: "
                f"{sorted(graph.inputs) or 'none'})", key, node, port))
            return None
        return PORT_TYPES.get(graph.inputs[ref.port].type)
    if ref.node not in graph.nodes:
        problems.append(graph.problem(f"{link_text}: no node named {ref.node!r}", key, node, port))
        return None
    source_spec = specs.get(ref.node)
    if source_spec is None:
        return None
    if ref.port not in source_spec.outputs:
        problems.append(graph.problem(
            f"{link_text}: node {ref.node!r} ({source_spec.id}) has no output {ref.port!r}; "
            f"its outputs are {sorted(source_spec.outputs)}", key, node, port))
        return None
    return source_spec.outputs[ref.port]


def _check_params(graph: Graph, name: str, spec: NodeSpec) -> list[Problem]:
    problems = []
    for pname, value in graph.nodes[name].params.items():
        key = ("nodes", name, "params", pname)
        pspec = spec.params.get(pname)
        if pspec is None:
            problems.append(graph.problem(
                f"unknown parameter; {spec.id} has parameters {sorted(spec.params) or 'none'}",
                key, name, pname))
            continue
        problem = pspec.problem_with(value)
        if problem:
            problems.append(graph.problem(f"bad value: {problem}", key, name, pname))
    return problems


def _check_graph_inputs(graph: Graph) -> list[Problem]:
    problems = []
    for name, gi in graph.inputs.items():
        key = ("inputs", name)
        ptype = PORT_TYPES.get(gi.type)
        if ptype is None:
            problems.append(graph.problem(
                f"unknown type {gi.type!r}; known types: {', '.join(PORT_TYPES)}",
                key + ("type",), port=name))
            continue
        if gi.default is None or gi.default == AUTO:
            continue
        value = gi.default
        if ptype.name in ("Rect", "Shift") and isinstance(value, list):
            value = tuple(value)
        problem = ptype.problem_with(value)
        if problem:
            problems.append(graph.problem(f"bad default: {problem}", key + ("default",), port=name))
    return problems


def apply_settings(graph: Graph, settings: list[str], registry: Registry) -> Graph:
    """A copy of ``graph`` with ``--set NAME=VALUE`` bindings applied.

    ``NAME`` is a graph input (``wide=a.jpg``; relative paths are taken from the current
    folder) or a node parameter (``defocus.gamma=4``; for a subgraph node
    ``sub.inner.param=1``). Raises GraphError listing every unknown name or bad value.
    """
    result = graph.copy()
    problems: list[Problem] = []
    for setting in settings:
        name, sep, text = setting.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem(f"--set {setting!r}: expected NAME=VALUE", graph.file))
            continue
        if name in result.inputs:
            problems += _set_input(result, name, text)
            continue
        node_name, _, param = name.partition(".")
        inst = result.nodes.get(node_name)
        if inst is None or not param:
            known = sorted(result.inputs) + ["NODE.PARAM"]
            problems.append(Problem(f"--set {name}: no graph input or node parameter of that "
                                    f"name (graph inputs: {', '.join(known)})", graph.file,
                                    port=name))
            continue
        try:
            spec = resolve_spec(result, inst.type, registry)
        except (KeyError, GraphError, RecursionError, OSError):
            continue  # reported by validate()
        pspec = spec.params.get(param)
        if pspec is None:
            problems.append(Problem(f"--set {name}: {inst.type} has no parameter {param!r} "
                                    f"(parameters: {sorted(spec.params) or 'none'})",
                                    graph.file, graph.line("nodes", node_name), node_name, param))
            continue
        try:
            inst.params[param] = pspec.parse(text)
        except ValueError as error:
            problems.append(Problem(f"--set {name}: {error}", graph.file,
                                    graph.line("nodes", node_name), node_name, param))
    if problems:
        raise GraphError(problems)
    return result


def _set_input(graph: Graph, name: str, text: str) -> list[Problem]:
    gi = graph.inputs[name]
    ptype = PORT_TYPES.get(gi.type)
    if ptype is None:
        return []  # reported by validate()
    if text.strip().lower() == AUTO:
        gi.default = AUTO
        return []
    try:
        value = ptype.parse(text)
    except ValueError as error:
        return [Problem(f"--set {name}: {error}", graph.file, graph.line("inputs", name), port=name)]
    if ptype.name in ("Path", "OutPath"):
        value = str(Path(value).expanduser().resolve())
    gi.default = list(value) if isinstance(value, tuple) else value
    return []


def check(graph: Graph, registry: Registry) -> Graph:
    """``graph`` itself when it is valid; GraphError with every problem otherwise."""
    problems = validate(graph, registry)
    if problems:
        raise GraphError(problems)
    return graph
