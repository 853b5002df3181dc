"""The numpy Butterworth design, SOS filtering and peak picking agree with scipy.signal (which
the tests may import; the device does not)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from models import iir, peaks
from tests.conftest import REPO

DESIGNS = [(btype, cut, order, fs)
           for btype, cut in [("lowpass", 0.3), ("lowpass", 8.0), ("lowpass", 40.0),
                              ("highpass", 0.05), ("highpass", 0.5),
                              ("bandpass", (0.5, 8.0)), ("bandpass", (5.0, 15.0)), ("bandpass", (0.1, 0.5))]
           for order in (1, 2, 3, 4)
           for fs in (32.0, 100.0, 250.0)
           if max(np.atleast_1d(cut)) < fs / 2]


@pytest.mark.parametrize("btype,cut,order,fs", DESIGNS)
def test_butter_matches_scipy(btype, cut, order, fs):
    ours = iir.butter(order, cut, btype, fs)
    theirs = signal.butter(order, cut, btype=btype, fs=fs, output="sos")
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("btype,cut,order,fs", DESIGNS[::5])
def test_sosfilt_with_state_matches_scipy_in_any_split(btype, cut, order, fs):
    rng = np.random.default_rng(order)
    sos = signal.butter(order, cut, btype=btype, fs=fs, output="sos")
    x = 1e4 + rng.standard_normal((3, 1500)).cumsum(axis=1)  # a DC level and a drift
    zi0 = signal.sosfilt_zi(sos)
    np.testing.assert_allclose(iir.sosfilt_zi(sos), zi0, rtol=1e-8, atol=1e-9)
    expected, zf = signal.sosfilt(sos, x, axis=-1, zi=zi0[:, None, :] * x[None, :, :1])
    state = np.broadcast_to(zi0, (3,) + zi0.shape) * x[:, :1, None]
    cascade = iir.Cascade(sos)
    rows, got = state.reshape(3, -1), []
    for a, b in [(0, 1), (1, 18), (18, 118), (118, 500), (500, 1500)]:  # odd and long blocks
        y, rows = cascade.run(np.ascontiguousarray(x[:, a:b]), rows)
        got.append(y)
    scale = np.abs(x).max()
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, atol=1e-9 * scale)
    np.testing.assert_allclose(rows.reshape(3, -1, 2), np.moveaxis(zf, 0, 1), atol=1e-9 * scale)


def test_sosfiltfilt_and_group_delay_match_scipy():
    rng = np.random.default_rng(3)
    sos = signal.butter(2, (0.5, 8.0), btype="bandpass", fs=100, output="sos")
    x = rng.standard_normal(3000)
    for padlen in (None, 0, 50, 300):
        np.testing.assert_allclose(iir.sosfiltfilt(sos, x, padlen=padlen),
                                   signal.sosfiltfilt(sos, x, padlen=padlen), atol=1e-10)
    for f in (0.7, 1.2, 3.0):
        _, gd = signal.group_delay(signal.sos2tf(sos), w=[f], fs=100)
        assert iir.group_delay(sos, f, 100) == pytest.approx(float(gd[0]), rel=1e-6)
    with pytest.raises(ValueError, match="longer than padlen"):
        iir.sosfiltfilt(sos, x[:20], padlen=30)


def test_bad_designs_name_the_problem():
    with pytest.raises(ValueError, match="Nyquist"):
        iir.butter(2, 60.0, "lowpass", 100.0)
    with pytest.raises(ValueError, match="btype"):
        iir.butter(2, 1.0, "notch", 100.0)
    with pytest.raises(ValueError, match="two edges"):
        iir.butter(2, 1.0, "bandpass", 100.0)
    with pytest.raises(ValueError, match="shape"):
        iir.sosfilt(np.ones(5), np.ones(10))


def test_find_peaks_matches_scipy_on_random_signals():
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(3, 2000))
        # Rounding makes plateaus, which SciPy counts once, at their middle.
        x = np.round(rng.standard_normal(n).cumsum() * rng.choice([1, 0.2]), int(rng.choice([0, 1, 3])))
        if trial % 3 == 0:
            x = np.sin(np.arange(n) * 0.1) + 0.3 * rng.standard_normal(n)
        kw = {}
        if trial % 2:
            kw["distance"] = float(rng.uniform(1, 40))
        if trial % 5 == 0:
            kw["height"] = float(np.median(x))
        if trial % 3 == 1:
            kw["prominence"] = float(rng.uniform(0, 2))
        np.testing.assert_array_equal(peaks.find_peaks(x, **kw), signal.find_peaks(x, **kw)[0],
                                      err_msg=f"trial {trial} {kw}")


def test_find_peaks_edges():
    assert peaks.find_peaks(np.array([1.0, 2.0])).size == 0
    assert peaks.find_peaks(np.zeros(100)).size == 0
    assert list(peaks.find_peaks(np.array([0.0, 1.0, 1.0, 1.0, 0.0]))) == [2]
    assert peaks.find_peaks(np.array([0.0, 1.0, 1.0])).size == 0  # a top running off the end
    with pytest.raises(ValueError, match="distance"):
        peaks.find_peaks(np.arange(5.0), distance=0.5)


def test_the_signal_path_does_not_import_scipy():
    """scipy.signal's import tree costs ~40 MB and 0.7 s on the device, scipy.ndimage's 0.3 s:
    the app must not pull them in (tools and tests may; replaying a .mat file loads scipy.io
    when it is asked to)."""
    code = ("import sys; import device.app.device, device.processing.pipeline, models.vitals, models.physio.estimator; "
            "bad = sorted(m for m in sys.modules if m.startswith('scipy')); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_box_minimum_and_median_filters_match_scipy_ndimage():
    from scipy import ndimage

    from models.dsp import median_filter1d, minimum_filter1d, uniform_filter1d

    rng = np.random.default_rng(5)
    for _ in range(300):
        n, size = int(rng.integers(1, 400)), int(rng.integers(1, 80))
        x = 1e4 + rng.standard_normal(n).cumsum()
        origin = int(rng.integers(-(size // 2), (size - 1) // 2 + 1))
        np.testing.assert_array_equal(minimum_filter1d(x, size, origin),
                                      ndimage.minimum_filter1d(x, size, origin=origin, mode="nearest"))
        np.testing.assert_allclose(uniform_filter1d(x, size), ndimage.uniform_filter1d(x, size, mode="nearest"),
                                   rtol=1e-12)
        np.testing.assert_array_equal(median_filter1d(x, 5), ndimage.median_filter(x, size=5, mode="nearest"))
    with pytest.raises(ValueError, match="origin"):
        minimum_filter1d(np.ones(10), 4, origin=3)
