"""Checking a graph before it runs: every problem at once, each with file, line, node and port.

Checks: structure of the file, unknown node types (or unreadable subgraph files), unknown
ports, type mismatches on links, missing required inputs, cycles (networkx), unknown
parameters, parameter values of the wrong type or out of range, graph inputs of unknown type
or with a bad default (or one outside the input's ``range``), constant values outside what
the port they feed accepts (a zoom below 1, an output file of an unknown extension), a graph
input without a value that feeds an input a node requires, bad graph outputs, unknown
``--set`` names or values (outside a graph input's ``range`` too), and bypassed nodes whose
readers would get no value (:func:`_check_bypass`).
"""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from .errors import GraphError, Problem, brief, clip
from .graph import AUTO, INPUTS, Graph, Ref
from .node import NodeSpec, bypass_frame_port, bypass_sources
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
                f"unknown node type {brief(inst.type)} (see 'nodegraph nodes' for the known types)",
                key, node=name))
        except (GraphError, RecursionError, OSError) as error:
            problems.append(graph.problem(
                f"subgraph {brief(inst.type)} is not usable: {_first_problem(error)}", key,
                node=name))

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
                elif not (input_spec.optional or inst.bypass or _stack):
                    # (a bypassed node reads nothing; a subgraph's caller gives its inputs)
                    problems += _check_given(graph, inst.links[port], ("nodes", name, "in", port),
                                             name, port)
            problems += _check_params(graph, name, spec)
    for cycle in nx.simple_cycles(graph.dependencies()):
        first = sorted(cycle)[0]
        loop = " -> ".join(cycle + [cycle[0]])
        problems.append(graph.problem(f"cycle: {loop}", ("nodes", first), node=first))
    for out_name, ref in graph.outputs.items():
        _check_link(graph, specs, ref, ("outputs", out_name), None, out_name, problems)
    if not problems:  # the value flow is only meaningful in a graph that is otherwise sound
        problems += _check_constants(graph, specs)
        problems += _check_bypass(graph, specs)
    return problems


def _has_constant(graph: Graph, name: str) -> bool:
    default = graph.inputs[name].default
    return default is not None and default != AUTO


def input_problem(graph: Graph, name: str, message: str) -> Problem:
    """A problem with graph input ``name``, located where its value was given: the command-line
    option that bound it (``--set zoom=0.5``), else the line of its default in the file."""
    option = graph.bound.get(name)
    if option is not None:
        return Problem(f"{option}: {message}")
    return graph.problem(message, ("inputs", name, "default"), port=name)


def _check_constants(graph: Graph, specs: dict[str, NodeSpec]) -> list[Problem]:
    """Graph-input values that a port they feed does not accept (range, file extension)."""
    problems = []
    for name, inst in graph.nodes.items():
        for port, ref in inst.links.items():
            if ref.node != INPUTS or not _has_constant(graph, ref.port) or name not in specs:
                continue
            ptype = specs[name].inputs[port].type
            value = PORT_TYPES[graph.inputs[ref.port].type].resolve(graph.inputs[ref.port].default,
                                                                    graph.base_dir)
            problem = ptype.constraint_problem(value)
            if problem is None:
                continue
            if ptype.file_role and ref.port not in graph.bound:  # an option shows its value
                problem = f"{value}: {problem}"
            default = graph.inputs[ref.port].default
            if (ptype.file_role == "read" and ref.port not in graph.bound
                    and not Path(str(default)).expanduser().is_absolute()):
                problem += (f" (the default {default!r} is taken from the graph file's folder, "
                            f"{graph.base_dir.resolve()}; give the file with --set {ref.port}=PATH)")
            problems.append(input_problem(
                graph, ref.port, f"{problem} (given to node '{name}', input '{port}')"))
    return problems


def _check_bypass(graph: Graph, specs: dict[str, NodeSpec]) -> list[Problem]:
    """Bypassed nodes that would leave a required input of a reader without a value.

    Follows values through the graph in order: a graph input has a value unless it is
    ``auto`` or empty; a node that runs gives all its outputs; a bypassed node gives what
    :func:`~nodegraph.node.bypass_sources` says (a pass-through has a value when its input
    does). Where a bypass leaves no value, the reason is carried along, so a chain of
    bypasses is reported at the bypass that broke it, with the line of its ``bypass:`` key.
    """
    # (node, port) -> True (a value), None (no value, not a bypass's doing) or the reason
    # a bypass left it without one.
    state: dict[tuple[str, str], bool | str | None] = {}

    def source_state(ref: Ref) -> bool | str | None:
        if ref.node == INPUTS:
            return True if _has_constant(graph, ref.port) else None
        return state.get((ref.node, ref.port), True)

    problems = []
    dag = graph.dependencies()
    for name in nx.topological_sort(dag):
        inst, spec = graph.nodes[name], specs.get(name)
        if spec is None:
            continue
        inputs = {port: source_state(ref) for port, ref in inst.links.items()}
        for port, value in ({} if inst.bypass else inputs).items():  # a bypassed node reads none
            if isinstance(value, str) and not spec.inputs[port].optional:
                bypassed = inst.links[port].node
                problems.append(graph.problem(
                    f"bypass cannot be honoured: {value}, and node '{name}' requires it "
                    f"(input '{port}')", ("nodes", bypassed, "bypass"), node=bypassed))
        if not inst.bypass:
            continue
        has_value = {port for port, value in inputs.items() if value is True}.__contains__
        sources = bypass_sources(spec, has_value)
        frame_port = bypass_frame_port(spec, has_value)
        for out, port in sources.items():
            out_type = spec.outputs[out]
            if port is not None or (out_type.fills_on_bypass
                                    and (frame_port is not None or not out_type.raster)):
                continue
            declared = spec.bypass.get(out, "")
            upstream = next((inputs[p] for p in ([declared] if declared else spec.inputs)
                             if isinstance(inputs.get(p), str)), None)
            if upstream is not None:
                state[(name, out)] = upstream
            elif declared:
                state[(name, out)] = (f"'{name}' passes its input '{declared}' through "
                                      f"to '{out}', and that input has no value here")
            else:
                what = "a value" if not out_type.fills_on_bypass else "the size of its zeros"
                state[(name, out)] = (f"'{name}' has no input to give its output "
                                      f"'{out}' ({out_type.name}) {what}")
    return list(dict.fromkeys(problems))


