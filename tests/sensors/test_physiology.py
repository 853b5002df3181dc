import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from sensors.emulated.physiology import AMBIENT_LIGHT, LEADS_OFF_MV, PhysiologySimulator
from sensors.emulated.scenario import Scenario, State


def _grid(t0_s, t1_s, rate_hz):
    return t0_s + np.arange(round((t1_s - t0_s) * rate_hz)) / rate_hz


def _signals(sim, t):
    ppg = sim.ppg(t)
    return {"ecg": sim.ecg_mv(t), "eda": sim.eda_us(t), "accel": sim.accel_g(t), **ppg}


def _spectral_peak_hz(x, rate_hz, lo_hz, hi_hz):
    x = (x - x.mean()) * np.hanning(len(x))
    n = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x, n))
    f = np.fft.rfftfreq(n, 1 / rate_hz)
    band = (f >= lo_hz) & (f <= hi_hz)
    return f[band][np.argmax(spectrum[band])]


# -- determinism ---------------------------------------------------------------------------------
def _busy_scenario():
    return Scenario(
        [(0, State(hr_bpm=70)), (20, {"motion_g": 0.5}), (40, {"motion_g": 0.05, "arousal": 0.8})],
        loop_s=60,
    )


def test_values_do_not_depend_on_batching_or_order():
    t = _grid(5.0, 65.0, 137.0)  # crosses chunk boundaries at an odd rate
    whole = _signals(PhysiologySimulator(_busy_scenario(), seed=3), t)
    sim = PhysiologySimulator(_busy_scenario(), seed=3)
    rng = np.random.default_rng(0)
    cuts = np.unique(np.concatenate([[0, len(t)], rng.integers(0, len(t), 60)]))
    pieces = list(itertools.pairwise(cuts))
    rng.shuffle(pieces)
    got = {k: np.zeros_like(v) for k, v in whole.items()}
    for a, b in pieces:
        for k, v in _signals(sim, t[a:b]).items():
            got[k][a:b] = v
    for k in whole:
        np.testing.assert_array_equal(got[k], whole[k], err_msg=k)
    # A shuffled, unsorted request gives the same values too.
    perm = rng.permutation(len(t))
    np.testing.assert_array_equal(sim.ecg_mv(t[perm]), whole["ecg"][perm])


def test_two_threads_at_different_rates_see_the_same_signal():
    reference = PhysiologySimulator(_busy_scenario(), seed=5)
    sim = PhysiologySimulator(_busy_scenario(), seed=5)
    fast, slow = _grid(0, 40, 400.0), _grid(0, 40, 25.0)

    def read(t, block):
        return np.concatenate([sim.ppg(t[i : i + block])["ir"] for i in range(0, len(t), block)])

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {"fast": pool.submit(read, fast, 32), "slow": pool.submit(read, slow, 3)}
        results = {name: f.result(timeout=60) for name, f in futures.items()}
    np.testing.assert_array_equal(results["fast"], reference.ppg(fast)["ir"])
    np.testing.assert_array_equal(results["slow"], reference.ppg(slow)["ir"])
    np.testing.assert_array_equal(results["fast"][::16], results["slow"])


def test_seed_decides_the_signal():
    t = _grid(0, 20, 50.0)
    a, b, c = (PhysiologySimulator(seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.eda_us(t), b.eda_us(t))
    np.testing.assert_array_equal(a.beats(0, 20), b.beats(0, 20))
    assert not np.array_equal(a.beats(0, 20), c.beats(0, 20))


def test_bad_input_is_named():
    sim = PhysiologySimulator()
    with pytest.raises(ValueError, match="t_s"):
        sim.ppg([0.0, np.nan])
    with pytest.raises(ValueError, match="seed"):
        PhysiologySimulator(seed=-1)
    with pytest.raises(ValueError, match="at least 2"):
        sim.hr_bpm(0.0, 0.3)


# -- heart ---------------------------------------------------------------------------------------
def test_hr_truth_matches_the_beat_schedule():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=72, hrv_ms=40), seed=2)
    beats = sim.beats(100, 400)
    hr = sim.hr_bpm(100, 400)
    assert hr == pytest.approx(60 * (len(beats) - 1) / (beats[-1] - beats[0]))
    assert hr == pytest.approx(72, abs=1.5)
    assert len(beats) == pytest.approx(300 * 72 / 60, abs=10)
    inst = sim.truth(_grid(100, 400, 4.0))["hr_bpm"]
    assert inst.mean() == pytest.approx(hr, abs=1.0)
    # Arousal raises the rate above the scenario's resting rate.
    aroused = PhysiologySimulator(Scenario.rest(hr_bpm=72, arousal=0.8), seed=2)
    assert aroused.hr_bpm(100, 400) > hr + 10


