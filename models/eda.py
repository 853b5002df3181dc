"""Electrodermal activity: tonic level (SCL), phasic responses (SCRs) and their rate.

A skin-conductance response rises for 1-3 s after its onset and recovers over 5-10 s
(Boucsein, Electrodermal Activity, 2nd ed. 2012, ch. 2.3); the tonic level drifts over tens
of seconds. On the low-passed signal an SCR is a run of positive slope above
``ONSET_SLOPE_US_S``, from the onset (where the slope starts) to the peak (where it ends),
kept when it adds at least ``MIN_AMPLITUDE_US`` (the usual 0.01-0.05 uS criterion; 0.02 here,
five times the noise of a 16-bit ADC front-end). The tonic level is the lower envelope of the
window: SCRs only ever add to it, so its low percentile sits on the tonic part.

``ScrDetector`` runs on the window each hop and commits an SCR once its peak is
``SETTLE_S`` old (so a rise still going on is not cut in two); the committed SCRs give the
rate per minute.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from models.dsp import gradient

ONSET_SLOPE_US_S = 0.01
MIN_AMPLITUDE_US = 0.02
MAX_RISE_S = 5.0
SETTLE_S = 1.0
RATE_WINDOW_S = 60.0
TONIC_PERCENTILE = 5.0
MAX_SCRS = 256


class Scr(NamedTuple):
    onset_ns: int
    peak_ns: int
    amplitude_us: float
    rise_s: float


def tonic_level(eda_us: np.ndarray) -> float:
    """``np.percentile(eda_us, TONIC_PERCENTILE)`` (linear interpolation) by one partition."""
    eda_us = np.asarray(eda_us, dtype=float)
    if eda_us.size < 2:
        return float(eda_us[0]) if eda_us.size else float("nan")
    pos = TONIC_PERCENTILE / 100.0 * (eda_us.size - 1)
    k = int(pos)
    s = eda_us.copy()
    s.partition((k, k + 1))
    lo, hi = s[k], s[k + 1]
    return float(lo + (pos - k) * (hi - lo))


def find_scrs(eda_us: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset index, peak index, amplitude uS) of the rises in a low-passed window."""
    eda_us = np.asarray(eda_us, dtype=float)
    if eda_us.size < 3:
        return np.empty(0, int), np.empty(0, int), np.empty(0)
    slope = gradient(eda_us) * rate_hz
    rising = np.zeros(eda_us.size + 2, dtype=np.int8)  # zero-padded: every run has both ends
    np.greater(slope, ONSET_SLOPE_US_S, out=rising[1:-1])
    # Changes alternate: a run's onset, then the sample after its peak.
    change = (rising[1:] != rising[:-1]).nonzero()[0]
    if change.size == 0:
        return np.empty(0, int), np.empty(0, int), np.empty(0)
    onsets, peaks = change[0::2], change[1::2] - 1
    amp = eda_us[peaks] - eda_us[onsets]
    keep = (amp >= MIN_AMPLITUDE_US) & ((peaks - onsets) / rate_hz <= MAX_RISE_S) & (onsets > 0)
    return onsets[keep], peaks[keep], amp[keep]


class ScrDetector:
    """Committed SCRs from successive windows of low-passed skin conductance."""

    def __init__(self) -> None:
        self.scrs: list[Scr] = []
        self.new_scrs: list[Scr] = []

    def reset(self) -> None:
        self.scrs, self.new_scrs = [], []

    def update(self, eda_us: np.ndarray, rate_hz: float, t_end_ns: int) -> list[Scr]:
        self.new_scrs = []
        onsets, peaks, amp = find_scrs(eda_us, rate_hz)
        if onsets.size == 0:
            return self.new_scrs
        period_ns = 1e9 / rate_hz
        t0_ns = t_end_ns - eda_us.size * period_ns
        last_peak = self.scrs[-1].peak_ns if self.scrs else -np.inf
        on_ns = t0_ns + onsets * period_ns
        pk_ns = t0_ns + peaks * period_ns
        ready = (t_end_ns - pk_ns >= SETTLE_S * 1e9) & (on_ns > last_peak)
        for o, p, a in zip(on_ns[ready], pk_ns[ready], amp[ready]):  # per SCR, a few a minute
            self.new_scrs.append(Scr(int(o), int(p), float(a), float((p - o) / 1e9)))
        self.scrs = (self.scrs + self.new_scrs)[-MAX_SCRS:]
        return self.new_scrs

    def rate_per_min(self, t_ns: int, span_s: float = RATE_WINDOW_S) -> float:
        return sum(1 for s in self.scrs if t_ns - s.onset_ns <= span_s * 1e9) * 60.0 / span_s
