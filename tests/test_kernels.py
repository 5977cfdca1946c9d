"""nodegraph.kernels: Numba kernels compiled on their first call."""
from __future__ import annotations

import threading

import numpy as np

from nodegraph.kernels import Kernel, kernel, prange


@kernel(inline="always")
def _scaled(value, factor):
    return value * factor


@kernel(parallel=True)
def _scale_rows(image, factors, out):
    for i in prange(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = _scaled(image[i, j], factors[i])


def _scale_rows_reference(image, factors):
    return (image * factors[:, None]).astype(np.float32)


def test_a_kernel_calling_another_with_prange_matches_plain_numpy():
    rng = np.random.default_rng(3)
    image = rng.standard_normal((37, 53)).astype(np.float32)
    factors = rng.uniform(-2, 2, 37).astype(np.float32)
    out = np.empty_like(image)
    _scale_rows(image, factors, out)
    np.testing.assert_allclose(out, _scale_rows_reference(image, factors), rtol=1e-6)
    # compiled by Numba: the module's names now point at the dispatchers, prange at Numba's
    import numba
    assert globals()["prange"] is numba.prange
    assert not isinstance(globals()["_scaled"], Kernel)


def test_first_calls_from_several_threads_compile_once_and_agree():
    @kernel()
    def total(values):
        acc = 0.0
        for v in values:
            acc += v
        return acc

    values = np.arange(1000, dtype=np.float64)
    results, made = [], []

    def call():
        results.append(total(values))
        made.append(total.dispatcher())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [values.sum()] * 4
    assert all(d is made[0] for d in made)


def test_prange_outside_a_kernel_is_range():
    assert list(prange(2, 5)) == [2, 3, 4]


KERNELS_MODULE = '''
import numpy as np
from nodegraph.kernels import kernel, prange


@kernel(inline="always")
def twice(value):
    return value * 2


@kernel(parallel=True)
def doubled_rows(image, out):
    for i in prange(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = twice(image[i, j])


@kernel(parallel=True)
def row_sums(image, out):
    for i in prange(image.shape[0]):
        out[i] = image[i].sum()
'''


def test_first_calls_of_different_kernels_of_one_module_at_once(tmp_path, monkeypatch):
    """Threads calling a module's kernels for the first time together all get Numba's
    versions, whichever of them rebinds the module (nodegraph.kernels' module doc)."""
    import importlib
    import sys

    (tmp_path / "fresh_kernels.py").write_text(KERNELS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fresh_kernels")
    try:
        image = np.random.default_rng(5).random((64, 48)).astype(np.float32)
        start, results, errors = threading.Barrier(8), {}, []

        def call(index):
            try:
                start.wait()
                if index % 2:
                    out = np.empty(64, np.float32)
                    module.row_sums(image, out)
                else:
                    out = np.empty_like(image)
                    module.doubled_rows(image, out)
                results[index] = out
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for index, out in results.items():
            expected = image.sum(axis=1) if index % 2 else 2 * image
            np.testing.assert_allclose(out, expected, rtol=1e-5)
        assert not any(isinstance(getattr(module, name), Kernel)
                       for name in ("twice", "doubled_rows", "row_sums"))
        # edited and re-executed (a plugin author's reload): new kernels to compile (the
        # source changed, so Numba's cache does not answer), prange a placeholder again
        (tmp_path / "fresh_kernels.py").write_text(KERNELS_MODULE.replace("value * 2", "value * 3.0"))
        module = importlib.reload(module)
        out = np.empty_like(image)
        module.doubled_rows(image, out)
        np.testing.assert_allclose(out, 3 * image, rtol=1e-6)
    finally:
        sys.modules.pop("fresh_kernels", None)


PROBE_CHECK = '''
import sys
import numpy as np
from nodegraph.kernels import kernel
from nodegraph.nodes.hzsr.warp import warp_bilinear

warp_bilinear(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.float32))
print("linalg after a node kernel:", "scipy.linalg" in sys.modules)


@kernel()
def correlate(a, v):
    return np.correlate(a, v)


@kernel()
def dot(a, b):
    return np.dot(a, b)


rng = np.random.default_rng(0)
a, v = rng.random(50), rng.random(7)
print("correlate ok:", np.allclose(correlate(a, v), np.correlate(a, v)))
m, n = rng.random((6, 5)), rng.random((5, 4))
print("dot ok:", np.allclose(dot(m, n), m @ n))
print("linalg after np.dot:", "scipy.linalg" in sys.modules)
'''


def test_loading_kernels_skips_numbas_scipy_probe_but_kernels_still_find_blas(tmp_path):
    """Numba's array library probes for SciPy's BLAS at import (0.2 s with SciPy installed);
    nodegraph.kernels loads it without the probe, and puts the probe back for np.dot & co."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip("scipy")
    script = tmp_path / "probe_check.py"  # a file: Numba caches kernels next to their source
    script.write_text(PROBE_CHECK)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == [
        "linalg after a node kernel: False", "correlate ok: True", "dot ok: True",
        "linalg after np.dot: True"]
