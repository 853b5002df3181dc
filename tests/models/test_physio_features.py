import json

import numpy as np
import pytest

from models.physio.features import FEATURE_NAMES, HISTORY_S, Baseline, step_features
from models.physio.inputs import CONTEXT_TO_S, HISTORY_STEPS, INPUT_NAMES, model_inputs
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


@pytest.mark.parametrize("rate_hz,breath_per_min", [(64, 12), (100, 30), (64, 18)])
def test_breathing_rate_depth_and_regularity_from_the_beats(rate_hz, breath_per_min):
    x = sig.ppg(120, rate_hz, 72, rmssd_ms=5, amplitude=100, breath_per_min=breath_per_min)
    f = dict(zip(FEATURE_NAMES, step_features(x, rate_hz).values[40:].T))
    assert np.all(np.abs(f["resp_rate_brpm"] - breath_per_min) <= 2.5), f["resp_rate_brpm"]
    assert np.all(f["resp_regularity"] > 0.5)
    deep = step_features(sig.ppg(120, rate_hz, 72, 5, 100, breath_per_min=breath_per_min,
                                 breath_depth=0.4), rate_hz).values[40:]
    depth = FEATURE_NAMES.index("resp_depth")
    np.testing.assert_allclose(np.median(deep[:, depth]) / np.median(f["resp_depth"]), 2.0, rtol=0.25)
    # Under 32 s of beats there is no breathing estimate yet.
    assert np.isnan(step_features(x[:int(20 * rate_hz)], rate_hz).values[:, depth]).all()


def test_eda_slope_follows_a_rising_level():
    rising = step_features(eda_us=sig.eda(120, 8, 2.0, drift_us_per_min=0.2), eda_rate_hz=8).values
    flat = step_features(eda_us=sig.eda(120, 8, 2.0), eda_rate_hz=8).values
    slope = FEATURE_NAMES.index("eda_slope_per_min")
    # d/dt log(x + 0.05) per minute: 0.2 / (level + 0.05), the level climbing 0.2 uS/min.
    level_us = 2.0 + 0.2 * np.arange(40, 120) / 60
    assert np.all(np.abs(rising[40:, slope] - 0.2 / (level_us + 0.05)) < 0.01)
    assert np.all(np.abs(flat[40:, slope]) < 0.005)


def test_last_step_from_device_history_matches_whole_recording():
    """The device computes the newest step from its last HISTORY_S seconds only."""
    p = sig.ppg(300, 100, 80, amplitude=500, breath_per_min=15)
    e, a = sig.eda(300, 8, 4.0, 3), sig.accel(300, 50)
    whole = step_features(p, 100, e, 8, a, 50).values
    for end_s in (120, 200, 300):
        h = int(HISTORY_S)
        part = step_features(p[(end_s - h) * 100:end_s * 100], 100, e[(end_s - h) * 8:end_s * 8], 8,
                             a[(end_s - h) * 50:end_s * 50], 50).values[-1]
        ref = whole[end_s - 1]
        assert abs(part[0] - ref[0]) < 1.5
        np.testing.assert_allclose(part[2:6], ref[2:6], rtol=0.1, atol=1e-3)
        assert abs(part[6] - ref[6]) <= 2.0  # breathing rate, one spectral bin
        np.testing.assert_allclose(part[7:], ref[7:], rtol=0.15, atol=0.01)


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
    beat_cols = [FEATURE_NAMES.index(n) for n in ("hr_bpm", "hrv_rmssd_ms", "ppg_amp",
                                                    "resp_rate_brpm", "resp_depth", "resp_regularity")]
    no_ppg_values = rest.values[40:100].copy()
    no_ppg_values[:, beat_cols] = np.nan
    no_ppg = Baseline.fit(no_ppg_values)
    assert no_ppg.centers["hr_bpm"] is None and no_ppg.centers["resp_rate_brpm"] is None
    assert np.all(no_ppg.normalise(rest.values)[:, beat_cols] == 0)
    # A calibration stored before the breathing features existed still loads.
    old = {"centers": {n: base.centers[n] for n in FEATURE_NAMES[:6]}, "n_steps": 60}
    assert Baseline.from_dict(old).centers["resp_depth"] is None
    with pytest.raises(ValueError, match="unknown feature"):
        Baseline.from_dict({"centers": {"pulse": 1.0}, "n_steps": 60})
    with pytest.raises(ValueError, match="need at least"):
        Baseline.fit(rest.values[:5])
    with pytest.raises(ValueError, match=rf"\(steps, {len(FEATURE_NAMES)}\)"):
        Baseline.fit(np.ones((60, 4)))


