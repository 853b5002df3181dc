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

from models.dsp import bandpass_sos, zero_phase
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
    if r_peaks_s.size == 0 or ppg_raw.size < 2 * rate_hz or not np.isfinite(ppg_raw).all() \
            or np.ptp(ppg_raw) == 0 or rate_hz < 20:
        return empty
    x = zero_phase(_foot_filter(float(rate_hz)), ppg_raw)
    x *= volume_orientation(x)
    d1 = np.gradient(x)
    d2 = np.gradient(d1)
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
    good = per_beat[np.isfinite(per_beat)]
    if good.size < 3:
        return ArrivalTimes(None, per_beat, 0.0)
    med = float(np.median(good))
    spread = 1.4826 * float(np.median(np.abs(good - med)))
    return ArrivalTimes(med, per_beat, pat_quality(spread, good.size / r_peaks_s.size))


def pat_quality(spread_ms: float, found_share: float) -> float:
    """Beat-to-beat PAT varies by a few ms; tens of ms of scatter means the feet are noise."""
    return float(np.clip(1.0 - (spread_ms - 10.0) / 30.0, 0.0, 1.0)) * found_share
