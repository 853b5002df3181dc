"""Pulse rate from PPG under motion: accelerometer-referenced artifact removal and a tracker.

Each window goes through three steps:

1. Artifact removal. Limb motion moves the sensor against the skin and the blood in the
   tissue; the light it modulates is, to first order, a short linear filter of the limb's
   acceleration plus a quadratic term (the sensor-skin gap changes with the square of the
   displacement's swing; Zhang et al., TROIKA, IEEE TBME 2015, sect. II discuss the same
   harmonics). The window's PPG is regressed by least squares on the three band-passed
   accelerometer axes (now and ``ARTIFACT_LAG_S`` earlier), their squares and cross-products,
   and the residual kept: a block-wise Wiener/NLMS solution, solved by a 12 x 12 normal
   equation instead of a per-sample adaptive filter.
2. Spectrum. The residual of every PPG channel gives a Hann-windowed, zero-padded power
   spectrum on one bpm grid; channels are averaged after normalising each to its peak, so a
   noisy channel with a flat spectrum adds little.
3. Tracking with continuity. The heart rate moves by a few bpm between windows; the peak is
   searched under a Gaussian prior centred on the previous estimate whose width grows with the
   time since it (``TRACK_SIGMA_BPM_PER_SQRT_S``), which keeps the tracker off the cadence's
   harmonics once it holds the pulse. Without a previous estimate (start, or lost) the
   strongest peak in 40-200 bpm starts the track.

The parameters are physical (lag of the tissue response, rate of change of the heart rate)
and few, so they do not fit the 12 SPC 2015 recordings they were checked on.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from models.dsp import _hann, find_peaks, median, parabolic_vertex, refined_peak_times_s

HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0
GRID_STEP_BPM = 0.5
GRID_BPM = np.arange(30.0, 240.0 + GRID_STEP_BPM, GRID_STEP_BPM)
_BAND_LO = int(np.searchsorted(GRID_BPM, HR_MIN_BPM))
_BAND_HI = int(np.searchsorted(GRID_BPM, min(2 * HR_MAX_BPM, GRID_BPM[-1]), side="right"))
_IN_BAND = (GRID_BPM >= HR_MIN_BPM) & (GRID_BPM <= HR_MAX_BPM)
ANALYSIS_RATE_HZ = 25.0
RIDGE = 0.03
ARTIFACT_LAG_S = 0.032  # tissue/sensor response lags the wrist's acceleration by tens of ms
# Heart rate drifts as a random walk of about 10 bpm per sqrt(s) at most during exercise
# onset (a 2 s step then allows ~15 bpm); narrower loses the pulse when it rises fast.
TRACK_SIGMA_BPM_PER_SQRT_S = 10.6
TRACK_LOST_S = 20.0  # no window for this long (sensor off, gap): forget the track
# Share of the in-band power near the tracked rate and its 2nd harmonic: band-passed white
# noise gives ~0.25, a clean pulse 0.85+.
SHARE_FLOOR, SHARE_GOOD = 0.45, 0.75
AGREE_BPM, AGREE_SPAN_BPM = 3.0, 10.0


class PulseEstimate(NamedTuple):
    hr_bpm: float | None
    quality: float
    share: float  # spectral share behind the quality
    channel: int | None  # index of the channel that weighed most


def _design_matrix(acc: np.ndarray, lag: int) -> np.ndarray:
    """Regressors (n, 12): axes now and ``lag`` samples earlier, squares, cross-products."""
    n = acc.shape[0]
    X = np.empty((n, 12))
    X[:, 0:3] = acc
    X[lag:, 3:6] = acc[: n - lag]
    X[:lag, 3:6] = acc[:1]
    X[:, 6:9] = acc * acc
    X[:, 9:12] = acc * acc[:, (1, 2, 0)]
    X[:, 6:12] -= X[:, 6:12].sum(axis=0) / n
    return X


def remove_motion(ppg: np.ndarray, acc: np.ndarray | None, rate_hz: float) -> np.ndarray:
    """PPG windows (channels, n) minus their least-squares fit on the accelerometer terms.

    ``acc`` (n, 3) band-passed like the PPG and on the same sample grid; None or a still
    accelerometer leaves the PPG as it is.
    """
    ppg = np.atleast_2d(np.asarray(ppg, dtype=float))
    if acc is None or acc.shape[0] != ppg.shape[1] or acc.shape[0] < 48:
        return ppg
    X = _design_matrix(acc, max(1, round(ARTIFACT_LAG_S * rate_hz)))
    gram = X.T @ X
    diag = gram.reshape(-1)[:: gram.shape[0] + 1]  # a view on the diagonal
    scale = float(diag.sum()) / gram.shape[0]
    if not math.isfinite(scale) or scale <= 1e-12:
        return ppg
    # Ridge (Tikhonov) at RIDGE of the mean regressor power: keeps the solve stable when the
    # arm is still, and shrinks the fit where the accelerometer explains little - plain least
    # squares also absorbs the part of the pulse that happens to correlate with a motion line
    # near the heart rate, leaving a hole there that pushes the tracker off.
    diag += RIDGE * scale
    coef = np.linalg.solve(gram, X.T @ ppg.T)
    return ppg - (X @ coef).T


def grid_spectra(x: np.ndarray, rate_hz: float, pad_factor: int = 4) -> np.ndarray:
    """Power spectra of rows of ``x`` (Hann, zero-padded) interpolated onto ``GRID_BPM``."""
    x = np.atleast_2d(x)
    n = x.shape[1]
    nfft = 1 << math.ceil(math.log2(n * pad_factor))
    x = (x - x.sum(axis=1, keepdims=True) / n) * _hann(n)
    spec = np.fft.rfft(x, nfft, axis=1)
    power = spec.real**2 + spec.imag**2
    k0, frac, rest = _grid_bins(float(rate_hz), nfft)
    return power[:, k0] * rest + power[:, k0 + 1] * frac


@functools.lru_cache(maxsize=16)
def _grid_bins(rate_hz: float, nfft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower FFT bin of each ``GRID_BPM`` point and the interpolation weights."""
    k = GRID_BPM / (rate_hz * 60.0 / nfft)  # fractional bin of each grid point
    k0 = np.minimum(k.astype(int), nfft // 2 - 1)
    frac = k - k0
    return k0, frac, 1.0 - frac


def spectral_share(spectrum: np.ndarray, hr_bpm: float, window_s: float) -> float:
    """Power within a Hann main lobe (2/T) of ``hr_bpm`` and of 2 x ``hr_bpm`` over the band."""
    total = float(spectrum[_BAND_LO:_BAND_HI].sum())
    if total <= 0:
        return 0.0
    half = 2.0 / window_s * 60.0 / GRID_STEP_BPM
    k1, k2 = (hr_bpm - GRID_BPM[0]) / GRID_STEP_BPM, (2 * hr_bpm - GRID_BPM[0]) / GRID_STEP_BPM

    def lobe(k: float) -> slice:
        return slice(max(_BAND_LO, int(np.ceil(k - half))), min(_BAND_HI, int(np.floor(k + half)) + 1))

    s1, s2 = lobe(k1), lobe(k2)
    overlap = max(0, s1.stop - s2.start)  # lobes touch at low rates and short windows
    near = spectrum[s1].sum() + spectrum[s2].sum() - (spectrum[s2.start:s2.start + overlap].sum() if overlap else 0.0)
    return float(near / total)


def interval_hr(x: np.ndarray, rate_hz: float, hr_bpm: float) -> float | None:
    """Median peak-to-peak HR, peaks at least 0.6 of the expected period apart (the dicrotic
    wave is not a beat)."""
    return pulse_peaks(x, rate_hz, hr_bpm)[0]


def pulse_peaks(x: np.ndarray, rate_hz: float, hr_bpm: float) -> tuple[float | None, np.ndarray, np.ndarray]:
    """(``interval_hr``, pulse peak times s from the first sample, their heights)."""
    empty = (None, np.empty(0), np.empty(0))
    d = x - x.sum() / x.size
    spread = math.sqrt(float(d @ d) / x.size)
    if spread <= 0:
        return empty
    # Height rather than prominence: as selective on a band-passed pulse, and cheaper.
    peaks = find_peaks(x, distance=max(1, int(0.6 * 60.0 / hr_bpm * rate_hz)), height=0.5 * spread)
    t = refined_peak_times_s(x, peaks, rate_hz)
    if t.size < 3:
        return empty
    inner = peaks[(peaks > 0) & (peaks < x.size - 1)]
    return 60.0 / median(np.diff(t)), t, x[inner]


class PulseRateTracker:
    """Heart rate from PPG windows with an accelerometer reference; state carried per window."""

    def __init__(self) -> None:
        self.hr_bpm: float | None = None
        self._t_s: float | None = None
        self.last_clean = np.empty(0)  # the motion-cleaned window of the best channel
        self.last_rate_hz = 0.0  # its sample rate (the analysis rate)
        self.last_peaks_s = np.empty(0)  # its pulse peaks (s from its first sample) ...
        self.last_heights = np.empty(0)  # ... and their heights

    def reset(self) -> None:
        self.hr_bpm = self._t_s = None

    def update(self, ppg: np.ndarray, rate_hz: float, acc: np.ndarray | None, t_s: float) -> PulseEstimate:
        """``ppg`` (channels, n) band-passed windows ending at ``t_s``; ``acc`` (n, 3) or None."""
        ppg = np.atleast_2d(np.asarray(ppg, dtype=float))
        n = ppg.shape[1]
        if n < 3 * rate_hz or not np.isfinite(ppg.sum()):
            return PulseEstimate(None, 0.0, 0.0, None)
        window_s = n / rate_hz
        # The pulse band ends at 4 Hz: 25 Hz carries it (the band-pass already attenuates what
        # would alias), and every step after this is 4-5x cheaper at 100-125 Hz input.
        step = max(1, int(rate_hz // ANALYSIS_RATE_HZ))
        if step > 1:
            ppg = ppg[:, ::step]
            acc = None if acc is None else acc[::step]
            rate_hz = rate_hz / step
        clean = remove_motion(ppg, acc, rate_hz)
        spectra = grid_spectra(clean, rate_hz)
        peak = spectra.max(axis=1)
        live = peak > 1e-300
        if not live.any():
            return PulseEstimate(None, 0.0, 0.0, None)
        shares = np.zeros(len(spectra))
        in_band = _IN_BAND
        for i in np.flatnonzero(live):
            shares[i] = spectral_share(spectra[i], GRID_BPM[in_band][np.argmax(spectra[i, in_band])], window_s)
        # Weight channels by how pulse-like each is on its own: noise adds ~nothing.
        weights = np.minimum(np.maximum((shares - 0.2) / 0.5, 0.05), 1.0) * live
        combined = (weights[:, None] * spectra / np.where(live, peak, 1.0)[:, None]).sum(axis=0)
        combined /= combined.max()
        if self._t_s is not None and not 0 <= t_s - self._t_s <= TRACK_LOST_S:
            self.reset()
        if self.hr_bpm is None or self._t_s is None:
            prior = in_band.astype(float)
        else:
            sigma = TRACK_SIGMA_BPM_PER_SQRT_S * math.sqrt(max(t_s - self._t_s, 0.25))
            prior = np.exp(-0.5 * ((GRID_BPM - self.hr_bpm) / sigma) ** 2) * in_band
        score = combined * prior
        k = int(np.argmax(score))
        if score[k] <= 0:
            return PulseEstimate(None, 0.0, 0.0, None)
        hr = float(GRID_BPM[k])
        if 0 < k < score.size - 1:
            hr += parabolic_vertex(float(score[k - 1]), float(score[k]), float(score[k + 1])) * GRID_STEP_BPM
        self.hr_bpm, self._t_s = hr, t_s
        # Quality: the pulse's share of the cleaned power, cross-checked by beat intervals.
        best = int(np.argmax(weights))
        self.last_clean, self.last_rate_hz = clean[best], rate_hz
        share = spectral_share(spectra[best], hr, window_s)
        q_share = min(1.0, max(0.0, (share - SHARE_FLOOR) / (SHARE_GOOD - SHARE_FLOOR)))
        q = 0.0
        self.last_peaks_s = self.last_heights = np.empty(0)
        if q_share > 0:
            hr_iv, self.last_peaks_s, self.last_heights = pulse_peaks(clean[best], rate_hz, hr)
            if hr_iv is not None:
                q = q_share * min(1.0, max(0.0, 1.0 - (abs(hr - hr_iv) - AGREE_BPM) / AGREE_SPAN_BPM))
        return PulseEstimate(hr, q, share, best)