def test_hrv_is_sdnn_like_and_falls_with_arousal():
    def sdnn_ms(arousal):
        sim = PhysiologySimulator(Scenario.rest(hr_bpm=65, hrv_ms=60, arousal=arousal), seed=4)
        return 1000 * np.std(np.diff(sim.beats(0, 600)))

    calm = sdnn_ms(0.0)
    assert 0.6 * 60 < calm < 1.5 * 60
    assert sdnn_ms(0.9) < 0.7 * calm


def test_rr_intervals_swing_with_breathing():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=60, hrv_ms=80, resp_rate_bpm=12), seed=6)
    b = sim.beats(0, 600)
    rr = np.diff(b)
    # Resample the tachogram evenly and look for the respiratory peak (0.2 Hz).
    t = _grid(5, 595, 4.0)
    tachogram = np.interp(t, b[1:], rr)
    assert _spectral_peak_hz(tachogram, 4.0, 0.04, 0.4) == pytest.approx(0.2, abs=0.02)


def test_ectopic_beats_come_early_with_a_compensatory_pause():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=60, hrv_ms=20), seed=1, ectopic_prob=0.05)
    rr = np.diff(sim.beats(0, 600))
    early = np.nonzero(rr < 0.8 * np.median(rr))[0]
    early = early[early + 1 < len(rr)]
    assert 10 <= len(early) <= 60
    pairs = rr[early] + rr[early + 1]
    assert np.median(np.abs(pairs / np.median(rr) - 2)) < 0.1
    assert np.all(np.diff(sim.beats(0, 600)) > 0)
    plain = np.diff(PhysiologySimulator(Scenario.rest(hr_bpm=60, hrv_ms=20), seed=1).beats(0, 600))
    assert np.sum(plain < 0.8 * np.median(plain)) == 0


def test_ecg_r_peaks_sit_on_the_beats():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=75), seed=7)
    rate = 250.0
    t = _grid(10, 70, rate)
    ecg = sim.ecg_mv(t)
    offsets = []
    for b in sim.beats(10.1, 69.9):
        near = np.abs(t - b) <= 0.02
        peak_t = t[near][np.argmax(ecg[near])]
        offsets.append(peak_t - b)
        window = np.abs(t - b) < 0.4
        assert 0.9 <= ecg[near].max() - np.median(ecg[window]) <= 1.6
    assert np.max(np.abs(offsets)) <= 1 / rate + 1e-9
    assert len(offsets) > 70


def test_qt_lengthens_with_rr():
    def t_wave_delay_s(hr):
        sim = PhysiologySimulator(Scenario.rest(hr_bpm=hr, hrv_ms=5), seed=8)
        t = _grid(10, 40, 500.0)
        ecg = sim.ecg_mv(t)
        delays = []
        for b in sim.beats(10, 39):
            seg = (t > b + 0.12) & (t < b + 0.45)
            delays.append(t[seg][np.argmax(ecg[seg])] - b)
        return np.median(delays)

    assert t_wave_delay_s(50) > t_wave_delay_s(110) + 0.04


