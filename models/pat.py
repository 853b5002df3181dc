"""Pulse arrival time: from the ECG R peak to the foot of the PPG pulse, per beat.

PAT = pre-ejection period + pulse transit time; it shortens with sympathetic activation
(faster ejection, stiffer arteries) and is a cuffless surrogate of blood-pressure change
(Mukkamala et al., IEEE TBME 62(8), 2015). The foot is where the pulse's upstroke starts: the
maximum of the second derivative before the steepest upslope (Chiu et al. 1991's second-
derivative method), searched in ``SEARCH_S`` after each R peak. The PPG is zero-phase
filtered here (a causal filter's group delay would add to the PAT) and oriented so blood
volume rises: the upstroke is steeper than the decay, so the derivative of a volume signal
is positively skewed (a MAX3010x reading, light falling as blood arrives, comes inverted).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from models.dsp import bandpass_sos, gradient, median, zero_phase
from models.sqi import skewness

SEARCH_S = (0.08, 0.45)
PAT_MIN_S, PAT_MAX_S = 0.1, 0.4


@functools.lru_cache(maxsize=8)
def _foot_filter(rate_hz: float) -> np.ndarray:
    return bandpass_sos(0.5, min(8.0, 0.4 * rate_hz), rate_hz)


class ArrivalTimes(NamedTuple):
    median_ms: float | None
    per_beat_ms: np.ndarray
    quality: float


def volume_orientation(ppg: np.ndarray) -> float:
    """+1 when ``ppg`` rises with blood volume, -1 when it falls (light-based readings)."""
    return 1.0 if skewness(np.diff(ppg)) >= 0 else -1.0


def pulse_arrival_times(r_peaks_s: np.ndarray, ppg_raw: np.ndarray, rate_hz: float) -> ArrivalTimes:
    """PAT per R peak (times s from the PPG window's first sample); NaN where no foot was found."""
    r_peaks_s = np.asarray(r_peaks_s, dtype=float)
    ppg_raw = np.asarray(ppg_raw, dtype=float)
    empty = ArrivalTimes(None, np.empty(0), 0.0)
    if r_peaks_s.size == 0 or ppg_raw.size < 2 * rate_hz or not np.isfinite(ppg_raw.sum()) \
            or ppg_raw.max() == ppg_raw.min() or rate_hz < 20:
        return empty
    x = zero_phase(_foot_filter(float(rate_hz)), ppg_raw)
    x *= volume_orientation(x)
    d1 = gradient(x)
    d2 = gradient(d1)
    lo, hi = round(SEARCH_S[0] * rate_hz), round(SEARCH_S[1] * rate_hz)
    start = np.round(r_peaks_s * rate_hz).astype(int) + lo
    ok = (start >= 1) & (start + (hi - lo) < x.size - 1)
    if not ok.any():
        return empty
    seg = start[ok, None] + np.arange(hi - lo)[None, :]
    up = np.argmax(d1[seg], axis=1)  # steepest upslope
    before = np.arange(hi - lo)[None, :] <= up[:, None]
    foot = np.argmax(np.where(before, d2[seg], -np.inf), axis=1)
    pat_s = (seg[np.arange(seg.shape[0]), foot] - r_peaks_s[ok] * rate_hz) / rate_hz
    pat_s[(pat_s < PAT_MIN_S) | (pat_s > PAT_MAX_S) | (foot == 0)] = np.nan
    per_beat = np.full(r_peaks_s.size, np.nan)
    per_beat[ok] = pat_s * 1e3
    med, q, _ = summarise(per_beat)
    return ArrivalTimes(med, per_beat, q)


def pat_quality(spread_ms: float, found_share: float) -> float:
    """Beat-to-beat PAT varies by a few ms; tens of ms of scatter means the feet are noise."""
    return min(1.0, max(0.0, 1.0 - (spread_ms - 10.0) / 30.0)) * found_share


def summarise(per_beat_ms: np.ndarray) -> tuple[float | None, float, int]:
    """(median, quality, beats with a foot) of per-beat PATs (NaN where no foot was found)."""
    good = per_beat_ms[np.isfinite(per_beat_ms)]
    if good.size < 3:
        return None, 0.0, int(good.size)
    med = median(good)
    spread = 1.4826 * median(np.abs(good - med))
    return med, pat_quality(spread, good.size / per_beat_ms.size), int(good.size)


class PatTracker:
    """PAT per beat as the beats become measurable (a foot needs ``SEARCH_S[1]`` of PPG after
    its R peak), kept with the beat's time; ``summary`` gives the recent beats' median."""

    MAX_BEATS = 256

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.beats_ns = np.empty(0, dtype=np.int64)
        self.pat_ms = np.empty(0)
        self._done_ns = 0

    def update(self, beats_ns: np.ndarray, ppg: np.ndarray, rate_hz: float, t_end_ns: int) -> None:
        """``beats_ns`` all R peaks known so far; ``ppg`` the PPG window ending at ``t_end_ns``."""
        t0_ns = t_end_ns - ppg.size * 1e9 / rate_hz
        ready = (beats_ns > max(t0_ns + 0.5e9, self._done_ns)) & (beats_ns < t_end_ns - SEARCH_S[1] * 1e9 - 0.2e9)
        new = beats_ns[ready]
        if new.size == 0:
            return
        # Only the stretch from 1 s before the first new beat: the zero-phase filter's edge
        # transient stays clear of it, and the older beats are already measured.
        k = int(max(0, (int(new[0]) - 1e9 - t0_ns) * rate_hz / 1e9))
        seg_t0_ns = t0_ns + k * 1e9 / rate_hz
        at = pulse_arrival_times((new - seg_t0_ns) / 1e9, ppg[k:], rate_hz)
        per_beat = at.per_beat_ms if at.per_beat_ms.size else np.full(new.size, np.nan)
        self.beats_ns = np.concatenate((self.beats_ns, new))[-self.MAX_BEATS:]
        self.pat_ms = np.concatenate((self.pat_ms, per_beat))[-self.MAX_BEATS:]
        self._done_ns = int(new[-1])

    def summary(self, since_ns: float) -> tuple[float | None, float, int]:
        return summarise(self.pat_ms[self.beats_ns > since_ns])
