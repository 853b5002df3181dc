"""ECG: streaming R-peak detection, the RR series with ectopic/artifact correction, HRV.

The detector follows Pan & Tompkins (IEEE TBME 32(3), 1985): the squared slope of the
band-passed ECG, integrated over the QRS width, stands out from P and T waves; a peak is a
beat when it clears a threshold a quarter of the way from the running noise level to the
running signal level; no beat within the 250 ms refractory period; and when no beat came for
1.66 mean RR intervals the gap is searched again at half the threshold (search-back).

It runs on the window the tracker holds, every hop, and commits a beat once ``LOOKAHEAD_S``
of signal follows it (so a larger peak inside the refractory period can still win). State
carried between hops: the committed beats, the signal and noise levels, the mean RR.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from models.dsp import find_peaks, median, moving_average

REFRACTORY_S = 0.25
LOOKAHEAD_S = 0.35
QRS_WIDTH_S = 0.1
SEARCH_BACK_RR = 1.66  # Pan & Tompkins' RR-missed limit
ECTOPIC_REL = 0.2  # an RR more than 20% off its local median is ectopic or artifact (Malik 1989)
HRV_WINDOW_S = 60.0
HR_MIN_BPM, HR_MAX_BPM = 30.0, 220.0
MAX_BEATS = 1024
TAIL_MARGIN_S = 0.6


class Hrv(NamedTuple):
    rmssd_ms: float | None
    sdnn_ms: float | None
    pnn50: float | None
    n_beats: int
    ectopic_fraction: float


def qrs_envelope(ecg: np.ndarray, rate_hz: float) -> np.ndarray:
    slope = np.diff(ecg, prepend=ecg[:1]) * rate_hz
    return moving_average(slope * slope, round(QRS_WIDTH_S * rate_hz))


def normal_rr_mask(rr_s: np.ndarray) -> np.ndarray:
    """True for RR intervals within ``ECTOPIC_REL`` of the median of their 5-beat neighbourhood.

    A premature beat makes one short RR followed by a long compensatory one; a missed beat one
    double RR; a false detection two short ones: all stand out from the local median.
    """
    rr_s = np.asarray(rr_s, dtype=float)
    if rr_s.size < 3:
        return np.ones(rr_s.size, dtype=bool)
    pad = np.concatenate((rr_s[:1], rr_s[:1], rr_s, rr_s[-1:], rr_s[-1:]))
    local = np.sort(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1)[:, 2]
    return np.abs(rr_s - local) <= ECTOPIC_REL * local


def corrected_rr(rr_s: np.ndarray) -> np.ndarray:
    """RR series with abnormal intervals replaced by interpolation between normal neighbours."""
    rr_s = np.asarray(rr_s, dtype=float)
    ok = normal_rr_mask(rr_s)
    if ok.all() or not ok.any():
        return rr_s.copy()
    idx = np.arange(rr_s.size)
    return np.interp(idx, idx[ok], rr_s[ok])


def hrv(rr_s: np.ndarray) -> Hrv:
    """RMSSD, SDNN and pNN50 over normal-to-normal intervals (Task Force, Circulation 1996):
    successive differences only between two adjacent normal intervals."""
    rr_s = np.asarray(rr_s, dtype=float)
    if rr_s.size < 5:
        return Hrv(None, None, None, int(rr_s.size), 0.0)
    ok = normal_rr_mask(rr_s)
    nn = rr_s[ok]
    pair = ok[1:] & ok[:-1]
    diffs_ms = 1e3 * np.diff(rr_s)[pair]
    ectopic = float(1.0 - ok.mean())
    if nn.size < 4 or diffs_ms.size < 3:
        return Hrv(None, None, None, int(rr_s.size), ectopic)
    return Hrv(float(np.sqrt(np.mean(diffs_ms**2))), float(1e3 * np.std(nn, ddof=1)),
               float(np.mean(np.abs(diffs_ms) > 50.0)), int(rr_s.size), ectopic)


class RPeakDetector:
    """Streaming R peaks: feed it the latest band-passed window each hop."""

    def __init__(self, group_delay_s: float = 0.0) -> None:
        self.group_delay_s = group_delay_s
        self.beats_ns = np.empty(0, dtype=np.int64)
        self.amplitudes = np.empty(0)
        self._signal: float | None = None
        self._noise = 0.0
        self._rr_s: float | None = None
        self._last_end_ns: int | None = None
        self.new_beats_ns = np.empty(0, dtype=np.int64)

    def reset(self) -> None:
        self.__init__(self.group_delay_s)

    def _commit(self, t_ns: np.ndarray, amp: np.ndarray) -> None:
        self.beats_ns = np.concatenate((self.beats_ns, t_ns))[-MAX_BEATS:]
        self.amplitudes = np.concatenate((self.amplitudes, amp))[-MAX_BEATS:]
        self.new_beats_ns = np.concatenate((self.new_beats_ns, t_ns))

    def update(self, ecg: np.ndarray, rate_hz: float, t_end_ns: int) -> np.ndarray:
        """Detect in ``ecg`` (the window ending at ``t_end_ns``); returns newly committed beats (ns)."""
        self.new_beats_ns = np.empty(0, dtype=np.int64)
        if self._signal is not None and self._last_end_ns is not None:
            # Only the tail can hold undecided peaks: from before the last beat (search-back
            # spans the gap after it) or the last lookahead, with margin for the envelope's edge.
            since_ns = min(self.beats_ns[-1] if self.beats_ns.size else self._last_end_ns,
                           self._last_end_ns - LOOKAHEAD_S * 1e9) - TAIL_MARGIN_S * 1e9
            keep = int(np.ceil((t_end_ns - since_ns) * rate_hz / 1e9))
            if 0 < keep < ecg.size:
                ecg = ecg[-keep:]
        self._last_end_ns = t_end_ns
        n = ecg.size
        if n < round(2 * REFRACTORY_S * rate_hz) or not np.isfinite(ecg.sum()):
            return self.new_beats_ns
        env = qrs_envelope(ecg, rate_hz)
        period_ns = 1e9 / rate_hz
        t0_ns = t_end_ns - n * period_ns
        refractory = max(1, round(REFRACTORY_S * rate_hz))
        peaks = find_peaks(env, distance=refractory, height=0.0)
        if peaks.size == 0:
            return self.new_beats_ns
        heights = env[peaks]
        noise_floor = median(env)
        if self._signal is None:  # learning phase (Pan & Tompkins' first 2 s)
            self._signal = float(np.percentile(heights, 90))
            self._noise = noise_floor
        # Decide only on peaks after the last committed beat and with lookahead behind them.
        start = round(0.5 * QRS_WIDTH_S * rate_hz)
        if self.beats_ns.size:
            start = max(start, int(np.ceil((self.beats_ns[-1] - t0_ns) / period_ns)) + refractory)
        stop = n - round(LOOKAHEAD_S * rate_hz)
        pending = (peaks >= start) & (peaks < stop)
        if not pending.any():
            return self.new_beats_ns
        cand, h = peaks[pending], heights[pending]
        threshold = self._noise + 0.25 * (self._signal - self._noise)
        beat = h >= threshold
        # Search-back: a gap longer than 1.66 RR gets the strongest candidate over half the threshold.
        if self._rr_s is not None:
            last = (self.beats_ns[-1] - t0_ns) / period_ns if self.beats_ns.size else -np.inf
            idx = np.concatenate(([last], cand[beat], [stop]))
            gaps = np.flatnonzero(np.diff(idx) > SEARCH_BACK_RR * self._rr_s * rate_hz)
            for g in gaps:  # per missed beat, not per sample
                inside = ~beat & (cand > idx[g] + refractory) & (cand < idx[g + 1] - refractory) & (h >= 0.5 * threshold)
                if inside.any():
                    beat[np.flatnonzero(inside)[np.argmax(h[inside])]] = True
        if beat.any():
            self._signal = 0.875 * self._signal + 0.125 * median(h[beat])
        if not beat.all():
            self._noise = 0.875 * self._noise + 0.125 * median(h[~beat])
        else:
            self._noise = 0.875 * self._noise + 0.125 * noise_floor
        if not beat.any():
            return self.new_beats_ns
        # The R peak: the largest deflection of the band-passed ECG within the QRS before the
        # envelope's centre, moved back by the filter's group delay.
        w = round(QRS_WIDTH_S * rate_hz)
        centres = cand[beat]
        offsets = np.arange(-w, round(0.5 * w) + 1)
        seg = np.minimum(np.maximum(centres[:, None] + offsets[None, :], 0), n - 1)
        vals = ecg[seg]
        polarity = 1.0 if ecg.max() >= -ecg.min() else -1.0
        r_idx = seg[np.arange(seg.shape[0]), np.argmax(polarity * vals, axis=1)]
        t_ns = np.round(t0_ns + (r_idx + 0.5) * period_ns - self.group_delay_s * 1e9).astype(np.int64)
        if self.beats_ns.size:
            keep = t_ns - self.beats_ns[-1] >= REFRACTORY_S * 1e9
            t_ns, r_idx = t_ns[keep], r_idx[keep]
        all_t = np.concatenate((self.beats_ns[-1:], t_ns))
        rr = np.diff(all_t) / 1e9
        rr = rr[(rr > 60 / HR_MAX_BPM) & (rr < 60 / HR_MIN_BPM)]
        if rr.size:
            rr_new = median(rr)
            self._rr_s = rr_new if self._rr_s is None else 0.75 * self._rr_s + 0.25 * rr_new
        self._commit(t_ns, np.abs(ecg[r_idx]))
        return self.new_beats_ns

    def rr_since(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(beat times ns, RR s ending at each beat) for beats after ``t_ns``."""
        sel = np.flatnonzero(self.beats_ns > t_ns)
        if sel.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        first = max(sel[0] - 1, 0)
        times = self.beats_ns[first:]
        rr = np.diff(times) / 1e9
        return times[1:], rr


