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

import functools
import math
from typing import NamedTuple

import numpy as np

from models.dsp import box_kernel, find_peaks, median

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
    slope = np.empty(ecg.size)
    slope[0] = 0.0
    np.subtract(ecg[1:], ecg[:-1], out=slope[1:])
    slope *= rate_hz
    slope *= slope
    return np.convolve(slope, box_kernel(round(QRS_WIDTH_S * rate_hz)), mode="same")


@functools.lru_cache(maxsize=8)
def _qrs_offsets(width: int) -> np.ndarray:
    """Sample offsets, from an envelope peak, where its R peak can lie: the QRS before the
    envelope's centre and half a QRS after it."""
    return np.arange(-width, round(0.5 * width) + 1)


def normal_rr_mask(rr_s: np.ndarray) -> np.ndarray:
    """True for RR intervals within ``ECTOPIC_REL`` of the median of their 5-beat neighbourhood.

    A premature beat makes one short RR followed by a long compensatory one; a missed beat one
    double RR; a false detection two short ones: all stand out from the local median.
    """
    rr_s = np.asarray(rr_s, dtype=float)
    if rr_s.size < 3:
        return np.ones(rr_s.size, dtype=bool)
    pad = np.concatenate((rr_s[:1], rr_s[:1], rr_s, rr_s[-1:], rr_s[-1:]))
    neighbourhoods = pad[np.arange(rr_s.size)[:, None] + np.arange(5)]
    neighbourhoods.sort(axis=1)
    local = neighbourhoods[:, 2]
    return np.abs(rr_s - local) <= ECTOPIC_REL * local


