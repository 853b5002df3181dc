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


def test_reconcile_merges_agreeing_sources_and_never_publishes_ppg_alone():
    from models.resp import RespEstimate, reconcile

    both = reconcile({"ecg": RespEstimate(14.0, 0.9), "ppg": RespEstimate(15.0, 0.6)}, 0.5)
    assert both["source"] == "ecg+ppg" and 14.0 < both["rate_bpm"] < 15.0
    split = reconcile({"ecg": RespEstimate(14.0, 0.9), "ppg": RespEstimate(6.0, 0.8)}, 0.3)
    assert split["source"] == "ecg" and split["quality"] == pytest.approx(0.45)
    alone = reconcile({"ppg": RespEstimate(12.0, 0.95)}, 0.5)
    assert alone["rate_bpm"] is None and alone["source"] is None
    weak = reconcile({"ecg": RespEstimate(14.0, 0.2)}, 0.5)
    assert weak["rate_bpm"] is None


def test_beat_log_takes_each_beat_once_and_not_at_the_window_edge():
    from models.resp import BeatLog

    log = BeatLog()
    beats = np.arange(0, 10e9, 0.8e9).astype(np.int64)
    log.add(beats[beats < 8e9], np.ones(10), t_end_ns=8_000_000_000)
    log.add(beats, np.ones(beats.size), t_end_ns=10_000_000_000)
    assert np.array_equal(log.beats_ns, beats[beats < 9.5e9])
    t, a = log.since(5e9)
    assert t.min() > 5e9 and a.size == t.size


def test_flat_beat_series_gives_no_rate():
    beats = np.cumsum(np.full(45, 0.8))
    est = resp_from_beats(beats, np.ones(beats.size))
    assert est.rate_bpm is None or est.quality < 0.5
