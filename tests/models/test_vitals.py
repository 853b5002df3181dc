"""Streaming vitals on synthetic physiology with known truth."""

import json

import numpy as np
import pytest

from models.vitals import Vitals, VitalsTracker, hr_from_ecg, hr_from_ppg
from sensors.types import SampleBlock

PPG_HZ, ECG_HZ, EDA_HZ, ACC_HZ = 100.0, 250.0, 8.0, 50.0
DURATION_S = 12.0
END_NS = int(DURATION_S * 1e9)
FULL_SCALE_COUNTS = 2**18 - 1  # MAX30102 18-bit ADC


# --------------------------------------------------------------------------- synthetic signals


def _beat_phase(hr_bpm, rate_hz, duration_s, rr_variability=0.02):
    """Cardiac phase (rad) with respiratory sinus arrhythmia at 0.2 Hz (whole cycles in 10 s)."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    f_hz = hr_bpm / 60.0 * (1 + rr_variability * np.sin(2 * np.pi * 0.2 * t))
    return t, 2 * np.pi * np.cumsum(f_hz) / rate_hz


def ppg_signal(
    hr_bpm, rate_hz=PPG_HZ, duration_s=DURATION_S, noise=0.1, seed=0, dc=1.0e5, amp=1500.0
):
    """Pulse with 2nd/3rd harmonics (dicrotic shape), respiratory AM and baseline, noise."""
    rng = np.random.default_rng(seed)
    t, phase = _beat_phase(hr_bpm, rate_hz, duration_s)
    pulse = np.sin(phase) + 0.4 * np.sin(2 * phase + 0.5) + 0.15 * np.sin(3 * phase + 1.0)
    resp = np.sin(2 * np.pi * 0.25 * t)
    return dc + amp * (pulse * (1 + 0.1 * resp) + 0.25 * resp + noise * rng.standard_normal(t.size))


def ecg_signal(hr_bpm, rate_hz=ECG_HZ, duration_s=DURATION_S, noise_mv=0.03, seed=0):
    """P-QRS-T complexes (Gaussian waves, mV) at beats with 1% RSA and 0.5% random RR."""
    rng = np.random.default_rng(seed)
    rr0_s = 60.0 / hr_bpm
    beats, t_beat = [], 0.3 * rr0_s
    while t_beat < duration_s + 1:
        beats.append(t_beat)
        t_beat += rr0_s * (
            1 + 0.01 * np.sin(2 * np.pi * 0.2 * t_beat) + 0.005 * rng.standard_normal()
        )
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    d = t[:, None] - np.array(beats)[None, :]
    qt_s = 0.4 * np.sqrt(rr0_s)  # Bazett: T wave moves closer at high rates

    def wave(centre_s, width_s, amp_mv):
        return amp_mv * np.exp(-0.5 * ((d - centre_s) / width_s) ** 2)

    x = (
        wave(-0.16, 0.025, 0.12)
        + wave(-0.025, 0.008, -0.15)
        + wave(0.0, 0.01, 1.0)
        + wave(0.025, 0.01, -0.25)
        + wave(qt_s - 0.05, 0.04, 0.3)
    ).sum(axis=1)
    return x + 0.1 * np.sin(2 * np.pi * 0.2 * t) + noise_mv * rng.standard_normal(t.size)


def walking_acc(duration_s=DURATION_S, rate_hz=ACC_HZ, vertical_g=0.25, seed=0):
    """Gravity on z plus 2 Hz steps (with a harmonic) vertically and 1 Hz sway laterally."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    vertical = vertical_g * np.sin(2 * np.pi * 2.0 * t) + 0.3 * vertical_g * np.sin(
        2 * np.pi * 4.0 * t + 0.7
    )
    x = 0.05 * np.sin(2 * np.pi * 1.0 * t) + 0.002 * rng.standard_normal(t.size)
    y = 0.002 * rng.standard_normal(t.size)
    z = 1.0 + vertical + 0.002 * rng.standard_normal(t.size)
    expected_rms = vertical_g * np.sqrt((1 + 0.3**2) / 2)
    return x, y, z, expected_rms


def blocks(channel, rate_hz, x, size, unit="", t0_ns=0):
    period_ns = 1e9 / rate_hz
    return [
        SampleBlock(channel, rate_hz, t0_ns + round(i * period_ns), x[i : i + size], unit)
        for i in range(0, len(x), size)
    ]


