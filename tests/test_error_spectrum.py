"""tools/error_spectrum.py: the rings partition the windowed error energy, and a wave lands in its ring."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("error_spectrum", REPO / "tools" / "error_spectrum.py")
error_spectrum = importlib.util.module_from_spec(spec)
spec.loader.exec_module(error_spectrum)


def test_rings_add_up_to_the_windowed_energy():
    rng = np.random.default_rng(0)
    error = rng.normal(size=(60, 84))
    window = np.outer(np.hanning(60), np.hanning(84))
    windowed = (error - error.mean()) * window
    # Parseval for numpy's unnormalised FFT: sum |F|^2 = N sum |x|^2
    assert error_spectrum.ring_energy(error).sum() == pytest.approx(windowed.size * np.sum(windowed ** 2))


@pytest.mark.parametrize("cycles_per_px, ring", [(0.125, 2), (0.325, 6)])
def test_a_wave_lands_in_its_ring(cycles_per_px, ring):
    # a horizontal wave of frequency f cycles/px is at f / 0.5 of Nyquist
    x = np.arange(128)
    error = np.tile(np.cos(2 * np.pi * cycles_per_px * x), (128, 1))
    energy = error_spectrum.ring_energy(error)
    assert np.argmax(energy) == ring
    assert energy[ring] > 0.9 * energy.sum()
