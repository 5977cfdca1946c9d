"""onnx_sessions: how many intra-op threads a session gets when the node says 0 (issue 14)."""
from __future__ import annotations

import os

import pytest

from nodegraph.nodes.ops import onnx_sessions


@pytest.mark.parametrize("omp,allowed,machine,expected", [
    ("3", 2, 16, 3),       # a batch worker's share wins
    ("", 2, 16, 2),        # taskset / cpuset: the allowed cores, not the machine's
    ("0", 2, 16, 2),       # OMP_NUM_THREADS=0 is no share
    ("", 16, 16, 0),       # the whole machine: onnxruntime's default (physical cores)
    ("x", 4, 4, 0),        # a malformed share is ignored
])
def test_threads_follow_the_share_then_the_allowed_cores(monkeypatch, omp, allowed, machine, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: machine)
    assert onnx_sessions._cores_share() == expected


@pytest.mark.parametrize("omp,allowed,expected", [("3", 16, 3), ("", 2, 2), ("0", 4, 4), ("x", 4, 4)])
def test_thread_share_is_the_environment_share_else_the_allowed_cores(monkeypatch, omp, allowed, expected):
    from nodegraph.cores import thread_share

    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed)), raising=False)
    assert thread_share() == expected
