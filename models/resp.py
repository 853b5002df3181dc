"""Respiration rate from a beat series: the ECG's R peaks or the PPG's pulse peaks.

Breathing modulates the heart two ways that a beat series carries: the RR interval
(respiratory sinus arrhythmia) and the R amplitude (the heart's electrical axis turns as the
chest moves; ECG-derived respiration, Moody et al., Computers in Cardiology 1985). Both
series are resampled evenly at ``RESAMPLE_HZ`` over the last ``WINDOW_S`` and their
normalised spectra summed; the peak in 6-40 breaths/min is the rate, and its share of the
band's power is the quality (Charlton et al., Physiol Meas 2016, review the family).

The PPG's pulse peaks carry the same two modulations (pulse rate: RSA; pulse amplitude:
stroke volume and venous return change with intrathoracic pressure); ``BeatLog`` keeps the
beats of the windows good enough to trust, and ``reconcile`` merges the ECG- and
PPG-derived rates as the heart rates are merged.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from models.dsp import hann, rfft_padded

RESAMPLE_HZ = 4.0
WINDOW_S = 32.0
RESP_MIN_BPM, RESP_MAX_BPM = 6.0, 40.0
AGREE_BPM = 3.0  # two rates closer than this are one breathing rhythm


class RespEstimate(NamedTuple):
    rate_bpm: float | None
    quality: float


def _summed_spectra(series: np.ndarray, nfft: int) -> np.ndarray:
    """Sum of the rows' Hann-windowed power spectra, each normalised to unit power (a flat
    row adds nothing)."""
    n = series.shape[1]
    x = series - series.sum(axis=1, keepdims=True) / n
    spec = rfft_padded(x * hann(n), nfft)
    p = spec.real**2 + spec.imag**2
    total = p.sum(axis=1, keepdims=True)
    return (p / np.where(total > 0, total, 1.0)).sum(axis=0)


@functools.lru_cache(maxsize=8)
def _band(nfft: int) -> tuple[np.ndarray, int, int]:
    """Frequencies (breaths/min) of the rfft bins and the run of bins in the breathing band."""
    f_bpm = np.arange(nfft // 2 + 1) * RESAMPLE_HZ * 60.0 / nfft
    in_band = np.flatnonzero((f_bpm >= RESP_MIN_BPM) & (f_bpm <= RESP_MAX_BPM))
    return f_bpm, int(in_band[0]), int(in_band[-1]) + 1


def resp_from_beats(beats_s: np.ndarray, amplitudes: np.ndarray) -> RespEstimate:
    """``beats_s`` increasing beat times (s), ``amplitudes`` the R amplitude of each."""
    beats_s = np.asarray(beats_s, dtype=float)
    if beats_s.size < 8 or beats_s[-1] - beats_s[0] < 0.75 * WINDOW_S:
        return RespEstimate(None, 0.0)
    t = np.arange(beats_s[-1] - WINDOW_S, beats_s[-1], 1.0 / RESAMPLE_HZ)
    t = t[t >= beats_s[1]]
    series = np.empty((2, t.size))
    series[0] = np.interp(t, beats_s[1:], beats_s[1:] - beats_s[:-1])
    series[1] = np.interp(t, beats_s, np.asarray(amplitudes, dtype=float))
    nfft = 1 << int(np.ceil(np.log2(8 * t.size)))
    f_bpm, lo, hi = _band(nfft)
    band = _summed_spectra(series, nfft)[lo:hi]
    band_power = float(band.sum())
    if band_power <= 0:
        return RespEstimate(None, 0.0)
    k = int(band.argmax())
    f_band = f_bpm[lo:hi]
    width = 2.0 * 60.0 / (t.size / RESAMPLE_HZ)
    share = float(band[np.abs(f_band - f_band[k]) <= width].sum()) / band_power
    return RespEstimate(float(f_band[k]), min(1.0, max(0.0, (share - 0.2) / 0.4)))


class BeatLog:
    """Beat times (ns) and amplitudes gathered from successive overlapping windows: a beat is
    taken once it is ``settle_s`` inside a window (not at its edge, where a peak may be cut)
    and after the last beat taken."""

    def __init__(self, capacity: int = 256, settle_s: float = 0.5) -> None:
        self.capacity, self.settle_s = capacity, settle_s
        self.reset()

    def reset(self) -> None:
        self.beats_ns = np.empty(0, dtype=np.int64)
        self.amplitudes = np.empty(0)

    def add(self, t_ns: np.ndarray, amplitudes: np.ndarray, t_end_ns: int) -> None:
        t_ns = np.asarray(t_ns, dtype=np.int64)
        last = self.beats_ns[-1] + 0.25e9 if self.beats_ns.size else -np.inf
        new = ((t_ns > last) & (t_ns < t_end_ns - self.settle_s * 1e9)).nonzero()[0]
        if new.size:
            self.beats_ns = np.concatenate((self.beats_ns, t_ns[new]))[-self.capacity:]
            self.amplitudes = np.concatenate((self.amplitudes, amplitudes[new]))[-self.capacity:]

    def since(self, t_ns: float) -> tuple[np.ndarray, np.ndarray]:
        keep = self.beats_ns > t_ns
        return self.beats_ns[keep], self.amplitudes[keep]


def reconcile(estimates: dict[str, RespEstimate], min_quality: float,
              alone: tuple[str, ...] = ("ecg",)) -> dict:
    """The published respiration from per-source estimates (e.g. ``{"ecg": ..., "ppg": ...}``):
    agreeing sources averaged by quality, otherwise the better one at half its quality.

    Only the sources in ``alone`` are published without a second source agreeing. The PPG's
    pulse series is not among them by default: band-passed at 0.4 Hz it has lost the
    baseline (intensity) modulation, and on simulated subjects at rest its interval and
    amplitude series locked on the 0.1 Hz Mayer wave or missed the rate in about half the
    32 s windows, at qualities as high as the correct ones.
    """
    ok = [(k, e) for k, e in estimates.items() if e.rate_bpm is not None and e.quality >= min_quality]
    best_q = max((e.quality for e in estimates.values()), default=0.0)
    if not ok:
        return {"rate_bpm": None, "quality": best_q, "source": None}
    if len(ok) == 2 and abs(ok[0][1].rate_bpm - ok[1][1].rate_bpm) <= AGREE_BPM:
        (_, a), (_, b) = ok
        rate = (a.quality * a.rate_bpm + b.quality * b.rate_bpm) / (a.quality + b.quality)
        return {"rate_bpm": rate, "quality": max(a.quality, b.quality), "source": "+".join(k for k, _ in ok)}
    k, e = max(((k, e) for k, e in ok if k in alone), key=lambda ke: ke[1].quality, default=(None, None))
    if e is None:
        return {"rate_bpm": None, "quality": best_q, "source": None}
    q = e.quality * (0.5 if len(ok) == 2 else 1.0)
    if q < min_quality:
        return {"rate_bpm": None, "quality": q, "source": None}
    return {"rate_bpm": e.rate_bpm, "quality": q, "source": k}
