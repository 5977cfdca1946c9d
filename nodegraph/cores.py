"""How many cores this process may use: one answer for the strip pool, batch workers and
onnxruntime sessions (a light module: importing it loads nothing else)."""
from __future__ import annotations

import os
from collections.abc import Callable


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


BANDED_PIXELS = 1 << 21  # from this many pixels on, in_row_bands cuts the work into bands


def in_row_bands(height: int, width: int, run_band: Callable[[slice], None]) -> None:
    """Call ``run_band(rows)`` over [0, ``height``): once with all rows for an image under
    BANDED_PIXELS pixels, else once per band of rows, one band per core, all at once on
    threads. For per-pixel work by a library that runs on one thread and releases the GIL
    (NumPy's casts and arithmetic, some OpenCV functions): the bands' fresh output pages are
    faulted in by all the cores too."""
    bands = min(thread_share(), height) if height * width >= BANDED_PIXELS else 1
    if bands <= 1:
        run_band(slice(0, height))
        return
    from concurrent.futures import ThreadPoolExecutor  # loaded with the first large image

    cuts = [height * band // bands for band in range(bands + 1)]
    with ThreadPoolExecutor(bands) as pool:
        list(pool.map(run_band, [slice(top, bottom) for top, bottom in zip(cuts, cuts[1:])]))
