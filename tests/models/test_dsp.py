"""Filters, streaming state, spectral peak, clipping, and the sample ring."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from models.dsp import (
    StreamingSos,
    bandpass_sos,
    clipped_fraction,
    fill_nonfinite,
    highpass_sos,
    lowpass_sos,
    parabolic_offset,
    refined_peak_times_s,
)
from models.ring import SampleRing, TriaxialBuffer


def _gain(sos, f_hz, rate_hz):
    _, h = signal.sosfreqz(sos, worN=[f_hz], fs=rate_hz)
    return abs(h[0])


def test_filter_designs_pass_and_stop_where_asked():
    bp = bandpass_sos(0.5, 3.5, 100.0)
    assert _gain(bp, 1.3, 100.0) == pytest.approx(1.0, abs=0.05)
    assert _gain(bp, 0.05, 100.0) < 0.02
    assert _gain(bp, 20.0, 100.0) < 0.05
    lp = lowpass_sos(1.0, 8.0)
    assert _gain(lp, 0.01, 8.0) == pytest.approx(1.0, abs=1e-3)
    assert _gain(lp, 3.5, 8.0) < 0.1
    hp = highpass_sos(0.3, 50.0)
    assert _gain(hp, 1e-3, 50.0) < 1e-4
    assert _gain(hp, 2.0, 50.0) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: bandpass_sos(3.0, 1.0, 100.0), "below high edge"),
        (lambda: bandpass_sos(0.5, 60.0, 100.0), "Nyquist"),
        (lambda: lowpass_sos(0.0, 10.0), "lowpass"),
        (lambda: highpass_sos(0.3, -1.0), "rate_hz"),
    ],
)
def test_filter_design_refuses_impossible_cutoffs(call, words):
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_streaming_sos_equals_sosfilt_on_the_whole_signal(block):
    rng = np.random.default_rng(3)
    x = 5e4 + np.cumsum(rng.standard_normal(1500))
    sos = bandpass_sos(0.5, 3.5, 100.0)
    expected, _ = signal.sosfilt(sos, x, zi=signal.sosfilt_zi(sos) * x[0])
    f = StreamingSos(sos)
    got = np.concatenate([f.process(x[i : i + block]) for i in range(0, x.size, block)])
    # Equal to rounding at the input's scale (a 5e4 DC level: 1e-12 of it).
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(x).max())


def test_streaming_sos_has_no_start_up_transient_on_a_dc_level():
    sos = bandpass_sos(0.5, 3.5, 100.0)
    x = np.full(500, 1.2e5)
    assert np.max(np.abs(StreamingSos(sos).process(x))) < 1e-6
    # the same filter from a zero state rings at the scale of the DC level
    assert np.max(np.abs(signal.sosfilt(sos, x))) > 1e3


def test_streaming_sos_reset_reinitialises_on_the_next_sample():
    f = StreamingSos(lowpass_sos(1.0, 10.0))
    f.process(np.zeros(50))
    y = f.process(np.full(3, 7.0))
    assert y[0] < 7.0  # carried state: a step is smoothed
    f.reset()
    assert not f.started
    np.testing.assert_allclose(f.process(np.full(3, 7.0)), 7.0)
    assert f.process(np.empty(0)).size == 0


def test_parabolic_offset_finds_the_vertex():
    x = np.arange(-1.0, 2.0)
    vertex = 0.3
    y = -((x - vertex) ** 2)
    assert parabolic_offset(y[0], y[1], y[2]) == pytest.approx(vertex)
    assert parabolic_offset(1.0, 1.0, 1.0) == 0.0


def test_refined_peak_times_are_sub_sample():
    rate = 50.0
    t = np.arange(200) / rate
    x = np.cos(2 * np.pi * 1.0 * (t - 0.513))
    peaks, _ = signal.find_peaks(x)
    times = refined_peak_times_s(x, peaks, rate)
    np.testing.assert_allclose(times - np.round(times - 0.513), 0.513, atol=2e-3)


def test_clipped_fraction():
    t = np.linspace(0, 10, 1000)
    sine = np.sin(2 * np.pi * t)
    assert clipped_fraction(sine) < 0.01
    assert clipped_fraction(np.clip(sine, -2, 0.5)) == pytest.approx(1 / 3, abs=0.02)
    assert clipped_fraction(np.full(100, 262143.0)) == 1.0


def test_fill_nonfinite_holds_the_last_finite_value():
    x = np.array([np.nan, 1.0, np.inf, np.nan, 4.0])
    np.testing.assert_array_equal(fill_nonfinite(x, 9.0), [9.0, 1.0, 1.0, 1.0, 4.0])


# --------------------------------------------------------------------------- SampleRing


def test_ring_wraps_around_and_keeps_the_latest():
    ring = SampleRing(rate_hz=10.0, capacity_s=1.0)
    assert ring.capacity == 10 and ring.t_end_ns is None
    x = np.arange(25.0)
    for start in range(0, 25, 7):
        chunk = x[start : start + 7]
        assert ring.extend(chunk, (start + chunk.size) * 100_000_000) is False
    np.testing.assert_array_equal(ring.latest(1.0), x[-10:])
    np.testing.assert_array_equal(ring.latest(0.4), x[-4:])
    np.testing.assert_array_equal(ring.latest(5.0), x[-10:])
    assert ring.duration_s == pytest.approx(1.0)
    assert ring.t_end_ns == 2_500_000_000


def test_ring_keeps_the_tail_of_a_block_larger_than_itself():
    ring = SampleRing(10.0, 1.0)
    ring.extend(np.arange(3.0), 300_000_000)
    ring.extend(np.arange(100.0), 10_300_000_000)
    np.testing.assert_array_equal(ring.latest(1.0), np.arange(90.0, 100.0))


def test_ring_resets_on_a_gap_but_not_on_jitter():
    ring = SampleRing(100.0, 2.0, jitter_s=0.002)
    ring.extend(np.ones(50), 500_000_000)
    # next block 1 ms late: timestamp jitter, still contiguous
    assert ring.extend(np.full(50, 2.0), 1_001_000_000) is False
    assert len(ring) == 100
    # next block 200 ms late: samples were lost
    assert ring.extend(np.full(30, 3.0), 1_501_000_000) is True
    assert ring.resets == 1
    np.testing.assert_array_equal(ring.latest(2.0), np.full(30, 3.0))
    assert ring.duration_s == pytest.approx(0.3)
    # time going backwards (an overlap) also restarts the run
    assert ring.extend(np.full(10, 4.0), 1_000_000_000) is True
    np.testing.assert_array_equal(ring.latest(2.0), np.full(10, 4.0))


def test_ring_resets_and_resizes_on_a_new_rate():
    ring = SampleRing(10.0, 1.0)
    ring.extend(np.ones(10), 1_000_000_000)
    assert not ring.continues(1_000_000_000, rate_hz=20.0)
    assert ring.extend(np.full(5, 2.0), 1_250_000_000, rate_hz=20.0) is True
    assert ring.capacity == 20 and ring.rate_hz == 20.0
    np.testing.assert_array_equal(ring.latest(1.0), np.full(5, 2.0))


def test_ring_refuses_bad_arguments():
    with pytest.raises(ValueError, match="rate_hz"):
        SampleRing(0.0, 1.0)
    with pytest.raises(ValueError, match="capacity_s"):
        SampleRing(10.0, 0.0)
    with pytest.raises(ValueError, match="1-D"):
        SampleRing(10.0, 1.0).extend(np.ones((2, 2)), 0)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    capacity=st.integers(min_value=1, max_value=50),
)
def test_ring_holds_the_tail_of_any_split(sizes, capacity):
    rate = 50.0
    ring = SampleRing(rate, capacity / rate)
    total = sum(sizes)
    x = np.arange(float(total))
    pos = 0
    for n in sizes:
        ring.extend(x[pos : pos + n], round((pos + n) * 1e9 / rate))
        pos += n
    held = min(total, capacity)
    np.testing.assert_array_equal(ring.latest(capacity / rate), x[total - held :])
    assert ring.resets == 0


def test_ring_follows_a_sensor_clock_that_runs_off_its_nominal_rate():
    ring = SampleRing(100.0, 2.0)
    for k in range(100):  # 10 samples per block, stamped 101 ms apart: the chip runs 1% slow
        ring.extend(np.full(10, float(k)), (k + 1) * 101_000_000)
    assert ring.resets == 0 and ring.duration_s == pytest.approx(2.0)


# --------------------------------------------------------------------------- TriaxialBuffer


def _feed_axes(buffer, axes, sizes, rate_hz, t0_ns=(0, 0, 0)):
    """Push each axis in its own block size, interleaved; collect the paired output."""
    period_ns = 1e9 / rate_hz
    queues = {
        name: [(t0 + round(i * period_ns), x[i : i + size]) for i in range(0, x.size, size)]
        for name, x, size, t0 in zip(TriaxialBuffer.AXES, axes, sizes, t0_ns)
    }
    out_t0, out = None, []
    while any(queues.values()):
        for name in TriaxialBuffer.AXES:
            if queues[name]:
                t0, chunk = queues[name].pop(0)
                got = buffer.add(name, t0, rate_hz, chunk)
                if got is not None:
                    out_t0 = got[0] if out_t0 is None else out_t0
                    out.append(got[2])
    return out_t0, np.concatenate(out) if out else np.empty(0)


def test_triaxial_pairs_axes_split_in_any_blocks():
    rng = np.random.default_rng(0)
    axes = [rng.standard_normal(300) for _ in range(3)]
    expected = np.sqrt(sum(a * a for a in axes))
    t0, whole = _feed_axes(TriaxialBuffer(10.0), axes, (300, 300, 300), 50.0)
    assert t0 == 0
    np.testing.assert_allclose(whole, expected)
    _, split = _feed_axes(TriaxialBuffer(10.0), axes, (1, 7, 64), 50.0)
    np.testing.assert_allclose(split, expected)


def test_triaxial_pairs_by_time_when_an_axis_starts_late():
    rate = 50.0
    axes = [np.arange(100.0), np.zeros(100), np.zeros(100)]
    # acc_x starts 10 samples (200 ms) before the others: its first 10 samples have no partner
    t0, out = _feed_axes(
        TriaxialBuffer(10.0),
        [axes[0], axes[1][:90], axes[2][:90]],
        (5, 5, 5),
        rate,
        t0_ns=(0, 200_000_000, 200_000_000),
    )
    assert t0 == 200_000_000
    np.testing.assert_allclose(out, np.arange(10.0, 100.0))


def test_triaxial_refuses_an_unknown_axis():
    with pytest.raises(ValueError, match="acc_w"):
        TriaxialBuffer(1.0).add("acc_w", 0, 50.0, np.ones(3))


def test_fast_primitives_match_numpy_and_scipy():
    from scipy import signal as sps

    from models.dsp import find_peaks, gradient, median

    rng = np.random.default_rng(7)
    for _ in range(50):
        x = rng.standard_normal(int(rng.integers(3, 400)))
        d, h = int(rng.integers(1, 25)), float(rng.standard_normal())
        assert np.array_equal(find_peaks(x, d, h), sps.find_peaks(x, distance=d, height=h)[0])
        assert median(x) == pytest.approx(float(np.median(x)))
        np.testing.assert_allclose(gradient(x), np.gradient(x))
    assert np.isnan(median(np.empty(0)))


def test_streaming_sos_filters_rows_like_separate_filters():
    sos = bandpass_sos(0.4, 4.0, 100.0)
    x = np.random.default_rng(3).standard_normal((3, 700))
    together = StreamingSos(sos)
    y = np.hstack([together.process(x[:, :250]), together.process(x[:, 250:])])
    for i in range(3):
        alone = StreamingSos(sos)
        np.testing.assert_allclose(
            y[i], np.hstack([alone.process(x[i, :99]), alone.process(x[i, 99:])]), rtol=1e-9, atol=1e-12
        )
    with pytest.raises(ValueError, match="state"):
        together.process(x[:2, :10])