def test_model_inputs_add_the_change_against_the_minutes_before():
    rest, aroused = _rest_and_aroused()
    base = Baseline.fit(rest.values[40:], rest.quality[40:])
    r, a = rest.values[40:], aroused.values[40:]  # 160 steps each
    # rest 8 min, arousal, rest 13 min, arousal: 1600 steps, more than the device keeps
    values = np.concatenate([r, r, r, a, r, r, r, r, r, a])
    x = model_inputs(base, values)
    assert x.shape == (len(values), len(INPUT_NAMES)) and x.dtype == np.float32
    n = len(FEATURE_NAMES)
    hr = INPUT_NAMES.index("hr_bpm")
    hr10, hr20 = INPUT_NAMES.index("hr_bpm_change_10min"), INPUT_NAMES.index("hr_bpm_change_20min")
    np.testing.assert_array_equal(x[:CONTEXT_TO_S, n:], 0)  # nothing before yet
    np.testing.assert_allclose(x[:, :n], base.normalise(values))
    first, second = 3 * 160, 9 * 160
    # Early in the first arousal both changes match the level (the minutes before were rest)
    assert x[first + 50, hr10] == pytest.approx(x[first + 50, hr], abs=0.3)
    assert x[first + 50, hr20] == pytest.approx(x[first + 50, hr], abs=0.3)
    # ... while at rest before it nothing moves.
    assert abs(x[first - 10, hr10]) < 0.3 and abs(x[first - 10, hr]) < 0.3
    # Back at rest the changes are negative while the windows still hold the arousal ...
    assert x[first + 170, hr10] < x[first + 170, hr] - 0.2
    # ... and thirteen minutes later the last 10 minutes are rest again while the last 20
    # still hold the first arousal: the two windows say different things.
    assert abs(x[second - 10, hr10]) < 0.3 and x[second - 10, hr20] < -0.2
    assert x[second + 50, hr10] == pytest.approx(x[second + 50, hr], abs=0.3)
    assert x[second + 50, hr20] < x[second + 50, hr10] - 0.2
    # The device computes the newest row from its last HISTORY_STEPS rows only.
    assert len(values) > HISTORY_STEPS
    np.testing.assert_allclose(model_inputs(base, values[-HISTORY_STEPS:])[-1], x[-1], atol=1e-5)
    with pytest.raises(ValueError, match="model_inputs"):
        model_inputs(base, values[:, :4])


def _swaying_wrist(seconds: float, rate_hz: float, sway_hz: float = 1.7, seed: int = 0):
    """(N, 3) in g: gravity plus a wrist swaying at ``sway_hz`` (a cadence near a heart
    rate's band), and the PPG artefact it causes: a short linear filter of the sway."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    sway = 0.3 * np.sin(2 * np.pi * sway_hz * t + 0.3 * np.sin(2 * np.pi * 0.05 * t))
    acc = np.column_stack([sway, 0.5 * sway, np.ones_like(t)]) + 0.003 * rng.standard_normal((t.size, 3))
    lag = max(1, round(0.03 * rate_hz))
    artefact = np.concatenate([np.zeros(lag), sway[:-lag]]) + 0.4 * sway
    return acc, artefact


def test_beats_are_read_from_the_motion_cleaned_ppg():
    """A swaying wrist puts its cadence into the PPG; with the accelerometer's axes and
    ``motion_clean`` the features read the pulse from the cleaned signal, as the vitals do."""
    rate_hz, acc_hz, seconds = 64.0, 32.0, 120
    pulse = sig.ppg(seconds, rate_hz, 66, rmssd_ms=30, amplitude=1.0, seed=3)
    acc, _ = _swaying_wrist(seconds, acc_hz)
    _, artefact = _swaying_wrist(seconds, rate_hz)
    moved = pulse + 3.0 * artefact
    cleaned = step_features(moved, rate_hz, accel_g=acc, accel_rate_hz=acc_hz,
                            motion_clean=True).values[40:, 0]
    raw = step_features(moved, rate_hz, accel_g=acc, accel_rate_hz=acc_hz).values[40:, 0]
    magnitude = step_features(moved, rate_hz, accel_g=np.linalg.norm(acc, axis=1),
                              accel_rate_hz=acc_hz, motion_clean=True).values[40:, 0]
    assert np.nanmedian(np.abs(cleaned - 66)) < 2.0, cleaned
    assert np.nanmedian(np.abs(raw - 66)) > 10.0, raw  # the sway passes for beats
    np.testing.assert_array_equal(magnitude, raw)  # a magnitude cannot clean: left as is


def test_cleaning_a_still_wrist_leaves_the_features_near_where_they_were():
    """Still (under the vitals' 0.01 g floor), nothing is fitted: heart rate and RMSSD stay;
    the pulse amplitude is read after the vitals' band-pass (4 Hz), which trims the pulse's
    sharper harmonics."""
    p = sig.ppg(120, 64, 70, rmssd_ms=40, amplitude=200, seed=1)
    a = sig.accel(120, 32, 0.003)
    clean = step_features(p, 64, accel_g=a, accel_rate_hz=32, motion_clean=True).values[40:]
    plain = step_features(p, 64, accel_g=a, accel_rate_hz=32).values[40:]
    np.testing.assert_allclose(clean[:, 0], plain[:, 0], rtol=0.02)
    np.testing.assert_allclose(np.median(clean[:, 1]), np.median(plain[:, 1]), rtol=0.05)
    np.testing.assert_allclose(np.median(clean[:, 2]), np.median(plain[:, 2]), rtol=0.2)


def test_an_ecg_gives_heart_rate_and_rmssd_and_the_ppg_the_rest():
    """With an ECG fitted, the beat intervals come from its R peaks (here the PPG's are
    made different on purpose); amplitude and breathing stay the PPG's. Without it, the same
    call reads them from the PPG."""
    rate_hz = 100.0
    p = sig.ppg(120, rate_hz, 70, rmssd_ms=15, amplitude=200)
    e = sig.ecg(120, 250.0, 70, rmssd_ms=60, seed=2)
    with_ecg = step_features(p, rate_hz, ecg=e, ecg_rate_hz=250.0)
    without = step_features(p, rate_hz)
    assert np.all(np.abs(with_ecg.values[40:, 1] - 60) < 12), with_ecg.values[40:, 1]
    assert np.all(np.abs(without.values[40:, 1] - 15) < 8), without.values[40:, 1]
    assert np.all(np.abs(with_ecg.values[40:, 0] - 70) < 2)
    np.testing.assert_array_equal(with_ecg.values[:, 2:], without.values[:, 2:])
    only_ecg = step_features(ecg=e, ecg_rate_hz=250.0)
    assert np.all(np.abs(only_ecg.values[40:, 1] - 60) < 12)
    assert np.isnan(only_ecg.values[:, 2]).all() and (only_ecg.ppg_quality[40:] > 0.8).all()
