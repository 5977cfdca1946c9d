"""onnxruntime sessions for the ONNX models that nodes run, one per (file content, threads).

Creating a session parses and optimises the model (tens of ms to seconds), so sessions are
kept for the process. The key is the file's *content* digest, not its name or mtime: a model
replaced at the same path gets a new session, and the same digest is what the node's cache
fingerprint (:func:`model_fingerprint`) records, so cached results never outlive their model.
"""
from __future__ import annotations

import os
import threading

from nodegraph.cores import available_cores, environment_share
from nodegraph.errors import InputError
from nodegraph.files import file_digest

_sessions: dict[tuple[str, int], object] = {}
_lock = threading.Lock()
_KEEP = 4  # distinct models kept at once (a flow model and a fusion model, plus swaps)


def onnx_session(model_path: str, threads: int = 0):
    """The onnxruntime CPU session of ``model_path`` with ``threads`` intra-op threads.

    ``threads=0`` means the process's share of the cores: ``OMP_NUM_THREADS`` when set (a batch
    worker's share; onnxruntime itself ignores it), else the cores the process may run on when
    that is fewer than the machine's (``taskset``, a container's cpuset: onnxruntime's own
    default counts the machine's cores and would start more threads than there are cores),
    else onnxruntime's default (its count of physical cores).
    InputError (one line, naming the file) when the file is missing or not a loadable model.
    """
    import onnxruntime as ort

    if not threads:
        threads = _cores_share()
    try:
        key = (file_digest(model_path), int(threads))
    except OSError as error:
        raise InputError(f"cannot read ONNX model {model_path!r}: {error.strerror}") from None
    with _lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Lean: without the arena, the activations of a run go back to the allocator when
            # it ends (an arena keeps its high-water mark, ~0.2-0.8 GB for a fusion tile, for
            # the rest of the process); memory patterns only pay off for one fixed input shape,
            # and tiles differ. Measured at 12 MP on the loaded shared machine: -0.23 GB with 1024 px
            # tiles; any time cost was within its noise (the model card's quiet 2048 px run: +40 %).
            options.enable_cpu_mem_arena = False
            options.enable_mem_pattern = False
            options.log_severity_level = 3  # errors only: a bad file is reported below, once
            try:
                session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - any load failure is a bad user-supplied file
                first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                raise InputError(f"cannot load ONNX model {model_path!r}: {first_line}") from None
            while len(_sessions) >= _KEEP:
                _sessions.pop(next(iter(_sessions)))
            _sessions[key] = session
    return session


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