def _first_problem(error: BaseException) -> str:
    """One line for an error that may hold many problems (a subgraph's GraphError)."""
    problems = getattr(error, "problems", None)
    if not problems:
        return str(error)
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def _check_given(graph: Graph, ref: Ref, key: tuple[str, ...], node: str, port: str) -> list[Problem]:
    """A problem when ``ref`` is a graph input with no value (null or auto) feeding a required input."""
    if ref.node != INPUTS or ref.port not in graph.inputs or _has_constant(graph, ref.port):
        return []
    return [graph.problem(f"required input, but graph input '{ref.port}' has no value: give it a "
                          f"default or set it with --set {ref.port}=VALUE", key, node, port)]


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
                f"unknown type {brief(gi.type)}; known types: {', '.join(PORT_TYPES)}",
                key + ("type",), port=name))
            continue
        if gi.range is not None and not ptype.numeric:
            problems.append(graph.problem(f"'range' is only for numbers, not {ptype.name}",
                                          key + ("range",), port=name))
            continue
        if gi.default is None or gi.default == AUTO:
            continue
        value = ptype.from_yaml(gi.default)
        problem = ptype.problem_with(value) or _range_problem(ptype, value, gi.range)
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
            problems.append(Problem(f"--set {brief(setting)}: expected NAME=VALUE", graph.file))
            continue
        if name in result.inputs:
            problems += _set_input(result, name, text)
            continue
        node_name, _, param = name.partition(".")
        inst = result.nodes.get(node_name)
        if inst is not None and param == BYPASS:
            problems += _set_bypass(result, node_name, text)
            continue
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
            problems.append(Problem(f"--set {name}: {error}{_accepted(pspec.range)}", graph.file,
                                    graph.line("nodes", node_name), node_name, param))
    if problems:
        raise GraphError(problems)
    return result


BYPASS = "bypass"  # --set NODE.bypass=true: the node's bypass flag, not a parameter


def _set_bypass(graph: Graph, node: str, text: str) -> list[Problem]:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return [Problem(f"--set {node}.bypass: expected true or false, got {text!r}", graph.file,
                        graph.line("nodes", node), node, BYPASS)]
    graph.nodes[node].bypass = value in ("true", "1", "yes", "on")
    graph.lines.pop(("nodes", node, BYPASS), None)  # the flag no longer comes from that line
    return []


def _set_input(graph: Graph, name: str, text: str) -> list[Problem]:
    gi = graph.inputs[name]
    ptype = PORT_TYPES.get(gi.type)
    if ptype is None:
        return []  # reported by validate()
    if text.strip().lower() == AUTO:
        gi.default = AUTO
        return []
    option = f"--set {name}={clip(text, 80)}"  # problems with the value name the option
    try:
        value = ptype.parse(text)
    except ValueError as error:
        problem = f"{error}{_accepted(gi.range)}"
    else:
        problem = ptype.problem_with(value) or _range_problem(ptype, value, gi.range)
    if problem:
        return [Problem(f"{option}: {problem}")]
    if ptype.file_role is not None:  # a path given on the command line is the user's
        try:
            value = str(Path(value).expanduser().resolve())
        except (ValueError, OSError, RuntimeError) as error:  # a NUL byte, a symlink loop
            return [Problem(f"{option}: not a usable path: {error}")]
    gi.default = list(value) if isinstance(value, tuple) else value
    graph.bound[name] = option
    return []


def _range_problem(ptype: PortType, value, bounds: tuple[float, float] | None) -> str | None:
    """Why ``value`` lies outside a graph input's ``range`` (checked as the port narrowed to
    it), or None."""
    if bounds is None or not ptype.numeric:
        return None
    return ptype.within(*bounds).constraint_problem(value)


def _accepted(bounds: tuple[float, float] | None) -> str:
    """' (accepted range [lo, hi])' for a message about a bounded value; '' without bounds."""
    return "" if bounds is None else f" (accepted range [{bounds[0]:g}, {bounds[1]:g}])"


def check(graph: Graph, registry: Registry) -> Graph:
    """``graph`` itself when it is valid; GraphError with every problem otherwise."""
    problems = validate(graph, registry)
    if problems:
        raise GraphError(problems)
    return graph
