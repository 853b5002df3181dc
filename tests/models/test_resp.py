"""Respiration rate from the ECG's RR and R-amplitude series."""

import numpy as np
import pytest

from models.resp import resp_from_beats


@pytest.mark.parametrize("rate_bpm", [8.0, 15.0, 24.0])
def test_rate_from_amplitude_and_rsa(rate_bpm):
    rng = np.random.default_rng(0)
    beats = np.cumsum(np.full(40, 0.85))
    f = rate_bpm / 60.0
    beats = beats + 0.03 * np.sin(2 * np.pi * f * beats)
    amp = 1.0 + 0.05 * np.sin(2 * np.pi * f * beats) + 0.005 * rng.standard_normal(beats.size)
    est = resp_from_beats(beats, amp)
    assert est.rate_bpm == pytest.approx(rate_bpm, abs=1.0)
    assert est.quality >= 0.5


def test_no_breathing_no_rate():
    rng = np.random.default_rng(1)
    beats = np.cumsum(0.8 + 0.05 * rng.standard_normal(45))
    est = resp_from_beats(beats, 1.0 + 0.05 * rng.standard_normal(beats.size))
    assert est.rate_bpm is None or est.quality < 0.5
    assert resp_from_beats(beats[:5], np.ones(5)).rate_bpm is None  # too short
    assert resp_from_beats(beats, np.ones(beats.size)).quality <= 1.0