# -- PPG -----------------------------------------------------------------------------------------
def test_clean_ppg_spectral_peak_is_the_heart_rate():
    for hr, seed in ((58, 1), (77, 2), (104, 3)):
        sim = PhysiologySimulator(Scenario.rest(hr_bpm=hr), seed=seed)
        t = _grid(0, 120, 100.0)
        ir = sim.ppg(t)["ir"]
        peak_bpm = 60 * _spectral_peak_hz(ir, 100.0, 0.6, 3.5)
        assert peak_bpm == pytest.approx(sim.hr_bpm(0, 120), abs=1.0)


def test_a_monotonic_clock_far_from_zero_works_the_same():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=66), seed=12)
    t0 = 1.7e6  # a Raspberry Pi up for three weeks
    t = t0 + _grid(0, 60, 100.0)
    peak_bpm = 60 * _spectral_peak_hz(sim.ppg(t)["ir"], 100.0, 0.6, 3.5)
    assert peak_bpm == pytest.approx(sim.hr_bpm(t0, t0 + 60), abs=1.0)
    assert sim.hr_bpm(t0, t0 + 60) == pytest.approx(66, abs=3)
    ecg = sim.ecg_mv(t)
    for b in sim.beats(t0 + 1, t0 + 59):
        near = np.abs(t - b) <= 0.02
        assert abs(t[near][np.argmax(ecg[near])] - b) <= 0.01


def test_ppg_levels_and_perfusion():
    sim = PhysiologySimulator(Scenario.rest(), seed=1)
    ppg = sim.ppg(_grid(0, 30, 100.0))
    assert np.mean(ppg["ir"]) == pytest.approx(1.0, abs=0.03)
    assert np.mean(ppg["ir"]) > np.mean(ppg["red"]) > np.mean(ppg["green"])
    pi = _perfusion_index(sim)
    assert pi["ir"] == pytest.approx(sim.truth(15.0)["perfusion_index"], rel=0.2)
    assert 0.01 < pi["ir"] < 0.02
    assert pi["red"] < pi["ir"] < pi["green"]
    tense = PhysiologySimulator(Scenario.rest(arousal=1.0), seed=1)
    assert _perfusion_index(tense)["ir"] < 0.7 * pi["ir"]


def _perfusion_index(sim):
    """Median beat-wise AC/DC of each channel."""
    t = _grid(0, 30, 100.0)
    ppg = sim.ppg(t)
    b = sim.beats(1, 29)
    out = {}
    for name, light in ppg.items():
        ratios = [
            np.ptp(light[(t >= b0) & (t < b1)]) / np.mean(light[(t >= b0) & (t < b1)])
            for b0, b1 in itertools.pairwise(b)
        ]
        out[name] = float(np.median(ratios))
    return out


def _pulse_feet(sim, t0, t1, rate=500.0):
    """R-peak -> PPG foot (tangent at max upslope of the inverted light meets the preceding minimum)."""
    t = _grid(t0, t1, rate)
    # Sensor noise swamps a raw derivative: low-pass first, as any PAT detector does.
    y = sosfiltfilt(butter(4, 12.0, fs=rate, output="sos"), -sim.ppg(t)["ir"])
    slope = np.gradient(y, t)
    lags = []
    for b in sim.beats(t0 + 1, t1 - 1):
        win = (t > b + 0.05) & (t < b + 0.45)
        k = np.nonzero(win)[0][np.argmax(slope[win])]
        before = (t > b) & (t < t[k])
        foot = t[k] - (y[k] - y[before].min()) / slope[k]
        lags.append(foot - b)
    return np.array(lags)


def test_pulse_arrival_follows_the_r_peak_and_shortens_with_arousal():
    calm = PhysiologySimulator(Scenario.rest(hr_bpm=65), seed=2)
    tense = PhysiologySimulator(Scenario.rest(hr_bpm=65, arousal=0.9), seed=2)
    lag_calm, lag_tense = _pulse_feet(calm, 10, 40), _pulse_feet(tense, 10, 40)
    for lags, sim in ((lag_calm, calm), (lag_tense, tense)):
        assert np.all((lags > 0.15) & (lags < 0.30))
        assert np.median(lags) == pytest.approx(sim.truth(25.0)["pat_s"], abs=0.02)
    assert np.median(lag_tense) < np.median(lag_calm) - 0.04