def track(*block_lists, tracker=None, t_ns=END_NS):
    tracker = tracker or VitalsTracker()
    for block_list in block_lists:
        for b in block_list:
            tracker.push(b)
    return tracker.update(t_ns)


def acc_blocks(x, y, z, size, t0_ns=0):
    return [
        b
        for trio in zip(
            *(
                blocks(name, ACC_HZ, axis, size, "g", t0_ns)
                for name, axis in (("acc_x", x), ("acc_y", y), ("acc_z", z))
            )
        )
        for b in trio
    ]


# --------------------------------------------------------------------------- heart rate


@pytest.mark.parametrize("hr_bpm", [50, 75, 120, 160])
def test_hr_from_ppg_within_2_bpm(hr_bpm):
    v = track(blocks("ppg_ir", PPG_HZ, ppg_signal(hr_bpm, seed=hr_bpm), 25, "counts"))
    assert v.hr_bpm["ppg"] == pytest.approx(hr_bpm, abs=2.0)
    assert v.quality["ppg"] >= 0.8
    assert v.ppg_channel == "ppg_ir"


@pytest.mark.parametrize("hr_bpm", [50, 75, 120, 160])
def test_hr_from_ecg_within_2_bpm(hr_bpm):
    v = track(blocks("ecg", ECG_HZ, ecg_signal(hr_bpm, seed=hr_bpm), 32, "mV"))
    assert v.hr_bpm["ecg"] == pytest.approx(hr_bpm, abs=2.0)
    assert v.quality["ecg"] >= 0.8


def test_green_ppg_is_preferred_and_ir_is_the_fallback():
    # Both wavelengths see the same pulse: green (first named) leads a tie.
    ir = blocks("ppg_ir", PPG_HZ, ppg_signal(70, seed=1), 25)
    green = blocks("ppg_green", PPG_HZ, ppg_signal(70, seed=2), 25)
    v = track(ir, green)
    assert v.ppg_channel == "ppg_green"
    assert v.hr_bpm["ppg"] == pytest.approx(70, abs=2.0)
    ir = blocks("ppg_ir", PPG_HZ, ppg_signal(120, seed=1), 25)
    noisy_green = blocks(
        "ppg_green",
        PPG_HZ,
        1e5 + 800 * np.random.default_rng(3).standard_normal(round(DURATION_S * PPG_HZ)),
        25,
    )
    v = track(ir, noisy_green)
    assert v.ppg_channel == "ppg_ir"
    assert v.hr_bpm["ppg"] == pytest.approx(120, abs=2.0)


# --------------------------------------------------------------------------- bad input


def _assert_no_hr(v: Vitals, tracker: VitalsTracker):
    assert v.hr_bpm == {"ppg": None, "ecg": None}
    assert v.quality["ppg"] < tracker.min_quality
    assert v.quality["ecg"] < tracker.min_quality


@pytest.mark.parametrize("level", [0.0, 1.0e5, float(FULL_SCALE_COUNTS)])
def test_flat_or_saturated_input_gives_no_heart_rate(level):
    n_ppg, n_ecg = round(DURATION_S * PPG_HZ), round(DURATION_S * ECG_HZ)
    tracker = VitalsTracker()
    v = track(
        blocks("ppg_ir", PPG_HZ, np.full(n_ppg, level), 25),
        blocks("ecg", ECG_HZ, np.full(n_ecg, level / 1e5), 32),
        tracker=tracker,
    )
    _assert_no_hr(v, tracker)


def test_clipped_pulses_give_no_heart_rate():
    ppg = ppg_signal(75)
    ppg_clipped = np.minimum(ppg, np.percentile(ppg, 60))  # top 40% pinned at full scale
    ecg = ecg_signal(75)
    ecg_clipped = np.clip(ecg, np.percentile(ecg, 15), np.percentile(ecg, 85))
    tracker = VitalsTracker()
    v = track(
        blocks("ppg_ir", PPG_HZ, ppg_clipped, 25),
        blocks("ecg", ECG_HZ, ecg_clipped, 32),
        tracker=tracker,
    )
    _assert_no_hr(v, tracker)


