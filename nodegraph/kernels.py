"""Numba kernels that import Numba on their first call, not when their module is imported.

Importing Numba takes ~0.2 s, and every node module with a kernel used to pay it as soon as
the registry loaded the module: before the first node of a run could start. Declared with
:func:`kernel`, a kernel is a plain callable until it is first called (usually by its node's
warm-up, which the executor runs in a background thread while the images decode); then Numba
is imported and the kernel is compiled, or loaded from Numba's on-disk cache
(``cache=True`` always: a kernel compiled anew in every process costs seconds).

Inside a kernel, write ``prange`` (imported from here) where Numba's ``numba.prange`` is
meant, and call other kernels by the names they were imported under: on the first call the
kernel's module globals that hold ``prange`` or another :class:`Kernel` are rebound to
``numba.prange`` and to those kernels' Numba dispatchers, which is what Numba reads when it
compiles.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_materialising = threading.RLock()


def prange(*args: int) -> range:
    """``numba.prange`` inside a :func:`kernel` (rebound to it when the kernel is compiled);
    ``range`` anywhere else."""
    return range(*args)


class Kernel:
    """A function compiled by ``numba.njit(cache=True, **options)`` on its first call."""

    def __init__(self, func: Callable, options: dict[str, Any]) -> None:
        self.py_func, self.options = func, options
        self._dispatcher: Any = None
        self.__name__, self.__qualname__, self.__doc__ = func.__name__, func.__qualname__, func.__doc__
        self.__module__ = func.__module__

    def __call__(self, *args: Any) -> Any:
        return (self._dispatcher or self.dispatcher())(*args)

    def dispatcher(self) -> Any:
        """The Numba dispatcher (``numba.njit``'s result), made on the first request."""
        with _materialising:
            if self._dispatcher is None:
                import numba

                # made before the globals are rebound: a kernel that (through another one)
                # refers back to this one finds it made
                self._dispatcher = numba.njit(cache=True, **self.options)(self.py_func)
                names = self.py_func.__globals__
                for name, value in list(names.items()):
                    if value is prange:
                        names[name] = numba.prange
                    elif isinstance(value, Kernel):
                        names[name] = value.dispatcher()
        return self._dispatcher


def kernel(**options: Any) -> Callable[[Callable], Kernel]:
    """Decorator: ``numba.njit(cache=True, **options)``, compiled on the first call (module doc)."""
    return lambda func: Kernel(func, options)
