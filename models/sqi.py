"""Signal-quality indices per channel and window.

- Template correlation (Orphanidou et al., IEEE JBHI 19(3), 2015): beats cut around their
  fiducial points, averaged into a template; the mean correlation of each beat with it is
  near 1 for a clean recording and falls with artifacts and misdetections.
- Kurtosis (Li, Mark & Clifford, Physiol Meas 2008): a QRS train is strongly peaked (>5);
  Gaussian noise has 3, a sinusoid 1.5.
- Skewness (Elgendi, Bioengineering 2016): the best single PPG index; a pulse with a fast
  upstroke and slow decay is skewed, noise is not.
- SNR of the pulse's spectral lines over the rest of the band, in dB.

Each index is a plain number; ``ppg_sqi``/``ecg_sqi`` bundle them for the published vitals.
"""

from __future__ import annotations

import math

import numpy as np


def kurtosis(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    if x.size < 4:
        return 0.0
    d = x - x.sum() / x.size
    d2 = d * d
    m2 = float(d2.sum()) / x.size
    return 0.0 if m2 <= 0 else float(d2 @ d2) / x.size / (m2 * m2)


def skewness(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return 0.0
    d = x - x.sum() / x.size
    d2 = d * d
    m2 = float(d2.sum()) / x.size
    return 0.0 if m2 <= 0 else float(d2 @ d) / x.size / m2**1.5


def template_correlation(x: np.ndarray, idx: np.ndarray, before: int, after: int) -> float:
    """Mean Pearson correlation of the beats at ``idx`` with their average; 0 under 3 beats."""
    x = np.asarray(x, dtype=float)
    idx = np.asarray(idx, dtype=int)
    idx = idx[(idx - before >= 0) & (idx + after < x.size)]
    if idx.size < 3:
        return 0.0
    beats = x[idx[:, None] + np.arange(-before, after + 1)]
    beats -= beats.sum(axis=1, keepdims=True) / beats.shape[1]
    template = beats.sum(axis=0) / beats.shape[0]
    num = beats @ template
    den = np.sqrt(np.einsum("ij,ij->i", beats, beats)) * math.sqrt(float(template @ template))
    r = np.divide(num, den, out=np.zeros(num.size), where=den > 0)
    return min(1.0, max(-1.0, float(r.sum()) / r.size))


def snr_db(share: float) -> float | None:
    """SNR (dB) of a spectral share: power in the pulse's lines over the rest."""
    if share <= 0:
        return None
    if share >= 1:
        return 60.0
    return 10.0 * math.log10(share / (1.0 - share))


def ecg_sqi(ecg: np.ndarray, rate_hz: float, r_idx: np.ndarray) -> dict[str, float]:
    return {
        "kurtosis": round(kurtosis(ecg), 2),
        "template_r": round(template_correlation(ecg, r_idx, round(0.08 * rate_hz), round(0.12 * rate_hz)), 3),
    }


def ppg_sqi(ppg: np.ndarray, rate_hz: float, share: float, beat_idx: np.ndarray, period_s: float) -> dict:
    half = max(2, round(0.4 * period_s * rate_hz))
    snr = snr_db(share)
    return {
        "skewness": round(skewness(ppg), 3),
        "snr_db": None if snr is None else round(snr, 1),
        "template_r": round(template_correlation(ppg, beat_idx, half, half), 3),
    }