def test_ppg_has_a_dicrotic_notch():
    sim = PhysiologySimulator(Scenario.rest(hr_bpm=60, hrv_ms=10), seed=3)
    t = _grid(10, 20, 500.0)
    y = -sim.ppg(t)["ir"]
    notched = 0
    for b in sim.beats(10.5, 18.5):
        seg = y[(t > b) & (t < b + 1.0)]
        d = np.diff(seg)
        turns = np.sum((d[:-1] > 0) & (d[1:] <= 0))  # local maxima: systolic and diastolic
        notched += turns >= 2
    assert notched >= 6


def test_motion_artifact_grows_with_motion_and_follows_the_acceleration():
    t = _grid(0, 60, 100.0)
    clean = PhysiologySimulator(Scenario.rest(hr_bpm=70), seed=9).ppg(t)["ir"]
    powers = []
    for motion in (0.05, 0.3, 0.7):
        sim = PhysiologySimulator(Scenario.rest(hr_bpm=70, motion_g=motion), seed=9)
        artifact = sim.ppg(t)["ir"] - clean
        powers.append(np.mean(artifact**2))
        dyn = sim.accel_g(t) - sim._gravity_g(t)
        lagged = sim.accel_g(t - 0.04) - sim._gravity_g(t - 0.04)
        design = np.column_stack([dyn, lagged, np.ones(len(t))])
        fit = np.linalg.lstsq(design, artifact, rcond=None)[0]
        r2 = 1 - np.var(artifact - design @ fit) / np.var(artifact)
        assert r2 > 0.6
    assert powers[0] < powers[1] < powers[2]
    assert powers[2] > 10 * powers[0]


def test_finger_off_leaves_ambient_light_only():
    sc = Scenario([(0, State()), (10, {"finger_on": False}), (20, {"finger_on": True})])
    sim = PhysiologySimulator(sc, seed=1)
    t = _grid(0, 30, 100.0)
    ppg = sim.ppg(t)
    off = (t >= 10) & (t < 20)
    for name, light in ppg.items():
        assert np.mean(light[off]) == pytest.approx(AMBIENT_LIGHT, abs=0.002), name
        assert np.std(light[off]) < 0.001
        assert np.mean(light[~off]) > 0.3
    assert sim.truth(15.0)["finger_on"] is False


# -- ECG, EDA, motion ----------------------------------------------------------------------------
def test_leads_off_rails_and_motion_adds_emg():
    sc = Scenario([(0, State()), (10, {"leads_on": False}), (20, {"leads_on": True})])
    t = _grid(0, 30, 250.0)
    ecg = PhysiologySimulator(sc, seed=1).ecg_mv(t)
    off = (t >= 10) & (t < 20)
    assert np.all(ecg[off] == LEADS_OFF_MV)
    assert np.all(np.abs(ecg[~off]) < 3)

    def hf_power(motion):
        x = PhysiologySimulator(Scenario.rest(motion_g=motion), seed=1).ecg_mv(t)
        return np.mean(np.diff(x) ** 2)

    assert hf_power(0.0) < hf_power(0.3) < hf_power(0.8)


def _eda_episode(arousal, seed=11, minutes=20):
    sim = PhysiologySimulator(Scenario.rest(arousal=arousal), seed=seed)
    t = _grid(0, 60 * minutes, 8.0)
    return sim, t, sim.eda_us(t), sim.scr_onsets(0, 60 * minutes)


