"""How freed heap memory is kept and given back (glibc; a no-op elsewhere). A light module:
loads only ctypes.

Two policies, measured on 12 MP runs (README, "Speed and memory"):

- :func:`release_free_heap`, after each node: nodes free many buffers (onnxruntime
  activations, OpenCV temporaries, whole-image intermediates) that glibc keeps in its heaps;
  giving them back keeps the next node's peak from stacking on the last one's garbage
  (-160 MB at the blend and the uncrop, measured when every free byte was given back). Only
  the excess over FREE_HEAP_BUDGET is worth the system's time: pages given back are zeroed
  again by the kernel when the next node touches them.
- :func:`reuse_freed_blocks`, once per process by the command line: glibc serves blocks of
  32 MB and more (every full-resolution image) as fresh memory maps, unmapped when freed,
  so each new image was zeroed page by page by the kernel (a quarter of all CPU samples of
  a 12 MP run on a VM, ~2.7 GB of fresh maps). Served from the heap instead, a freed image's
  pages are reused by the next one.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# bytes of free heap kept for reuse between nodes: at 12 MP 128 MB ran 0.89x, 0.91x and 0.96x
# the time of 64 MB (three rounds of 6-8 interleaved processes) at the same peak (~900 MB);
# 256 MB ran faster still but peaked at 990-1010 MB
FREE_HEAP_BUDGET = 128 << 20
_M_TRIM_THRESHOLD = -1       # mallopt parameters (glibc's malloc.h)
_M_MMAP_MAX = -4


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _load_libc() -> tuple[ctypes.CDLL | None, bool]:
    """(glibc, whether it has mallinfo2 (2.33+)), or (None, False) for any other C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None, False
    if not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None, False
    if not hasattr(libc, "mallinfo2"):
        return libc, False
    libc.mallinfo2.restype = _Mallinfo2
    return libc, True


_libc, _has_mallinfo2 = _load_libc()


def free_heap_bytes() -> int | None:
    """Bytes glibc holds free in its heaps (mallinfo2's fordblks), None where unknown."""
    return int(_libc.mallinfo2().fordblks) if _has_mallinfo2 else None


def release_free_heap() -> None:
    """Give free heap memory back to the system (malloc_trim) when more than
    FREE_HEAP_BUDGET of it is free; a few milliseconds when it does."""
    if _libc is None:
        return
    free = free_heap_bytes()
    if free is None or free > FREE_HEAP_BUDGET:
        _libc.malloc_trim(0)


def reuse_freed_blocks() -> bool:
    """Serve every block from glibc's heap (no memory maps of their own) and leave giving
    memory back to :func:`release_free_heap`; True when set. Process-wide: the command line
    calls it, a program that embeds nodegraph decides for itself."""
    if _libc is None:
        return False
    # the largest threshold mallopt's int takes: glibc never trims on its own
    return bool(_libc.mallopt(_M_MMAP_MAX, 0)) and bool(_libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
