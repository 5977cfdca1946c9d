"""Errors that reach the user, each saying where the problem is.

Exit codes of the command line: 2 for :class:`GraphError` and :class:`InputError` (the graph,
the options or an input file is wrong), 1 for :class:`NodeError` (a node failed while running).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in a graph file, located as precisely as possible."""

    message: str
    file: str | None = None
    line: int | None = None
    node: str | None = None
    port: str | None = None  # an input or output port, a parameter, or a graph input

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        subject = ""
        if self.node and self.port:
            subject = f"node '{self.node}', '{self.port}': "
        elif self.node:
            subject = f"node '{self.node}': "
        elif self.port:
            subject = f"'{self.port}': "
        return f"{where}{subject}{self.message}"


class GraphError(Exception):
    """A graph that cannot run, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(Exception):
    """An input file or value that a node cannot use (missing, corrupt, mismatched)."""


class NodeError(Exception):
    """A node that failed while running; names the node and keeps the original error."""

    def __init__(self, node: str, node_type: str, error: BaseException) -> None:
        self.node = node
        self.node_type = node_type
        self.error = error
        super().__init__(f"node '{node}' ({node_type}) failed: {type(error).__name__}: {error}")