def test_eda_rises_with_arousal_and_scrs_come_more_often():
    sim_calm, t, calm, on_calm = _eda_episode(0.0)
    _, _, tense, on_tense = _eda_episode(0.9)
    assert 2.0 <= np.median(calm) <= 10.0
    assert np.median(tense) > 1.3 * np.median(calm)
    assert 0.7 <= len(on_calm) / 20 <= 3.0
    assert len(on_tense) / 20 >= 6.0
    assert len(on_tense) > 2 * len(on_calm)
    # Each SCR lifts the signal within its rise time; truth agrees with the signal.
    truth = sim_calm.truth(t)
    assert np.max(np.abs(truth["eda_us"] - calm)) < 0.03
    assert np.all(truth["eda_us"] >= truth["scl_us"] - 1e-12)
    phasic = truth["eda_us"] - truth["scl_us"]

    def rise_over_3s(at):
        at = at[at + 3 < t[-1]]
        return np.interp(at + 3.0, t, phasic) - np.interp(at, t, phasic)

    after_onset = rise_over_3s(on_calm)
    anywhere = rise_over_3s(np.random.default_rng(0).uniform(0, 1190, 300))
    assert np.median(after_onset) > 0.05 and np.mean(after_onset > 0) > 0.8
    assert np.median(anywhere) < 0  # between onsets the responses only recover


def test_no_skin_contact_reads_zero():
    sc = Scenario([(0, State()), (10, {"skin_contact": False}), (20, {"skin_contact": True})])
    t = _grid(0, 30, 32.0)
    eda = PhysiologySimulator(sc, seed=1).eda_us(t)
    off = (t >= 10) & (t < 20)
    assert np.all(eda[off] == 0.0)
    assert np.all(eda[~off] > 1.0)


def test_accel_at_rest_is_gravity_plus_tiny_noise():
    sim = PhysiologySimulator(Scenario.rest(), seed=3)
    t = _grid(0, 60, 100.0)
    a = sim.accel_g(t)
    assert a.shape == (len(t), 3)
    assert np.mean(np.linalg.norm(a, axis=1)) == pytest.approx(1.0, abs=0.01)
    assert 0.002 < np.std(a - sim._gravity_g(t)) < 0.004
    assert sim.truth(30.0)["motion_g"] == 0.0


def test_walking_shows_the_cadence_and_scales_with_motion():
    rms = []
    for motion in (0.05, 0.3, 0.6):
        sim = PhysiologySimulator(Scenario.rest(motion_g=motion), seed=4)
        t = _grid(0, 60, 100.0)
        dyn = sim.accel_g(t) - sim._gravity_g(t)
        rms.append(np.sqrt(np.mean(np.sum(dyn**2, axis=1))))
        assert np.mean(sim.truth(_grid(5, 55, 1.0))["motion_g"]) == pytest.approx(rms[-1], rel=0.3)
    assert rms[0] < rms[1] < rms[2]
    assert rms[2] == pytest.approx(0.6, rel=0.25)
    mag = np.linalg.norm(sim.accel_g(t), axis=1)
    peak = _spectral_peak_hz(mag, 100.0, 1.2, 3.0)
    assert 1.5 <= peak <= 2.5
    assert peak == pytest.approx(sim.cadence_hz, abs=0.1)


def test_low_motion_brings_occasional_jerks():
    def jerky_seconds(motion):
        sim = PhysiologySimulator(Scenario.rest(motion_g=motion), seed=5)
        t = _grid(0, 300, 100.0)
        dyn = np.linalg.norm(sim.accel_g(t) - sim._gravity_g(t), axis=1)
        return np.sum(dyn.reshape(300, 100).max(axis=1) > 0.125)

    # Fidgeting: ~10 movements a minute peaking at 2-4x motion_g, which random tremor rarely does.
    assert 20 <= jerky_seconds(0.05) <= 150
    assert jerky_seconds(0.0) == 0


# -- scenario ------------------------------------------------------------------------------------
def test_scenario_interpolates_numbers_and_steps_flags():
    sc = Scenario(
        [(0, State(hr_bpm=60)), (10, {"hr_bpm": 80, "finger_on": False}), (20, {"arousal": 1.0})]
    )
    assert sc.state_at(5).hr_bpm == pytest.approx(70)
    assert sc.state_at(5).finger_on is True
    assert sc.state_at(10).finger_on is False
    assert sc.state_at(15).arousal == pytest.approx(0.5)
    assert sc.state_at(15).hr_bpm == pytest.approx(80)
    assert sc.state_at(-5).hr_bpm == 60 and sc.state_at(1e6).arousal == 1.0


