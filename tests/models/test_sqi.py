"""Signal-quality indices: clean beats score high, noise and flat lines low."""

import numpy as np
import pytest

from models.sqi import kurtosis, skewness, snr_db, template_correlation
from tests.models.sim_vitals import simulate, stream, subject


def test_indices_on_known_signals():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(20000)
    assert kurtosis(noise) == pytest.approx(3.0, abs=0.15)
    assert skewness(noise) == pytest.approx(0.0, abs=0.05)
    assert kurtosis(np.sin(np.linspace(0, 200, 20000))) == pytest.approx(1.5, abs=0.05)
    assert kurtosis(np.zeros(100)) == 0.0 and skewness(np.zeros(100)) == 0.0
    assert snr_db(0.5) == pytest.approx(0.0) and snr_db(0.0) is None


def test_template_correlation_separates_beats_from_noise():
    t = np.arange(2000)
    idx = np.arange(100, 1900, 150)
    beats = np.zeros(2000)
    beats[idx] = 1.0
    beats = np.convolve(beats, np.hanning(31), mode="same")
    assert template_correlation(beats, idx, 20, 20) > 0.99
    noise = np.random.default_rng(1).standard_normal(2000)
    assert template_correlation(noise, idx, 20, 20) < 0.3
    assert template_correlation(beats, idx[:2], 20, 20) == 0.0
    assert t.size == 2000


def test_published_sqi_is_high_for_clean_ecg_and_low_for_noise():
    sim = subject(seed=9, hr_bpm=70)
    clean = stream(simulate(sim, 15.0, channels=("ecg",)), 15.0).update(15_000_000_000)
    assert clean.sqi["ecg"]["kurtosis"] > 5 and clean.sqi["ecg"]["template_r"] > 0.9
    noise = np.random.default_rng(2).standard_normal(250 * 15)
    noisy = stream({"ecg": noise}, 15.0).update(15_000_000_000)
    assert noisy.quality["ecg"] < 0.5
    assert noisy.sqi["ecg"] == {} or noisy.sqi["ecg"]["kurtosis"] < 5
