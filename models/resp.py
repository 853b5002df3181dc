"""Respiration rate from the ECG's beat series.

Breathing modulates the heart two ways that a beat series carries: the RR interval
(respiratory sinus arrhythmia) and the R amplitude (the heart's electrical axis turns as the
chest moves; ECG-derived respiration, Moody et al., Computers in Cardiology 1985). Both
series are resampled evenly at ``RESAMPLE_HZ`` over the last ``WINDOW_S`` and their
normalised spectra summed; the peak in 6-40 breaths/min is the rate, and its share of the
band's power is the quality (Charlton et al., Physiol Meas 2016, review the family).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

RESAMPLE_HZ = 4.0
WINDOW_S = 32.0
RESP_MIN_BPM, RESP_MAX_BPM = 6.0, 40.0


class RespEstimate(NamedTuple):
    rate_bpm: float | None
    quality: float


def _spectrum(series: np.ndarray, nfft: int) -> np.ndarray:
    x = series - series.mean()
    if not np.any(x):
        return np.zeros(nfft // 2 + 1)
    p = np.abs(np.fft.rfft(x * np.hanning(x.size), nfft)) ** 2
    return p / p.sum()


def resp_from_beats(beats_s: np.ndarray, amplitudes: np.ndarray) -> RespEstimate:
    """``beats_s`` increasing beat times (s), ``amplitudes`` the R amplitude of each."""
    beats_s = np.asarray(beats_s, dtype=float)
    if beats_s.size < 8 or beats_s[-1] - beats_s[0] < 0.75 * WINDOW_S:
        return RespEstimate(None, 0.0)
    t = np.arange(beats_s[-1] - WINDOW_S, beats_s[-1], 1.0 / RESAMPLE_HZ)
    t = t[t >= beats_s[1]]
    rr = np.interp(t, beats_s[1:], np.diff(beats_s))
    amp = np.interp(t, beats_s, np.asarray(amplitudes, dtype=float))
    nfft = 1 << int(np.ceil(np.log2(8 * t.size)))
    power = _spectrum(rr, nfft) + _spectrum(amp, nfft)
    f_bpm = np.arange(power.size) * RESAMPLE_HZ * 60.0 / nfft
    band = (f_bpm >= RESP_MIN_BPM) & (f_bpm <= RESP_MAX_BPM)
    if power[band].sum() <= 0:
        return RespEstimate(None, 0.0)
    k = np.flatnonzero(band)[np.argmax(power[band])]
    width = 2.0 * 60.0 / (t.size / RESAMPLE_HZ)
    share = float(power[band & (np.abs(f_bpm - f_bpm[k]) <= width)].sum() / power[band].sum())
    return RespEstimate(float(f_bpm[k]), float(np.clip((share - 0.2) / 0.4, 0.0, 1.0)))
