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
3. Tracking over the whole band. A probability for every rate of 40-220 bpm is carried from
   window to window and updated by each window's spectrum (``models.pulse_belief``): no
   resting rate is assumed, a wrong track can always be left, and evidence sitting on the
   accelerometer's lines (the movement's cycle and its multiples) counts less. The belief
   picks the mode, the window's own spectral peak next to it gives the rate. The published
   quality falls to nothing where the rate is ambiguous (a rival mode nearly as likely), where
   the window shows little power at it, or where it sits on a motion line without having
   arrived there from a rate checked off it.

The parameters are physical (lag of the tissue response, rate of change of the heart rate)
and few; the tracker's were set on simulated cases (``tools.ppg_motion_sim``, seeds other
than the benchmark's), not on the SPC 2015 recordings it is scored on.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from models.dsp import find_peaks, hann, median, parabolic_vertex, rfft_padded
from models.pulse_belief import EVIDENCE, LINE_DISCOUNT, RateBelief, motion_lines

HR_MIN_BPM, HR_MAX_BPM = 40.0, 220.0
#: The pulse band the vitals band-pass a PPG to (and its motion reference with it), Hz.
PULSE_BAND_HZ = (0.4, 4.0)
GRID_STEP_BPM = 0.5
GRID_BPM = np.arange(30.0, 240.0 + GRID_STEP_BPM, GRID_STEP_BPM)
_BAND_LO = int(np.searchsorted(GRID_BPM, HR_MIN_BPM))
_BAND_HI = int(np.searchsorted(GRID_BPM, min(2 * HR_MAX_BPM, GRID_BPM[-1]), side="right"))
_IN_BAND = (GRID_BPM >= HR_MIN_BPM) & (GRID_BPM <= HR_MAX_BPM)
_IN_LO, _IN_HI = int(np.flatnonzero(_IN_BAND)[0]), int(np.flatnonzero(_IN_BAND)[-1]) + 1
_GRID_IN_BAND = GRID_BPM[_IN_LO:_IN_HI]
_NEIGHBOURS = np.array([-1, 0, 1])
ANALYSIS_RATE_HZ = 25.0
RIDGE = 0.03
ARTIFACT_LAG_S = 0.032  # tissue/sensor response lags the wrist's acceleration by tens of ms
# A rate on a motion line is published for at most this long after the last rate checked
# off the lines: the pulse may cross the cadence, but a track that stays there is unverifiable.
LINE_HOLD_S = 8.0
# motion_lines weight (triangles a main lobe wide) from which a rate counts as on a line; a
# rate is checked off the lines only where the weight is 0, a lobe away from every line.
LINE_ON = 0.25
# A rival mode of the belief at this fraction of the chosen one's density makes it ambiguous.
RIVAL_OK, RIVAL_BAD = 0.25, 0.6
OWN_FLOOR, OWN_GOOD = 0.2, 0.5  # the window's power at the rate over its band's peak
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
    # Public numpy: its checks add ~3 us to the 12 x 12 solve (5 vs 2 us for the private
    # LAPACK kernel, measured), nothing at a 1 s hop.
    coef = np.linalg.solve(gram, X @ ppg.T)
    return ppg - coef.T @ X


