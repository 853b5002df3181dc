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

from models.dsp import find_peaks, hann, median, parabolic_vertex, rfft_padded

HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0
GRID_STEP_BPM = 0.5
GRID_BPM = np.arange(30.0, 240.0 + GRID_STEP_BPM, GRID_STEP_BPM)
_BAND_LO = int(np.searchsorted(GRID_BPM, HR_MIN_BPM))
_BAND_HI = int(np.searchsorted(GRID_BPM, min(2 * HR_MAX_BPM, GRID_BPM[-1]), side="right"))
_IN_BAND = (GRID_BPM >= HR_MIN_BPM) & (GRID_BPM <= HR_MAX_BPM)
_IN_LO, _IN_HI = int(np.flatnonzero(_IN_BAND)[0]), int(np.flatnonzero(_IN_BAND)[-1]) + 1
_GRID_IN_BAND = GRID_BPM[_IN_LO:_IN_HI]
_NEIGHBOURS = np.array([-1, 0, 1])
try:
    # The LAPACK solve behind ``np.linalg.solve``: its wrapper's checks cost four times the
    # 12 x 12 solve itself.
    from numpy.linalg._umath_linalg import solve as _solve_kernel
except ImportError:  # pragma: no cover
    _solve_kernel = np.linalg.solve
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
    """Regressors (12, n) from axes (3, n): now and ``lag`` samples earlier, squares,
    cross-products; a row per regressor keeps every row a contiguous run of samples."""
    n = acc.shape[1]
    X = np.empty((12, n))
    a = X[0:3]
    a[...] = acc  # the terms below read this contiguous copy, not a strided caller's view
    X[3:6, lag:] = a[:, : n - lag]
    X[3:6, :lag] = a[:, :1]
    np.multiply(a, a, out=X[6:9])
    np.multiply(a[:2], a[1:], out=X[9:11])
    np.multiply(a[2], a[0], out=X[11])
    quadratic = X[6:12]
    quadratic -= np.add.reduce(quadratic, axis=1, keepdims=True) / n
    return X


def remove_motion(ppg: np.ndarray, acc: np.ndarray | None, rate_hz: float, ridge: float = RIDGE) -> np.ndarray:
    """PPG windows (channels, n) minus their least-squares fit on the accelerometer terms.

    ``acc`` (n, 3) band-passed like the PPG and on the same sample grid; None or a still
    accelerometer leaves the PPG as it is.
    """
    ppg = np.asarray(ppg, dtype=float)
    if ppg.ndim == 1:
        ppg = ppg[None, :]
    if acc is None or acc.shape[0] != ppg.shape[1] or acc.shape[0] < 48:
        return ppg
    X = _design_matrix(acc.T, max(1, round(ARTIFACT_LAG_S * rate_hz)))
    gram = X @ X.T
    diag = gram.reshape(-1)[:: gram.shape[0] + 1]  # a view on the diagonal
    scale = float(np.add.reduce(diag)) / gram.shape[0]
    if not math.isfinite(scale) or scale <= 1e-12:
        return ppg
    # Ridge (Tikhonov) at ``ridge`` of the mean regressor power: keeps the solve stable when the
    # arm is still, and shrinks the fit where the accelerometer explains little - plain least
    # squares also absorbs the part of the pulse that happens to correlate with a motion line
    # near the heart rate, leaving a hole there that pushes the tracker off.
    diag += ridge * scale
    coef = _solve_kernel(gram, X @ ppg.T)
    return ppg - coef.T @ X


