import json

import numpy as np
import pytest

from models.physio.features import FEATURE_NAMES, HISTORY_S, Baseline, step_features
from tests.models import physio_signals as sig


@pytest.mark.parametrize("rate_hz,hr_bpm,polarity", [(64, 62, 1), (100, 95, 1), (100, 75, -1)])
def test_heart_rate_and_rmssd_from_pulse_wave(rate_hz, hr_bpm, polarity):
    x = sig.ppg(90, rate_hz, hr_bpm, rmssd_ms=50, amplitude=200, polarity=polarity)
    f = step_features(x, rate_hz, ppg_polarity=polarity)
    hr = f.values[40:, 0]
    assert np.all(np.abs(hr - hr_bpm) < 2.0), hr
    assert np.all(np.abs(f.values[40:, 1] - 50) < 12), f.values[40:, 1]
    assert np.all(f.ppg_quality[40:] > 0.9)


def test_pulse_amplitude_scales_with_the_wave():
    small = step_features(sig.ppg(60, 100, 70, amplitude=1.0), 100).values[30:, 2]
    large = step_features(sig.ppg(60, 100, 70, amplitude=3.0), 100).values[30:, 2]
    np.testing.assert_allclose(large / small, 3.0, rtol=0.05)


def test_eda_tonic_and_phasic():
    flat = step_features(eda_us=sig.eda(120, 8, 2.0), eda_rate_hz=8).values
    scrs = step_features(eda_us=sig.eda(120, 8, 2.0, scr_per_min=6), eda_rate_hz=8).values
    assert np.all(np.abs(flat[20:, 3] - 2.0) < 0.02)
    assert np.all(np.abs(scrs[20:, 3] - 2.0) < 0.1)
    assert np.median(scrs[20:, 4]) > 5 * np.median(flat[20:, 4])
    assert np.isnan(flat[:, 0]).all()


def test_motion_in_g_from_axes_or_magnitude():
    still = step_features(accel_g=sig.accel(30, 50, 0.003), accel_rate_hz=50).values[:, 5]
    moving = sig.accel(30, 50, 0.1)
    moved = step_features(accel_g=moving, accel_rate_hz=50).values[:, 5]
    mag = step_features(accel_g=np.linalg.norm(moving, axis=1), accel_rate_hz=50).values[:, 5]
    assert np.median(moved) > 10 * np.median(still)
    np.testing.assert_allclose(moved, mag)


def test_last_step_from_device_history_matches_whole_recording():
    """The device computes the newest step from its last HISTORY_S seconds only."""
    p, e, a = sig.ppg(300, 100, 80, amplitude=500), sig.eda(300, 8, 4.0, 3), sig.accel(300, 50)
    whole = step_features(p, 100, e, 8, a, 50).values
    for end_s in (120, 200, 300):
        h = int(HISTORY_S)
        part = step_features(p[(end_s - h) * 100:end_s * 100], 100, e[(end_s - h) * 8:end_s * 8], 8,
                             a[(end_s - h) * 50:end_s * 50], 50).values[-1]
        ref = whole[end_s - 1]
        assert abs(part[0] - ref[0]) < 1.5
        np.testing.assert_allclose(part[2:], ref[2:], rtol=0.1, atol=1e-3)


def test_step_features_rejects_bad_input():
    with pytest.raises(ValueError, match="no signal"):
        step_features()
    with pytest.raises(ValueError, match="eda_us"):
        step_features(eda_us=np.ones(10), eda_rate_hz=0)


def _rest_and_aroused():
    rest = step_features(sig.ppg(200, 100, 65, 45, 100), 100, sig.eda(200, 8, 2.0), 8,
                         sig.accel(200, 50), 50)
    aroused = step_features(sig.ppg(200, 100, 90, 15, 60), 100,
                            sig.eda(200, 8, 3.0, scr_per_min=6), 8, sig.accel(200, 50), 50)
    return rest, aroused


def test_baseline_normalises_rest_to_zero_and_arousal_away_from_it():
    rest, aroused = _rest_and_aroused()
    base = Baseline.fit(rest.values[40:], rest.quality[40:])
    z_rest = base.normalise(rest.values[40:])
    z_aroused = base.normalise(aroused.values[40:])
    assert np.all(np.abs(np.median(z_rest, axis=0)) < 0.2)
    med = dict(zip(FEATURE_NAMES, np.median(z_aroused, axis=0)))
    assert med["hr_bpm"] > 2 and med["eda_tonic_us"] > 0.5 and med["eda_phasic_us_per_s"] > 1
    assert med["hrv_rmssd_ms"] < -1 and med["ppg_amp"] < -0.5
    assert z_aroused.dtype == np.float32 and np.all(np.abs(z_aroused) <= 6)


def test_baseline_round_trip_and_errors():
    rest, _ = _rest_and_aroused()
    base = Baseline.fit(rest.values[40:])
    again = Baseline.from_dict(json.loads(json.dumps(base.to_dict())))
    assert again == base
    no_ppg = Baseline.fit(np.column_stack([np.full((60, 3), np.nan), rest.values[40:100, 3:]]))
    assert no_ppg.centers["hr_bpm"] is None
    assert np.all(no_ppg.normalise(rest.values)[:, :3] == 0)
    with pytest.raises(ValueError, match="unknown feature"):
        Baseline.from_dict({"centers": {"pulse": 1.0}, "n_steps": 60})
    with pytest.raises(ValueError, match="need at least"):
        Baseline.fit(rest.values[:5])
    with pytest.raises(ValueError, match=r"\(steps, 6\)"):
        Baseline.fit(np.ones((60, 4)))
