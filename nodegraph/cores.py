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


def environment_share() -> int | None:
    """OMP_NUM_THREADS when it is a positive integer (``nodegraph batch`` sets it to each
    worker's share of the cores), else None."""
    share = os.environ.get("OMP_NUM_THREADS", "")
    return int(share) if share.isdigit() and int(share) > 0 else None


def thread_share() -> int:
    """How many threads this process should keep busy: its share of the cores when it has one
    (:func:`environment_share`), else every core it may run on."""
    return environment_share() or available_cores()
