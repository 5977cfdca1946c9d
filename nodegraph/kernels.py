"""Numba kernels that import Numba on their first call, not when their module is imported.

Importing Numba takes ~0.2 s, and every node module with a kernel used to pay it as soon as
the registry loaded the module: before the first node of a run could start. Declared with
:func:`kernel`, a kernel is a plain callable until it is first called (usually by its node's
warm-up, which the executor runs in a background thread while the images decode); then Numba
is imported and the kernel is compiled, or loaded from Numba's on-disk cache
(``cache=True`` always: a kernel compiled anew in every process costs seconds).

Inside a kernel, write ``prange`` (imported from here) where Numba's ``numba.prange`` is
meant, and call other kernels by the names they were imported under. On the first call the
kernel's module has every such name rebound, in one step, to ``numba.prange`` and to the
kernels' Numba dispatchers (the modules of the kernels it imports first), which is what Numba
reads when it compiles. In one step, so that a thread calling a kernel through its module
while another makes them never finds the module half rebound.
"""
from __future__ import annotations

import sys
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
        self._made: Any = None        # the dispatcher, once made
        self._dispatcher: Any = None  # the same, once its module is rebound
        self.__name__, self.__qualname__, self.__doc__ = func.__name__, func.__qualname__, func.__doc__
        self.__module__ = func.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return (self._dispatcher or self.dispatcher())(*args, **kwargs)

    def dispatcher(self) -> Any:
        """The Numba dispatcher (``numba.njit``'s result); the first request rebinds the
        kernel's module (module doc)."""
        if self._dispatcher is None:
            with _materialising:
                _rebind_module(self.py_func.__globals__)
                if self._made is None:  # not a name in its module: made inside a function
                    self._make()
                self._dispatcher = self._made
        return self._dispatcher

    def _make(self) -> None:
        numba = _numba()
        self._made = numba.njit(cache=True, **self.options)(self.py_func)


def _rebind_module(names: dict[str, Any], visiting: set[int] | None = None) -> None:
    """Rebind the names in a module's ``names`` that hold ``prange`` or a kernel to Numba's
    (a module re-executed by ``importlib.reload`` holds new ones again)."""
    visiting = set() if visiting is None else visiting
    if id(names) in visiting:
        return
    visiting.add(id(names))
    stale = {name: value for name, value in list(names.items())
             if value is prange or isinstance(value, Kernel)}
    if not stale:
        return
    numba = _numba()

    kernels = [value for value in stale.values() if isinstance(value, Kernel)]
    for each in kernels:
        if each._made is None:
            each._make()
    for each in kernels:  # the modules of imported kernels are rebound before this one
        if each.py_func.__globals__ is not names:
            _rebind_module(each.py_func.__globals__, visiting)
    names.update({name: numba.prange if value is prange else value._made
                  for name, value in stale.items()})
    for each in kernels:
        if each.py_func.__globals__ is names:
            each._dispatcher = each._made


def _numba() -> Any:
    """Numba, its array library loaded without the BLAS probe that imports SciPy.

    Numba's array library asks at import whether SciPy's BLAS is there: with SciPy installed,
    ``import scipy.linalg`` (0.18-0.21 s, and one more OpenBLAS thread pool) in every process,
    for one use: whether ``np.correlate``/``np.convolve`` inside a kernel may call BLAS (else
    Numba's own loop, the same result). The probe answers "no" while that library loads and
    is put back at once, so ``np.dot``, ``np.linalg`` and the like in any kernel still find
    SciPy's BLAS when they are compiled. The bundled sample's run: 0.94 s against 1.15 s
    (medians of 7 interleaved pairs, 7 won), 12 MP: the same time, 10-15 MB less peak.
    """
    import numba

    if "numba.np.arraymath" in sys.modules:
        return numba
    from numba.np import linalg

    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:  # another Numba than the one this was written against: leave it be
        return numba

    def no_blas() -> None:
        raise ImportError("BLAS probe skipped while Numba's array library loads")

    linalg.ensure_blas = no_blas
    try:
        from numba.np import arraymath
    finally:
        linalg.ensure_blas = probe
    if getattr(arraymath, "ensure_blas", None) is no_blas:
        arraymath.ensure_blas = probe
    return numba


def kernel(**options: Any) -> Callable[[Callable], Kernel]:
    """Decorator: ``numba.njit(cache=True, **options)``, compiled on the first call (module doc)."""
    return lambda func: Kernel(func, options)
