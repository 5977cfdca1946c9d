"""The node registry: every node type that installed distributions declare.

Node types arrive through the entry-point group ``nodegraph.nodes``: an entry point names a
module (or a package), and every function in it decorated with :func:`nodegraph.node` is
registered. nodegraph's own nodes come the same way (its ``pyproject.toml`` declares them), so
a built-in node is found exactly as a plugin's is; only the label differs ("builtin" for the
``nodegraph`` distribution, "plugin NAME" for others). A plugin that fails to import is recorded in
:attr:`Registry.failures` with its name and the error, and the other plugins still load.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import traceback
import warnings
from dataclasses import dataclass, replace
from types import ModuleType

from .node import NodeSpec, spec_of

ENTRY_POINT_GROUP = "nodegraph.nodes"
BUILTIN_DISTRIBUTION = "nodegraph"


@dataclass(frozen=True)
class PluginFailure:
    name: str  # entry point name
    target: str  # the module it points to
    error: str  # one line
    details: str  # the traceback


class Registry:
    """Node types by id."""

    def __init__(self) -> None:
        self.specs: dict[str, NodeSpec] = {}
        self.failures: list[PluginFailure] = []

    def add(self, spec: NodeSpec) -> None:
        known = self.specs.get(spec.id)
        if known is not None and known.func is not spec.func:
            raise ValueError(f"node type {spec.id!r} from {spec.source} is already registered "
                             f"by {known.source}")
        self.specs[spec.id] = spec

    def add_module(self, module: ModuleType, source: str) -> int:
        """Register every node function defined in ``module`` (and its submodules)."""
        count = 0
        for module_ in _walk(module):
            for value in vars(module_).values():
                spec = spec_of(value)
                if spec is not None and value.__module__ == module_.__name__:
                    self.add(replace(spec, source=source))
                    count += 1
        return count

    def get(self, node_id: str) -> NodeSpec:
        return self.specs[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.specs

    def __iter__(self):
        return iter(sorted(self.specs.values(), key=lambda s: s.id))


def _walk(module: ModuleType) -> list[ModuleType]:
    modules = [module]
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
            modules.append(importlib.import_module(info.name))
    return modules


def load_registry(include_plugins: bool = True) -> Registry:
    """A registry with nodegraph's own nodes and, unless told otherwise, every plugin."""
    registry = Registry()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        builtin = entry_point.dist is not None and entry_point.dist.name == BUILTIN_DISTRIBUTION
        if not (builtin or include_plugins):
            continue
        try:
            registry.add_module(entry_point.load(), "builtin" if builtin else f"plugin {entry_point.name}")
        except Exception as error:  # a broken plugin must not take the others down
            failure = PluginFailure(entry_point.name, entry_point.value,
                                    f"{type(error).__name__}: {error}",
                                    traceback.format_exc())
            registry.failures.append(failure)
            warnings.warn(f"plugin {failure.name!r} ({failure.target}) failed to load: "
                          f"{failure.error}", stacklevel=2)
    return registry


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _default
    if _default is None:
        _default = load_registry()
    return _default