def test_scenario_loops_without_a_jump():
    sc = Scenario([(0, State(hr_bpm=60)), (10, {"hr_bpm": 90, "leads_on": False})], loop_s=30)
    assert sc.state_at(35).hr_bpm == pytest.approx(sc.state_at(5).hr_bpm)
    assert sc.state_at(20).hr_bpm == pytest.approx(75)  # half-way back to the first keyframe
    assert sc.state_at(29.99).hr_bpm == pytest.approx(60, abs=0.1)
    assert sc.state_at(29.0).leads_on is False and sc.state_at(30.5).leads_on is True
    sim = PhysiologySimulator(sc, seed=1)
    assert sim.hr_bpm(3000, 3030) == pytest.approx(sim.hr_bpm(0, 30), abs=3)


def test_scenario_rejects_nonsense():
    with pytest.raises(ValueError, match="hr_pbm"):
        Scenario([(0, {"hr_pbm": 70})])
    with pytest.raises(ValueError, match="increase"):
        Scenario([(0, State()), (0, {})])
    with pytest.raises(ValueError, match="arousal"):
        State(arousal=1.5)
    with pytest.raises(ValueError, match="loop_s"):
        Scenario([(0, State()), (50, {})], loop_s=40)


def test_demo_has_rest_walking_and_arousal_and_loops():
    sc = Scenario.demo()
    assert 100 <= sc.loop_s <= 300
    at = [sc.state_at(t) for t in np.arange(0, sc.loop_s, 1.0)]
    assert max(s.motion_g for s in at) >= 0.4
    assert max(s.arousal for s in at) >= 0.7
    assert at[0].motion_g == 0 and at[0].arousal < 0.2
    sim = PhysiologySimulator(sc, seed=1)
    walk = [t for t in range(int(sc.loop_s)) if sc.state_at(t).motion_g > 0.4][5]
    arousal = [t for t in range(int(sc.loop_s)) if sc.state_at(t).arousal > 0.7][5]
    assert sim.truth(walk)["motion_g"] > 0.3
    assert sim.truth(arousal)["hr_bpm"] > sim.truth(5.0)["hr_bpm"] + 10
    # Same subject, same drift, no episode: the tonic level is what the arousal added.
    times = np.array(
        [t for t in range(int(sc.loop_s)) if sc.state_at(t).arousal > 0.7], dtype=float
    )
    calm = PhysiologySimulator(Scenario.rest(**{**vars(sc.state_at(0)), "arousal": 0.0}), seed=1)
    assert np.all(sim.truth(times)["scl_us"] > 1.3 * calm.truth(times)["scl_us"])
    assert sc.state_at(5 + sc.loop_s) == sc.state_at(5)


# -- memory --------------------------------------------------------------------------------------
def test_memory_stays_bounded_and_old_times_rebuild_identically():
    sim = PhysiologySimulator(Scenario.demo(), seed=2)
    early = _grid(1.0, 3.0, 50.0)
    first = {"ecg": sim.ecg_mv(early), "ir": sim.ppg(early)["ir"], "eda": sim.eda_us(early)}
    sizes = []
    for start in np.arange(0, 3 * 3600, 10.0):
        t = _grid(start, start + 10, 25.0)
        sim.ppg(t), sim.ecg_mv(t), sim.eda_us(t), sim.accel_g(t)
        sizes.append(sim.cached_chunks)
    assert max(sizes[-500:]) <= max(sizes[:100]) + 5
    assert max(sizes) < 400
    np.testing.assert_array_equal(sim.ecg_mv(early), first["ecg"])
    np.testing.assert_array_equal(sim.ppg(early)["ir"], first["ir"])
    np.testing.assert_array_equal(sim.eda_us(early), first["eda"])
