"""Graph files used as node types (subgraphs), resolved into NodeSpecs and cached by content.

A node ``type`` ending in ``.yaml``/``.yml`` names another graph file, relative to the file
that uses it: the node's inputs are that graph's inputs, its outputs that graph's outputs, and
its parameters the inner nodes' parameters as ``inner_node.param``. Resolving one means loading
and validating the file (and every subgraph it uses); the result is cached per registry and
reused for as long as none of those files' contents has changed, so the editor can ask for a
node's spec on every frame.
"""
from __future__ import annotations

import weakref
from dataclasses import replace
from pathlib import Path

from .errors import GraphError
from .files import file_digest
from .graph import INPUTS, Graph, Ref, load_graph
from .node import InputSpec, NodeSpec, ParamSpec
from .registry import Registry
from .types import PORT_TYPES, PortType

SUBGRAPH_SUFFIXES = (".yaml", ".yml")


def is_subgraph_type(type_name: str) -> bool:
    return type_name.endswith(SUBGRAPH_SUFFIXES)


# registry -> subgraph file -> (content digest of every file it depends on, its spec)
_specs: weakref.WeakKeyDictionary[Registry, dict[Path, tuple[dict[Path, str], NodeSpec]]] = (
    weakref.WeakKeyDictionary())


def resolve_spec(graph: Graph, type_name: str, registry: Registry,
                 _stack: tuple[Path, ...] = ()) -> NodeSpec:
    """The NodeSpec of a node type: a registered id, or a subgraph file relative to ``graph``.

    Raises KeyError (unknown id), GraphError (bad subgraph), OSError (unreadable file) or
    RecursionError (a subgraph that includes itself).
    """
    if not is_subgraph_type(type_name):
        return registry.get(type_name)
    path = (graph.base_dir / type_name).resolve()
    if path in _stack or path == (graph.source.resolve() if graph.source else None):
        raise RecursionError(f"subgraph {type_name!r} includes itself")
    cached = _specs.setdefault(registry, {}).get(path)
    if cached is None or not _unchanged(cached[0]):
        cached = _specs[registry][path] = _build(path, registry, _stack + (path,))
    return replace(cached[1], id=type_name)  # the id reads as the file that names it


def _unchanged(depends_on: dict[Path, str]) -> bool:
    try:
        return all(file_digest(path) == digest for path, digest in depends_on.items())
    except OSError:
        return False


def _build(path: Path, registry: Registry, stack: tuple[Path, ...]) -> tuple[dict[Path, str], NodeSpec]:
    from .validate import validate  # validation resolves subgraphs in turn

    depends_on = {path: file_digest(path)}
    inner = load_graph(path)
    problems = validate(inner, registry, _stack=stack)
    if problems:
        raise GraphError(problems)
    inputs = {name: InputSpec(name, PORT_TYPES[gi.type], gi.default is not None)
              for name, gi in inner.inputs.items()}
    outputs = {name: _source_type(inner, ref, registry, stack) for name, ref in inner.outputs.items()}
    params: dict[str, ParamSpec] = {}
    for node_name, inst in inner.nodes.items():
        inner_spec = resolve_spec(inner, inst.type, registry, stack)
        if inner_spec.subgraph is not None:
            depends_on.update(_specs[registry][Path(inner_spec.source)][0])
        for pname, pspec in inner_spec.params.items():
            default = inst.params.get(pname, pspec.default)
            params[f"{node_name}.{pname}"] = ParamSpec(
                f"{node_name}.{pname}", pspec.type, default, pspec.optional, pspec.range,
                pspec.choices, pspec.unit, pspec.doc)
    spec = NodeSpec(id=path.as_posix(), version=1, func=None, inputs=inputs, params=params,
                    outputs=outputs, doc=inner.description, source=str(path), subgraph=inner)
    return depends_on, spec


def _source_type(graph: Graph, ref: Ref, registry: Registry, stack: tuple[Path, ...]) -> PortType:
    if ref.node == INPUTS:
        return PORT_TYPES[graph.inputs[ref.port].type]
    return resolve_spec(graph, graph.nodes[ref.node].type, registry, stack).outputs[ref.port]
