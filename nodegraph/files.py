"""Files: content digests for cache keys, and atomic writes.

Both are framework services: the executor keys its cache on the content of the files a graph
reads, and anything that writes a result (an image node, the editor saving a graph) writes it
atomically so that a reader sees the old file or the whole new one, never half of it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """Content hash of a file, memoised on (path, size, mtime)."""
    path = os.fspath(path)
    stat = os.stat(path)
    memo_key = (path, stat.st_size, stat.st_mtime_ns)
    digest = _digests.get(memo_key)
    if digest is None:
        hasher = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
        digest = _digests[memo_key] = hasher.hexdigest()
    return digest


def write_atomic(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same directory (same filesystem, so the rename
    is atomic), are flushed to disk, then ``os.replace``; on any failure the temporary file is
    removed and an existing file at ``path`` is left untouched. The parent folder is created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the result is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
