"""Files: content digests for cache keys, and atomic writes.

Both are framework services: the executor keys its cache on the content of the files a graph
reads, and anything that writes a result (an image node, the editor saving a graph) writes it
atomically so that a reader sees the old file or the whole new one, never half of it.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError

# Temporary files of write_atomic: ".NAME.PID.XXXXXXXX.tmp" (PID of the writer, mkstemp's 8
# random characters), so that the leftovers of a killed writer can be recognised and removed.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp")
STALE_TEMP_SECONDS = 24 * 3600  # a temporary file this old is stale even if its PID is alive
# ...and one whose PID is gone is stale once it is this old: a writer on another host or in
# another PID namespace sharing the folder has a PID this process cannot see.
ORPHAN_TEMP_SECONDS = 60

_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """Content hash of a regular file, memoised on (path, size, mtime); OSError for anything
    else (a pipe would block the read, /dev/zero would never end it)."""
    path = os.fspath(path)
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", path)
    memo_key = (path, info.st_size, info.st_mtime_ns)
    digest = _digests.get(memo_key)
    if digest is None:
        hasher = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
        digest = _digests[memo_key] = hasher.hexdigest()
    return digest


@functools.cache
def source_digest(module_name: str) -> str:
    """Digest of the Python source behind an imported module: every ``.py`` file in the
    folders of its packages (for ``nodegraph.nodes.hzsr.align``: nodegraph/, nodes/ and,
    inside it, nodes/hzsr/), or the module's own file when it is in no package.

    Part of every recipe key (:func:`nodegraph.execute.recipe_key`), so that what a batch or
    an evaluation finished with older code is not resumed as if it were this code's (a node's
    ``version`` says when its own behaviour changes; a change in a helper it calls does not).
    Files count by their path inside their folder and their content, so the same code in
    another place has the same digest; computed once per module (each recipe key asks) and
    folder set (the built-in nodes share theirs) per process.
    """
    import sys

    parts = module_name.split(".")
    folders, files = set(), set()
    for depth in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:depth]))
        if module is None:
            continue
        if hasattr(module, "__path__"):
            folders.update(os.path.realpath(folder) for folder in module.__path__)
        elif getattr(module, "__file__", None):
            files.add(os.path.realpath(module.__file__))
    return _source_digest(tuple(sorted(folders)), tuple(sorted(files)))


@functools.cache
def _source_digest(folders: tuple[str, ...], files: tuple[str, ...]) -> str:
    outer = [f for f in folders if not any(f.startswith(o + os.sep) for o in folders)]
    entries = [(os.path.basename(path), file_digest(path)) for path in files]
    for folder in outer:
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            entries += [(os.path.relpath(os.path.join(root, name), folder), file_digest(os.path.join(root, name)))
                        for name in names if name.endswith(".py")]
    return hashlib.blake2b(repr(sorted(entries)).encode(), digest_size=16).hexdigest()


def user_cache_folder(kind: str) -> Path:
    """The folder for ``kind`` of derived data a later process may reuse (never results):
    ``$NODEGRAPH_CACHE_DIR/KIND``, else ``$XDG_CACHE_HOME/nodegraph/KIND``, else
    ``~/.cache/nodegraph/KIND``. Not created here: writers create it, readers treat a missing
    or unreadable entry as a miss."""
    root = os.environ.get("NODEGRAPH_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                            "nodegraph")
    return Path(root) / kind


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; return them.

    A temporary file of :func:`write_atomic` is stale when the process that wrote it is gone
    (SIGKILL, power loss: nothing could clean up) and it was last written ORPHAN_TEMP_SECONDS
    ago, or when it is older than STALE_TEMP_SECONDS. Files of live writers, and anything not
    named like a temporary file, are left alone.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                continue
            age = now - info.st_mtime
            orphan = age > ORPHAN_TEMP_SECONDS and not _process_alive(int(match["pid"]))
            if not orphan and age < STALE_TEMP_SECONDS:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it does, under another user
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True


def write_atomic(path: str | os.PathLike, payload: bytes | Sequence[bytes]) -> None:
    """Write ``payload`` (bytes, or bytes-like parts written one after the other: an encoder's
    output need not be joined into one copy) to ``path`` so that readers see the old file or
    the whole new one.

    The bytes go to a temporary file ``.NAME.PID.XXXXXXXX.tmp`` in the same directory (same
    filesystem, so the rename is atomic), are flushed to disk, then ``os.replace``; on any
    failure (SIGINT and SIGTERM included, which the command line turns into exceptions) the
    temporary file is removed and an existing file at ``path`` is left untouched. Temporary
    files that killed writers left in the folder are removed first. The parent folder is created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the result is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            for part in [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload:
                handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------- checking paths before work

def _blocking_ancestor(path: Path) -> str | None:
    """Why no file or folder can be created at ``path``: an ancestor that is a file, or the
    nearest existing folder being read-only; None when it can be."""
    for ancestor in path.parents:  # as given: a relative path ends at ".", which exists
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"'{ancestor}' is a file, not a folder"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"cannot write in the folder '{ancestor}'"
            return None
    return None


def output_file_problem(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> str | None:
    """Why a file cannot be written at ``path`` (a folder there, a file where a parent folder
    would be, a read-only folder, an extension outside ``suffixes``), or None."""
    path = Path(path).expanduser()
    if path.is_dir():
        return "is a folder; give a file name"
    if suffixes and path.suffix.lower() not in suffixes:
        got = f"'{path.suffix}'" if path.suffix else "no extension"
        return f"{got} is not a known extension; use one of {', '.join(suffixes)}"
    return _blocking_ancestor(path)


def output_dir_problem(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be used or created at ``path`` to write files into, or None."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    if path.is_dir():
        return None if os.access(path, os.W_OK | os.X_OK) else "is a read-only folder"
    return _blocking_ancestor(path)


def input_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a readable file, or None."""
    path = Path(path).expanduser()
    if path.is_dir():
        return "is a folder, not a file"
    if not path.is_file():
        return "is not a regular file (a pipe, a device...)" if path.exists() else "file not found"
    return None if os.access(path, os.R_OK) else "cannot be read (permissions)"


def check_output_options(options: dict[str, str | os.PathLike | None],
                         folders: tuple[str, ...] = (),
                         suffixes: dict[str, tuple[str, ...]] | None = None) -> None:
    """Refuse, before any work, an output option whose path cannot be written: InputError
    with one line naming the option. ``options`` maps an option (``--report``) to its value
    (None: not given); those named in ``folders`` are folders to write into, others files,
    with the extensions ``suffixes`` gives for the option (any when it gives none)."""
    for option, value in options.items():
        if value is None:
            continue
        problem = (output_dir_problem(value) if option in folders
                   else output_file_problem(value, (suffixes or {}).get(option, ())))
        if problem:
            raise InputError(f"{option} {value}: {problem}")
