"""The 12 MP benchmark's scaling estimate (Amdahl's law from 1 and 2 cores)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hzsr.py"


def _amdahl():
    spec = importlib.util.spec_from_file_location("bench_hzsr", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.amdahl


@pytest.mark.parametrize("one, two, serial, bound", [
    (8.0, 4.0, 0.0, 8.0),     # perfectly parallel: 16 cores 8x faster than 2
    (8.0, 8.0, 1.0, 1.0),     # serial: no faster
    (7.7, 4.85, 0.2597, 2.058),  # t(n) = t(1) (s + (1 - s) / n) solved for s, then t(2) / t(16)
])
def test_amdahl_serial_fraction_and_bound(one, two, serial, bound):
    got_serial, got_bound = _amdahl()(one, two, 2, 16)
    assert got_serial == pytest.approx(serial, abs=1e-4)
    assert got_bound == pytest.approx(bound, abs=1e-3)


def test_amdahl_clamps_noise_beyond_the_model():
    # measured noise can make 2 cores more than 2x faster, or slower, than one
    assert _amdahl()(9.0, 4.0, 2, 16) == (0.0, 8.0)
    assert _amdahl()(4.0, 5.0, 2, 16) == (1.0, 1.0)