def grid_spectra(x: np.ndarray, rate_hz: float, pad_factor: int = 4) -> np.ndarray:
    """Power spectra of rows of ``x`` (Hann, zero-padded) interpolated onto ``GRID_BPM``."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    n = x.shape[1]
    nfft = 1 << math.ceil(math.log2(n * pad_factor))
    x = (x - np.add.reduce(x, axis=1, keepdims=True) / n) * hann(n)
    spec = rfft_padded(x, nfft)
    power = spec.real**2 + spec.imag**2
    bins, weights = _grid_bins(float(rate_hz), nfft)
    return (power[:, bins] * weights).sum(axis=1)


@functools.lru_cache(maxsize=16)
def _grid_bins(rate_hz: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """The two FFT bins around each ``GRID_BPM`` point (2, grid) and their linear
    interpolation weights (2, grid)."""
    k = GRID_BPM / (rate_hz * 60.0 / nfft)  # fractional bin of each grid point
    k0 = np.minimum(k.astype(int), nfft // 2 - 1)
    frac = k - k0
    return np.stack((k0, k0 + 1)), np.stack((1.0 - frac, frac))


def spectral_share(spectrum: np.ndarray, hr_bpm: float, window_s: float) -> float:
    """Power within a Hann main lobe (2/T) of ``hr_bpm`` and of 2 x ``hr_bpm`` over the band."""
    total = float(np.add.reduce(spectrum[_BAND_LO:_BAND_HI]))
    if total <= 0:
        return 0.0
    return _lobes_power(spectrum, hr_bpm, window_s) / total


def _lobes_power(spectrum: np.ndarray, hr_bpm: float, window_s: float) -> float:
    half = 2.0 / window_s * 60.0 / GRID_STEP_BPM
    k1, k2 = (hr_bpm - GRID_BPM[0]) / GRID_STEP_BPM, (2 * hr_bpm - GRID_BPM[0]) / GRID_STEP_BPM
    a1, b1 = max(_BAND_LO, math.ceil(k1 - half)), min(_BAND_HI, math.floor(k1 + half) + 1)
    a2, b2 = max(_BAND_LO, math.ceil(k2 - half)), min(_BAND_HI, math.floor(k2 + half) + 1)
    # Lobes touch at low rates and short windows: count their overlap once.
    return float(np.add.reduce(spectrum[a1:b1]) + np.add.reduce(spectrum[max(a2, b1):b2]))


def interval_hr(x: np.ndarray, rate_hz: float, hr_bpm: float) -> float | None:
    """Median peak-to-peak HR, peaks at least 0.6 of the expected period apart (the dicrotic
    wave is not a beat)."""
    return pulse_peaks(x, rate_hz, hr_bpm)[0]


def pulse_peaks(x: np.ndarray, rate_hz: float, hr_bpm: float) -> tuple[float | None, np.ndarray, np.ndarray]:
    """(``interval_hr``, pulse peak times s from the first sample, their heights)."""
    mean = float(np.add.reduce(x)) / x.size
    spread = math.sqrt(max(0.0, float(x @ x) / x.size - mean * mean))
    if spread <= 0:
        return None, np.empty(0), np.empty(0)
    # Height rather than prominence: as selective on a band-passed pulse, and cheaper.
    peaks = find_peaks(x, distance=max(1, int(0.6 * 60.0 / hr_bpm * rate_hz)), height=0.5 * spread)
    if peaks.size < 3:
        return None, np.empty(0), np.empty(0)
    # Local maxima never sit on the first or last sample, so each has both neighbours: the
    # sub-sample vertex of ``refined_peak_times_s`` without its edge checks.
    left, centre, right = x[peaks[:, None] + _NEIGHBOURS].T
    denom = left - 2.0 * centre + right
    offset = np.divide(0.5 * (left - right), denom, out=np.zeros(peaks.size), where=denom != 0)
    t = (peaks + np.minimum(np.maximum(offset, -0.5, out=offset), 0.5, out=offset)) / rate_hz
    return 60.0 / median(t[1:] - t[:-1]), t, centre


class PulseRateTracker:
    """Heart rate from PPG windows with an accelerometer reference; state carried per window."""

    def __init__(self, ridge: float = RIDGE) -> None:
        self.ridge = ridge  # of the motion fit (``remove_motion``)
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
        ppg = np.asarray(ppg, dtype=float)
        if ppg.ndim == 1:
            ppg = ppg[None, :]
        n = ppg.shape[1]
        if n < 3 * rate_hz or not math.isfinite(np.add.reduce(ppg, axis=None)):
            return PulseEstimate(None, 0.0, 0.0, None)
        window_s = n / rate_hz
        # The pulse band ends at 4 Hz: 25 Hz carries it (the band-pass already attenuates what
        # would alias), and every step after this is 4-5x cheaper at 100-125 Hz input.
        step = max(1, int(rate_hz // ANALYSIS_RATE_HZ))
        if step > 1:
            ppg = ppg[:, ::step]
            acc = None if acc is None else acc[::step]
            rate_hz = rate_hz / step
        clean = remove_motion(ppg, acc, rate_hz, self.ridge)
        if clean is ppg:  # nothing removed: keep a copy, not a view on the caller's buffer
            clean = ppg.copy()
        spectra = grid_spectra(clean, rate_hz)
        peak = np.maximum.reduce(spectra, axis=1)
        live = peak > 1e-300
        if not live.any():
            return PulseEstimate(None, 0.0, 0.0, None)
        if len(spectra) == 1:
            # One channel: its weight would scale the combined spectrum, which is normalised.
            best, combined = 0, spectra[0]
        else:
            shares = np.zeros(len(spectra))
            for i in np.flatnonzero(live):
                top_bpm = _GRID_IN_BAND[spectra[i, _IN_LO:_IN_HI].argmax()]
                shares[i] = spectral_share(spectra[i], top_bpm, window_s)
            # Weight channels by how pulse-like each is on its own: noise adds ~nothing.
            weights = np.minimum(np.maximum((shares - 0.2) / 0.5, 0.05), 1.0) * live
            best = int(weights.argmax())
            combined = (weights / np.where(live, peak, 1.0)) @ spectra
        if self._t_s is not None and not 0 <= t_s - self._t_s <= TRACK_LOST_S:
            self.reset()
        # Only the band can score (the prior is zero outside it): the band alone is weighed,
        # on a full-grid array so a peak at the band's edge still has both neighbours.
        band = combined[_IN_LO:_IN_HI] / np.maximum.reduce(combined)
        score = np.zeros(GRID_BPM.size)
        if self.hr_bpm is None or self._t_s is None:
            score[_IN_LO:_IN_HI] = band
        else:
            sigma = TRACK_SIGMA_BPM_PER_SQRT_S * math.sqrt(max(t_s - self._t_s, 0.25))
            z = (_GRID_IN_BAND - self.hr_bpm) / sigma
            np.multiply(band, np.exp(-0.5 * z * z), out=score[_IN_LO:_IN_HI])
        k = int(score.argmax())
        if score[k] <= 0:
            return PulseEstimate(None, 0.0, 0.0, None)
        hr = float(GRID_BPM[k])
        if 0 < k < score.size - 1:
            hr += parabolic_vertex(float(score[k - 1]), float(score[k]), float(score[k + 1])) * GRID_STEP_BPM
        self.hr_bpm, self._t_s = hr, t_s
        # Quality: the pulse's share of the cleaned power, cross-checked by beat intervals.
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