@pytest.mark.parametrize("seed", range(8))
def test_white_noise_gives_no_heart_rate(seed):
    rng = np.random.default_rng(seed)
    tracker = VitalsTracker()
    v = track(
        blocks("ppg_ir", PPG_HZ, 1e5 + 500 * rng.standard_normal(round(DURATION_S * PPG_HZ)), 25),
        blocks("ecg", ECG_HZ, 0.5 * rng.standard_normal(round(DURATION_S * ECG_HZ)), 32),
        tracker=tracker,
    )
    _assert_no_hr(v, tracker)


def test_estimators_accept_degenerate_windows():
    for x in (np.zeros(3000), np.full(3000, np.nan), np.ones(5), np.zeros(0)):
        assert hr_from_ppg(x, PPG_HZ) == (None, 0.0)
        assert hr_from_ecg(x, ECG_HZ) == (None, 0.0)


def test_nan_samples_are_held_and_counted():
    x = ppg_signal(90)
    x[300:310] = np.nan
    tracker = VitalsTracker()
    v = track(blocks("ppg_ir", PPG_HZ, x, 25), tracker=tracker)
    assert tracker.nonfinite_samples["ppg_ir"] == 10
    assert v.hr_bpm["ppg"] == pytest.approx(90, abs=2.0)


def test_stale_and_short_channels_give_none():
    ppg = blocks("ppg_ir", PPG_HZ, ppg_signal(80), 25)
    tracker = VitalsTracker(hop_s=1.0)
    for b in ppg:
        tracker.push(b)
    assert tracker.update(END_NS + 1_000_000_000).hr_bpm["ppg"] == pytest.approx(80, abs=2)
    stale = tracker.update(END_NS + 2_500_000_000)
    assert stale.hr_bpm["ppg"] is None and stale.quality["ppg"] == 0.0
    short = track(blocks("ppg_ir", PPG_HZ, ppg_signal(80, duration_s=7.0), 25), t_ns=7_000_000_000)
    assert short.hr_bpm["ppg"] is None and short.quality["ppg"] == 0.0


def test_a_gap_restarts_the_channel():
    x = ppg_signal(80)
    tracker = VitalsTracker()
    for b in blocks("ppg_ir", PPG_HZ, x[:600], 25):
        tracker.push(b)
    # 6 s of samples later, after 1 s missing: under 80% of a window since the gap
    for b in blocks("ppg_ir", PPG_HZ, x[600:], 25, t0_ns=7_000_000_000):
        tracker.push(b)
    assert tracker.resets["ppg_ir"] == 1
    assert tracker.update(13_000_000_000).hr_bpm["ppg"] is None


def test_unknown_channels_are_ignored_and_counted_and_bad_units_refused():
    tracker = VitalsTracker()
    tracker.push(SampleBlock("temp", 1.0, 0, np.ones(4), "C"))
    tracker.push(SampleBlock("temp", 1.0, 4_000_000_000, np.ones(4), "C"))
    assert tracker.ignored_blocks == {"temp": 2}
    with pytest.raises(ValueError, match="eda.*uS"):
        tracker.push(SampleBlock("eda", EDA_HZ, 0, np.ones(4), "V"))
    with pytest.raises(ValueError, match="ecg.*rate_hz"):
        tracker.push(SampleBlock("ecg", 20.0, 0, np.ones(4), "mV"))


# --------------------------------------------------------------------------- EDA and motion


def test_eda_level_of_a_constant_and_after_a_step():
    n = round(DURATION_S * EDA_HZ)
    v = track(blocks("eda", EDA_HZ, np.full(n, 4.2), 4, "uS"))
    assert v.eda_us == pytest.approx(4.2, abs=0.05)
    assert v.quality["eda"] == pytest.approx(1.0)
    step = np.where(np.arange(n) / EDA_HZ < 8.0, 2.0, 5.0)  # 2 -> 5 uS at 8 s, 4 s before end
    v = track(blocks("eda", EDA_HZ, step, 4, "uS"))
    assert v.eda_us == pytest.approx(5.0, abs=0.05)
    v = track(blocks("eda", EDA_HZ, step[: round(9.5 * EDA_HZ)], 4, "uS"), t_ns=9_500_000_000)
    assert 2.0 < v.eda_us < 5.0  # mid-step: the 2 s level sits between


