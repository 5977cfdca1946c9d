"""nodegraph.cores.in_row_bands: every row once, in bands on threads for large images."""
import threading

import numpy as np
import pytest

from nodegraph import cores
from nodegraph.types import compact_to_float


@pytest.mark.parametrize("height, share, expected_bands", [(10, 2, 2), (10, 3, 3), (2, 8, 2), (1, 4, 1)])
def test_bands_cover_every_row_once_on_threads(height, share, expected_bands, monkeypatch):
    monkeypatch.setattr(cores, "BANDED_PIXELS", 1)
    monkeypatch.setattr(cores, "thread_share", lambda: share)
    seen, threads = [], set()
    lock = threading.Lock()

    def band(rows):
        with lock:
            seen.append(rows)
            threads.add(threading.get_ident())

    cores.in_row_bands(height, 5, band)
    covered = sorted(row for rows in seen for row in range(height)[rows])
    assert covered == list(range(height)) and len(seen) == expected_bands
    assert all(rows.stop - rows.start >= 1 for rows in seen)
    if expected_bands > 1:
        assert threading.get_ident() not in threads  # the bands ran on the pool's threads


def test_small_images_run_in_one_call_on_the_callers_thread(monkeypatch):
    monkeypatch.setattr(cores, "thread_share", lambda: 4)
    calls = []
    cores.in_row_bands(100, 100, lambda rows: calls.append((rows, threading.get_ident())))
    assert calls == [(slice(0, 100), threading.get_ident())]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(9, 7, 3), (9, 7)])
def test_compact_to_float_in_bands_equals_the_plain_division(dtype, shape, monkeypatch):
    """Samples scaled by 1 / full scale in float32, as ``astype(float32) / max`` computes them,
    whole or in bands."""
    samples = np.random.default_rng(shape[0]).integers(0, np.iinfo(dtype).max, shape, dtype=dtype,
                                                      endpoint=True)
    expected = samples.astype(np.float32) / np.float32(np.iinfo(dtype).max)
    np.testing.assert_array_equal(compact_to_float(samples), expected)
    monkeypatch.setattr(cores, "BANDED_PIXELS", 1)
    monkeypatch.setattr(cores, "thread_share", lambda: 3)
    banded = compact_to_float(samples)
    assert banded.dtype == np.float32
    np.testing.assert_array_equal(banded, expected)
