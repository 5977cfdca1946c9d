"""How many cores this process may use: one answer for the strip pool, batch workers and
onnxruntime sessions (a light module: importing it loads nothing else)."""
from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