class HeartEstimate(NamedTuple):
    value: float | None
    quality: float


def hr_from_rr(rr_s: np.ndarray, beats_span_s: float, window_s: float) -> HeartEstimate:
    """60 / median RR; quality = RR regularity x share of plausible RR x how much of the
    window the beats span (a missed or extra beat makes one RR 2x or 0.5x)."""
    if rr_s.size < 3:
        return HeartEstimate(None, 0.0)
    med = median(rr_s)
    hr = 60.0 / med
    if not HR_MIN_BPM <= hr <= HR_MAX_BPM:
        return HeartEstimate(None, 0.0)
    dev = np.abs(rr_s - med)
    spread = 1.4826 * median(dev) / med
    q_regular = min(1.0, max(0.0, 1.0 - (spread - 0.1) / 0.2))
    q_plausible = np.count_nonzero(dev < 0.3 * med) / rr_s.size
    q_span = min(1.0, (beats_span_s + med) / window_s)
    return HeartEstimate(hr, float(q_regular * q_plausible * q_span))


def ecg_r_peaks_s(ecg: np.ndarray, rate_hz: float) -> np.ndarray:
    """R-peak times (s from the window's start) in one band-passed window, from a fresh detector."""
    ecg = np.asarray(ecg, dtype=float)
    if ecg.ndim != 1 or ecg.size == 0:
        return np.empty(0)
    det = RPeakDetector()
    end_ns = round(ecg.size / rate_hz * 1e9)
    padded = np.concatenate((ecg, np.zeros(round(LOOKAHEAD_S * rate_hz) + 1)))
    det.update(padded, rate_hz, end_ns + round((padded.size - ecg.size) / rate_hz * 1e9))
    return det.beats_ns / 1e9


def hr_from_ecg(ecg: np.ndarray, rate_hz: float) -> HeartEstimate:
    """Heart rate from one band-passed window (at least 3 s of finite samples)."""
    ecg = np.asarray(ecg, dtype=float)
    if ecg.ndim != 1 or ecg.size < 3 * rate_hz or not np.isfinite(ecg).all():
        return HeartEstimate(None, 0.0)
    r_s = ecg_r_peaks_s(ecg, rate_hz)
    if r_s.size < 4:
        return HeartEstimate(None, 0.0)
    return hr_from_rr(np.diff(r_s), float(r_s[-1] - r_s[0]), ecg.size / rate_hz)
