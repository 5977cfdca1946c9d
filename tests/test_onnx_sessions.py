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


def test_an_arena_session_run_releasing_gives_the_same_output():
    """The fusion's session (arena, shrunk after each run) against the kept one (no arena): the
    same network, so the same values. A session with an arena is new each time, never kept."""
    import numpy as np

    from nodegraph.nodes.hzsr import fusion_unet

    model = fusion_unet.resolve_model(fusion_unet.BUNDLED_MODEL)
    plain, lean = onnx_sessions.onnx_session(model, 1), onnx_sessions.onnx_session(model, 1, arena=True)
    assert onnx_sessions.onnx_session(model, 1) is plain and not plain.get_session_options().enable_cpu_mem_arena
    assert lean.get_session_options().enable_cpu_mem_arena
    assert onnx_sessions.onnx_session(model, 1, arena=True) not in (lean, plain)
    x = np.random.default_rng(0).random((1, 3, 128, 192), dtype=np.float32)
    expected = plain.run(None, fusion_unet.network_feed(plain)(x))[0]
    for _ in range(2):  # a second run on the shrunk arena too
        got = onnx_sessions.run_releasing(lean, fusion_unet.network_feed(lean)(x))[0]
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
