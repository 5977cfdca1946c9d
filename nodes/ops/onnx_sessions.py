"""onnxruntime sessions for the ONNX models that nodes run, one per (file content, threads).

Creating a session parses and optimises the model (tens of ms to seconds), so sessions are
kept for the process. The key is the file's *content* digest, not its name or mtime: a model
replaced at the same path gets a new session, and the same digest is what the node's cache
fingerprint (:func:`model_fingerprint`) records, so cached results never outlive their model.

Memory: a kept session has no arena, so a run's activations go back to the C allocator when
it ends (an arena would keep its high-water mark for the rest of the process). glibc, though,
keeps much of what a large run frees in its heap, fragmented among the caller's own buffers:
at 12 MP the fusion peaked at 1031-1062 MB on such a session. ``arena=True`` gives a new
session, not kept, whose runs allocate from onnxruntime's arena; :func:`run_releasing` shrinks
the arena after each run, and what it still holds (~35 MB) goes with the session when the
caller drops it. The same fusion peaked at 965 MB (984 MB without the shrinking), and the
nodes after it ran ~35 MB lower than with such a session kept; creating one takes ~10-30 ms.
A caller whose runs are many and alike (the staged fusion's windows) calls ``session.run``
instead: the arena then serves each run from pages already mapped.
"""
from __future__ import annotations

import functools
import os
import threading

from nodegraph.cores import available_cores, environment_share
from nodegraph.errors import InputError
from nodegraph.files import file_digest

_sessions: dict[tuple[str, int], object] = {}
_lock = threading.Lock()
_KEEP = 4  # distinct models kept at once (a flow model and a fusion model, plus swaps)


def onnx_session(model_path: str, threads: int = 0, arena: bool = False):
    """The onnxruntime CPU session of ``model_path`` with ``threads`` intra-op threads, kept for
    the process; with ``arena``, a new one with an arena, not kept: run it with
    :func:`run_releasing` and drop it when done (module doc).

    ``threads=0`` means the process's share of the cores: ``OMP_NUM_THREADS`` when set (a batch
    worker's share; onnxruntime itself ignores it), else the cores the process may run on when
    that is fewer than the machine's (``taskset``, a container's cpuset: onnxruntime's own
    default counts the machine's cores and would start more threads than there are cores),
    else onnxruntime's default (its count of physical cores).
    InputError (one line, naming the file) when the file is missing or not a loadable model.
    """
    if not threads:
        threads = _cores_share()
    try:
        key = (file_digest(model_path), int(threads))
    except OSError as error:
        raise InputError(f"cannot read ONNX model {model_path!r}: {error.strerror}") from None
    if arena:
        return _new_session(model_path, int(threads), arena=True)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _new_session(model_path, int(threads), arena=False)
            while len(_sessions) >= _KEEP:
                _sessions.pop(next(iter(_sessions)))
            _sessions[key] = session
    return session


def new_arena_session(model: bytes, threads: int):
    """A session with an arena, not kept (as ``onnx_session(..., arena=True)``), for a model
    held in memory: a stage cut from a model file (:mod:`nodegraph.nodes.ops.onnx_stages`)."""
    return _new_session(model, threads or _cores_share(), arena=True)


def _new_session(model_path: str | bytes, threads: int, arena: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = arena  # module doc
    # memory patterns only pay off for one fixed input shape, and tiles differ
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: a bad file is reported below, once
    try:
        return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - any load failure is a bad user-supplied file
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        name = "held in memory" if isinstance(model_path, bytes) else repr(model_path)
        raise InputError(f"cannot load ONNX model {name}: {first_line}") from None


def run_releasing(session, feed: dict) -> list:
    """``session.run(None, feed)``, with the arena shrunk when the run ends for a session that
    has one (``arena=True``): its free regions go back to the OS."""
    if not session.get_session_options().enable_cpu_mem_arena:
        return session.run(None, feed)
    return session.run(None, feed, _releasing_options())


@functools.cache
def _releasing_options():
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _cores_share() -> int:
    """OMP_NUM_THREADS when set, else the cores this process is allowed when fewer than the
    machine has, else 0 (onnxruntime's default)."""
    share = environment_share()
    if share:
        return share
    allowed = available_cores()
    return allowed if allowed < (os.cpu_count() or 0) else 0


def model_fingerprint(model_path: str | None) -> str:
    """Content digest of a model file for a node's cache key ('' without a file, 'missing:...'
    when it cannot be read: the node then fails when it runs, with its own message)."""
    if not model_path:
        return ""
    try:
        return file_digest(model_path)
    except OSError:
        return f"missing:{model_path}"