def test_eda_open_circuit_gives_none():
    n = round(DURATION_S * EDA_HZ)
    v = track(blocks("eda", EDA_HZ, np.full(n, 0.01), 4, "uS"))
    assert v.eda_us is None and v.quality["eda"] == 0.0


def test_motion_at_rest_is_near_zero():
    n = round(DURATION_S * ACC_HZ)
    rng = np.random.default_rng(0)
    # lying tilted: gravity split over y and z, sensor noise ~2 mg
    x, y, z = (0.002 * rng.standard_normal(n) + g for g in (0.0, 0.6, 0.8))
    v = track(acc_blocks(x, y, z, 10))
    assert v.motion_g < 0.005
    assert v.quality["accel"] == pytest.approx(1.0)


def test_motion_of_a_sinusoid_and_of_walking_matches_the_known_rms():
    n = round(DURATION_S * ACC_HZ)
    t = np.arange(n) / ACC_HZ
    z = 1.0 + 0.2 * np.sin(2 * np.pi * 1.5 * t)
    v = track(acc_blocks(np.zeros(n), np.zeros(n), z, 10))
    assert v.motion_g == pytest.approx(0.2 / np.sqrt(2), rel=0.03)
    x, y, z, expected_rms = walking_acc()
    v = track(acc_blocks(x, y, z, 10))
    assert v.motion_g == pytest.approx(expected_rms, rel=0.05)


def test_motion_is_the_same_whatever_the_axes_block_sizes():
    x, y, z, _ = walking_acc()
    whole = track(acc_blocks(x, y, z, 10**6))
    split = track(
        blocks("acc_x", ACC_HZ, x, 1, "g"),
        blocks("acc_y", ACC_HZ, y, 7, "g"),
        blocks("acc_z", ACC_HZ, z, 64, "g"),
    )
    assert whole.motion_g is not None
    assert split.motion_g == pytest.approx(whole.motion_g, rel=1e-9)


def test_motion_needs_all_three_axes():
    n = round(DURATION_S * ACC_HZ)
    v = track(
        blocks("acc_x", ACC_HZ, np.zeros(n), 10, "g"), blocks("acc_z", ACC_HZ, np.ones(n), 10, "g")
    )
    assert v.motion_g is None and v.quality["accel"] == 0.0


# --------------------------------------------------------------------------- streaming


def _all_channels(size):
    x, y, z, _ = walking_acc()
    eda = 3.0 + 0.5 * (np.arange(round(DURATION_S * EDA_HZ)) / EDA_HZ > 6)
    return [
        blocks("ppg_ir", PPG_HZ, ppg_signal(72, seed=5), size, "counts"),
        blocks("ecg", ECG_HZ, ecg_signal(72, seed=5), size, "mV"),
        blocks("eda", EDA_HZ, eda, size, "uS"),
        acc_blocks(x, y, z, size),
    ]


@pytest.mark.parametrize("size", [1, 7, 64])
def test_streaming_in_blocks_gives_the_same_vitals_as_one_block(size):
    whole = track(*_all_channels(10**6))
    split = track(*_all_channels(size))
    assert whole.hr_bpm["ppg"] is not None and whole.hr_bpm["ecg"] is not None
    assert whole.eda_us is not None and whole.motion_g is not None
    assert split.hr_bpm == pytest.approx(whole.hr_bpm, rel=1e-9)
    assert split.eda_us == pytest.approx(whole.eda_us, rel=1e-9)
    assert split.motion_g == pytest.approx(whole.motion_g, rel=1e-9)
    assert split.quality == pytest.approx(whole.quality, rel=1e-9, abs=1e-12)


def test_to_dict_is_json_ready():
    v = track(*_all_channels(50))
    d = json.loads(json.dumps(v.to_dict()))
    assert d["t_ns"] == END_NS
    assert set(d["quality"]) == {"ppg", "ecg", "eda", "accel"}
    assert d["hr_bpm"]["ppg"] == round(v.hr_bpm["ppg"], 1)
    assert d["eda_us"] == round(v.eda_us, 3)
    empty = VitalsTracker().update(0).to_dict()
    assert empty["hr_bpm"] == {"ppg": None, "ecg": None}
    assert empty["eda_us"] is None and empty["motion_g"] is None
    assert json.dumps(empty)