def grid_spectra(x: np.ndarray, rate_hz: float, pad_factor: int = 4, summed_from: int | None = None) -> np.ndarray:
    """Power spectra of rows of ``x`` (Hann, zero-padded) interpolated onto ``GRID_BPM``; with
    ``summed_from``, the rows from there on come back as one row, their sum."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    n = x.shape[1]
    nfft = 1 << math.ceil(math.log2(n * pad_factor))
    x = (x - np.add.reduce(x, axis=1, keepdims=True) / n) * hann(n)
    spec = rfft_padded(x, nfft)
    power = spec.real**2 + spec.imag**2
    if summed_from is not None:  # interpolation is linear: sum first, interpolate one row
        power = np.vstack((power[:summed_from], np.add.reduce(power[summed_from:], axis=0)))
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


def pulse_peaks(x: np.ndarray, rate_hz: float,
                hr_bpm: float) -> tuple[float | None, np.ndarray, np.ndarray]:
    """(median peak-to-peak HR, pulse peak times s from the first sample, their heights); the
    peaks at least 0.6 of the expected period apart (the dicrotic wave is not a beat)."""
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
        self.belief = RateBelief(_GRID_IN_BAND)
        self.hr_bpm: float | None = None
        self._t_s: float | None = None
        self._line_s = LINE_HOLD_S  # time on a motion line since the last checked rate
        self.on_motion_line = False
        self.last_clean = np.empty(0)  # the motion-cleaned window of the best channel
        self.last_rate_hz = 0.0  # its sample rate (the analysis rate)
        self.last_peaks_s = np.empty(0)  # its pulse peaks (s from its first sample) ...
        self.last_heights = np.empty(0)  # ... and their heights

    def reset(self) -> None:
        self.hr_bpm = self._t_s = None
        self.belief.reset()
        self._line_s = LINE_HOLD_S  # nothing checked yet

    def update(self, ppg: np.ndarray, rate_hz: float, acc: np.ndarray | None, t_s: float,
               motion_unknown: bool = False) -> PulseEstimate:
        """``ppg`` (channels, n) band-passed windows ending at ``t_s``; ``acc`` (n, 3) in g,
        band-passed like the PPG, or None. ``motion_unknown``: there is an accelerometer but
        it does not cover this window; the rate is estimated and tracked, not published (the
        limb may be moving, and a movement's line would pass for the pulse)."""
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
        channels = len(clean)
        motion_g = (0.0 if acc is None or acc.shape[0] != clean.shape[1]
                    else math.sqrt(float(np.vdot(acc, acc)) / acc.shape[0]))
        # The accelerometer's axes share the PPG's transform: one FFT call for all rows.
        if motion_g > 0:
            spectra = grid_spectra(np.vstack((clean, acc.T)), rate_hz, summed_from=channels)
            acc_power = spectra[channels]
        else:
            spectra, acc_power = grid_spectra(clean, rate_hz), None
        spectra = spectra[:channels]
        peak = np.maximum.reduce(spectra[:, _IN_LO:_IN_HI], axis=1)
        live = peak > 1e-300
        if not live.any():
            return PulseEstimate(None, 0.0, 0.0, None)
        if channels == 1:
            # One channel: its weight would scale the combined spectrum, which is normalised.
            best, combined = 0, spectra[0]
        else:
            shares = np.zeros(channels)
            for i in np.flatnonzero(live):
                top_bpm = _GRID_IN_BAND[spectra[i, _IN_LO:_IN_HI].argmax()]
                shares[i] = spectral_share(spectra[i], top_bpm, window_s)
            # Weight channels by how pulse-like each is on its own: noise adds ~nothing.
            weights = np.minimum(np.maximum((shares - 0.2) / 0.5, 0.05), 1.0) * live
            best = int(weights.argmax())
            combined = (weights / np.where(live, peak, 1.0)) @ spectra
        if self._t_s is not None and not 0 <= t_s - self._t_s <= TRACK_LOST_S:
            self.reset()
        band = combined[_IN_LO:_IN_HI] / np.maximum.reduce(combined[_IN_LO:_IN_HI])
        lobe_bpm = 2.0 / window_s * 60.0  # Hann main lobe half-width
        lines = (np.zeros(band.size) if acc_power is None else
                 motion_lines(acc_power, GRID_BPM, motion_g, lobe_bpm, _GRID_IN_BAND))
        log_likelihood = EVIDENCE * band * (1.0 - LINE_DISCOUNT * lines)
        dt = 0.0 if self._t_s is None else t_s - self._t_s
        post = self.belief.update(dt, log_likelihood)
        k = int(post.argmax())
        # The belief picks the mode; the rate is this window's spectral peak within half a lobe
        # of it (the belief itself lags a rising rate), or the mode where the window has none.
        half = max(1, round(lobe_bpm / GRID_STEP_BPM))
        a, b = max(1, k - half // 2), min(band.size - 1, k + half // 2 + 1)
        j = a + int(band[a:b].argmax())
        if band[j - 1] <= band[j] >= band[j + 1] and a < j < b - 1:
            hr = float(_GRID_IN_BAND[j]) + parabolic_vertex(
                float(band[j - 1]), float(band[j]), float(band[j + 1])) * GRID_STEP_BPM
        else:
            hr = float(_GRID_IN_BAND[k])
            if 0 < k < post.size - 1:
                hr += parabolic_vertex(float(post[k - 1]), float(post[k]), float(post[k + 1])) * GRID_STEP_BPM
        self.hr_bpm, self._t_s = hr, t_s
        # Ambiguity: the strongest rival mode outside the chosen one's main lobe.
        rival = max(float(np.maximum.reduce(post[: max(0, k - half)], initial=0.0)),
                    float(np.maximum.reduce(post[k + half + 1:], initial=0.0))) / float(post[k])
        q_rival = min(1.0, max(0.0, (RIVAL_BAD - rival) / (RIVAL_BAD - RIVAL_OK)))
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
        # The window's own power at the rate, against its strongest: a belief coasting on a rate
        # the window no longer shows (a subharmonic after a jump, a hole) is not published.
        own = float(band[min(band.size - 1, max(0, round((hr - _GRID_IN_BAND[0]) / GRID_STEP_BPM)))])
        q *= q_rival * min(1.0, max(0.0, (own - OWN_FLOOR) / (OWN_GOOD - OWN_FLOOR)))
        self.on_motion_line = bool(lines[k] >= LINE_ON)
        if motion_unknown:
            q, self._line_s = 0.0, LINE_HOLD_S  # nothing checked until the reference is back
        elif self.on_motion_line:
            self._line_s += dt
            if self._line_s > LINE_HOLD_S:
                q = 0.0
        elif lines[k] == 0 and q >= 0.5:
            self._line_s = 0.0  # a rate checked off the lines
        return PulseEstimate(hr, q, share, best)
