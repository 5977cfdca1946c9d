"""Errors that reach the user, each saying where the problem is.

Exit codes of the command line: 2 for :class:`GraphError` and :class:`InputError` (the graph,
the options or an input file is wrong), 1 for :class:`NodeError` (a node failed while running).
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

MESSAGE_LIMIT = 400  # characters of one problem's message; names are cut to NAME_LIMIT
NAME_LIMIT = 60

# Quotes values in messages: a value from a file can be megabytes long, or deeply nested.
_brief_repr = reprlib.Repr()
_brief_repr.maxstring = _brief_repr.maxother = 60
_brief_repr.maxlist = _brief_repr.maxtuple = _brief_repr.maxdict = _brief_repr.maxset = 6
_brief_repr.maxlevel = 3


def brief(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters, for quoting user-supplied values in messages.

    reprlib stops at its limits instead of building the whole text, so quoting a huge or
    deeply nested value costs little.
    """
    return _brief_repr.repr(value)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = " ".join(str(text).splitlines())
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        node = clip(self.node, NAME_LIMIT) if self.node else None
        port = clip(self.port, NAME_LIMIT) if self.port else None
        subject = ""
        if node and port:
            subject = f"node '{node}', '{port}': "
        elif node:
            subject = f"node '{node}': "
        elif port:
            subject = f"'{port}': "
        return f"{where}{subject}{clip(self.message, MESSAGE_LIMIT)}"


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