def hrv(rr_s: np.ndarray) -> Hrv:
    """RMSSD, SDNN and pNN50 over normal-to-normal intervals (Task Force, Circulation 1996):
    successive differences only between two adjacent normal intervals."""
    rr_s = np.asarray(rr_s, dtype=float)
    if rr_s.size < 5:
        return Hrv(None, None, None, int(rr_s.size), 0.0)
    ok = normal_rr_mask(rr_s)
    nn = rr_s[ok]
    pair = ok[1:] & ok[:-1]
    diffs_ms = 1e3 * (rr_s[1:] - rr_s[:-1])[pair]
    ectopic = 1.0 - np.count_nonzero(ok) / ok.size
    if nn.size < 4 or diffs_ms.size < 3:
        return Hrv(None, None, None, int(rr_s.size), ectopic)
    dev = nn - nn.sum() / nn.size
    return Hrv(math.sqrt(float((diffs_ms * diffs_ms).sum()) / diffs_ms.size),
               1e3 * math.sqrt(float((dev * dev).sum()) / (nn.size - 1)),
               np.count_nonzero(np.abs(diffs_ms) > 50.0) / diffs_ms.size, int(rr_s.size), ectopic)


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

    def update(self, ecg: np.ndarray, rate_hz: float, t_end_ns: int) -> np.ndarray:
        """Detect in ``ecg`` (the window ending at ``t_end_ns``); returns newly committed beats (ns)."""
        self.new_beats_ns = np.empty(0, dtype=np.int64)
        beats = self.beats_ns
        if self._signal is not None and self._last_end_ns is not None:
            # Only the tail can hold undecided peaks: from before the last beat (search-back
            # spans the gap after it) or the last lookahead, with margin for the envelope's edge.
            since_ns = min(beats[-1] if beats.size else self._last_end_ns,
                           self._last_end_ns - LOOKAHEAD_S * 1e9) - TAIL_MARGIN_S * 1e9
            keep = math.ceil((t_end_ns - since_ns) * rate_hz / 1e9)
            if 0 < keep < ecg.size:
                ecg = ecg[-keep:]
        self._last_end_ns = t_end_ns
        n = ecg.size
        if n < round(2 * REFRACTORY_S * rate_hz) or not math.isfinite(np.add.reduce(ecg)):
            return self.new_beats_ns
        env = qrs_envelope(ecg, rate_hz)
        period_ns = 1e9 / rate_hz
        t0_ns = t_end_ns - n * period_ns
        refractory = max(1, round(REFRACTORY_S * rate_hz))
        # The envelope is a moving average of squares, never negative: every local maximum
        # clears a height of 0, so none is asked for.
        peaks = find_peaks(env, distance=refractory)
        if peaks.size == 0:
            return self.new_beats_ns
        if self._signal is None:  # learning phase (Pan & Tompkins' first 2 s)
            self._signal = float(np.percentile(env[peaks], 90))
            self._noise = median(env)
        # Decide only on peaks after the last committed beat and with lookahead behind them.
        start = round(0.5 * QRS_WIDTH_S * rate_hz)
        if beats.size:
            start = max(start, math.ceil((beats[-1] - t0_ns) / period_ns) + refractory)
        stop = n - round(LOOKAHEAD_S * rate_hz)
        first, end = peaks.searchsorted((start, stop))  # peaks ascend: the pending ones are a run
        if end <= first:
            return self.new_beats_ns
        cand = peaks[first:end]
        h = env[cand]
        threshold = self._noise + 0.25 * (self._signal - self._noise)
        beat = h >= threshold
        # Search-back: a gap longer than 1.66 RR gets the strongest candidate over half the threshold.
        if self._rr_s is not None:
            accepted = cand[beat]
            idx = np.empty(accepted.size + 2)
            idx[0] = (beats[-1] - t0_ns) / period_ns if beats.size else -np.inf
            idx[1:-1] = accepted
            idx[-1] = stop
            gaps = ((idx[1:] - idx[:-1]) > SEARCH_BACK_RR * self._rr_s * rate_hz).nonzero()[0]
            for g in gaps:  # per missed beat, not per sample
                inside = (~beat & (cand > idx[g] + refractory) & (cand < idx[g + 1] - refractory)
                          & (h >= 0.5 * threshold))
                if inside.any():
                    beat[np.flatnonzero(inside)[np.argmax(h[inside])]] = True
        n_beats = int(np.count_nonzero(beat))
        if n_beats:
            self._signal = 0.875 * self._signal + 0.125 * median(h[beat])
        if n_beats < beat.size:
            self._noise = 0.875 * self._noise + 0.125 * median(h[~beat])
        else:
            self._noise = 0.875 * self._noise + 0.125 * median(env)
        if not n_beats:
            return self.new_beats_ns
        # The R peak: the largest deflection of the band-passed ECG within the QRS before the
        # envelope's centre, moved back by the filter's group delay.
        centres = cand[beat]
        offsets = _qrs_offsets(round(QRS_WIDTH_S * rate_hz))
        seg = centres[:, None] + offsets
        np.minimum(np.maximum(seg, 0, out=seg), n - 1, out=seg)
        vals = ecg[seg]
        if ecg.max() < -ecg.min():
            vals = -vals
        r_idx = seg[np.arange(centres.size), vals.argmax(axis=1)]
        t_ns = (t0_ns + (r_idx + 0.5) * period_ns - self.group_delay_s * 1e9).round().astype(np.int64)
        # The new beats ascend (their envelope peaks are a refractory period apart, more than
        # the QRS span searched around each), so only the first can be too close to the last.
        if beats.size and t_ns[0] - beats[-1] < REFRACTORY_S * 1e9:
            keep = t_ns - beats[-1] >= REFRACTORY_S * 1e9
            t_ns, r_idx = t_ns[keep], r_idx[keep]
        all_t = np.concatenate((beats[-1:], t_ns))
        rr = (all_t[1:] - all_t[:-1]) / 1e9
        rr = rr[(rr > 60 / HR_MAX_BPM) & (rr < 60 / HR_MIN_BPM)]
        if rr.size:
            rr_new = float(rr[0]) if rr.size == 1 else median(rr)
            self._rr_s = rr_new if self._rr_s is None else 0.75 * self._rr_s + 0.25 * rr_new
        self.beats_ns = np.concatenate((beats, t_ns))[-MAX_BEATS:]
        self.amplitudes = np.concatenate((self.amplitudes, np.abs(ecg[r_idx])))[-MAX_BEATS:]
        self.new_beats_ns = t_ns
        return t_ns

    def rr_since(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(beat times ns, RR s ending at each beat) for beats after ``t_ns``."""
        # Committed beats ascend (each at least a refractory period after the one before).
        first = int(self.beats_ns.searchsorted(t_ns, side="right"))
        if first == self.beats_ns.size:
            return np.empty(0, dtype=np.int64), np.empty(0)
        times = self.beats_ns[max(first - 1, 0):]
        return times[1:], (times[1:] - times[:-1]) / 1e9


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
