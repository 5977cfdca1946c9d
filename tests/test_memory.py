"""The heap policies of ``nodegraph.memory``: freed memory kept up to a budget between nodes,
large blocks served from the heap so that a freed image's pages are reused."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nodegraph import memory

glibc = pytest.mark.skipif(memory.free_heap_bytes() is None, reason="needs glibc 2.33+ (mallinfo2)")


class _FakeLibc:
    def __init__(self):
        self.trims = 0

    def malloc_trim(self, pad):
        self.trims += 1
        return 1


@pytest.mark.parametrize("free_bytes,trims", [(0, 0), (memory.FREE_HEAP_BUDGET - 1, 0),
                                              (memory.FREE_HEAP_BUDGET + 1, 1), (900 << 20, 1)])
def test_free_memory_is_given_back_only_beyond_the_budget(monkeypatch, free_bytes, trims):
    libc = _FakeLibc()
    monkeypatch.setattr(memory, "_libc", libc)
    monkeypatch.setattr(memory, "free_heap_bytes", lambda: free_bytes)
    memory.release_free_heap()
    assert libc.trims == trims


def test_without_a_free_byte_count_every_call_gives_memory_back(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(memory, "_libc", libc)
    monkeypatch.setattr(memory, "free_heap_bytes", lambda: None)
    memory.release_free_heap()
    assert libc.trims == 1


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(memory, "_libc", None)
    memory.release_free_heap()
    assert memory.reuse_freed_blocks() is False


@glibc
def test_large_blocks_come_from_the_heap_and_are_reused():
    """In a child process (the setting is process-wide): a 96 MB image is served from the
    heap, not a memory map of its own, and a second one after freeing it takes its place."""
    script = textwrap.dedent("""
        import ctypes, numpy as np
        from nodegraph import memory
        info = memory._libc.mallinfo2
        assert memory.reuse_freed_blocks()
        mapped_before = info().hblkhd
        image = np.ones((3000, 4000, 2), np.float32)
        heap_with_one = info().arena
        assert info().hblkhd == mapped_before, "the image got a memory map of its own"
        del image
        memory.release_free_heap()  # 96 MB free > the budget: given back, the heap stays
        again = np.ones((3000, 4000, 2), np.float32)
        assert info().arena <= heap_with_one, "the heap grew for the second image"
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
