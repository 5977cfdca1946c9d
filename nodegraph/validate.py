"""Checking a graph before it runs: every problem at once, each with file, line, node and port.

Checks: structure of the file, unknown node types (or unreadable subgraph files), unknown
ports, type mismatches on links, missing required inputs, cycles (networkx), unknown
parameters, parameter values of the wrong type or out of range, graph inputs of unknown type
or with a bad default, bad graph outputs, and unknown ``--set`` names.
"""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from .errors import GraphError, Problem
from .graph import AUTO, INPUTS, Graph, Ref
from .node import NodeSpec
from .registry import Registry
from .subgraph import resolve_spec
from .types import PORT_TYPES, PortType


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
    for name, inst in graph.nodes.items():
        spec = specs.get(name)
        for port, ref in inst.links.items():
            key = ("nodes", name, "in", port)
            if spec is not None and port not in spec.inputs:
                problems.append(graph.problem(
                    f"unknown input port; {inst.type} has inputs {sorted(spec.inputs) or 'none'}",
                    key, name, port))
                continue
            source_type = _check_link(graph, specs, ref, key, name, port, problems)
            if source_type is not None and spec is not None:
                target = spec.inputs[port].type
                if not source_type.can_feed(target):
                    problems.append(graph.problem(
                        f"type mismatch: {ref} is {source_type.name}, the input is "
                        f"{target.name}", key, name, port))
        if spec is not None:
            for port, input_spec in spec.inputs.items():
                if not input_spec.optional and port not in inst.links:
                    problems.append(graph.problem(
                        f"required input '{port}' ({input_spec.type.name}) is not linked",
                        ("nodes", name), name, port))
            problems += _check_params(graph, name, spec)
    for cycle in nx.simple_cycles(graph.dependencies()):
        first = sorted(cycle)[0]
        loop = " -> ".join(cycle + [cycle[0]])
        problems.append(graph.problem(f"cycle: {loop}", ("nodes", first), node=first))
    for out_name, ref in graph.outputs.items():
        _check_link(graph, specs, ref, ("outputs", out_name), None, out_name, problems)
    return problems


def _check_link(graph: Graph, specs: dict[str, NodeSpec], ref: Ref, key: tuple[str, ...],
                node: str | None, port: str, problems: list[Problem]) -> PortType | None:
    """Type of the value a link points at, or None (after recording a problem) if it is broken."""
    link_text = str(ref)
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
        problem = ptype.problem_with(ptype.from_yaml(gi.default))
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
    if ptype.file_role is not None:  # a path given on the command line is the user's
        value = str(Path(value).expanduser().resolve())
    gi.default = list(value) if isinstance(value, tuple) else value
    return []


def check(graph: Graph, registry: Registry) -> Graph:
    """``graph`` itself when it is valid; GraphError with every problem otherwise."""
    problems = validate(graph, registry)
    if problems:
        raise GraphError(problems)
    return graph
