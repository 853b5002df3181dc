"""Breathing read from the pulse wave: rate, depth and regularity, one value per step.

A wrist or finger PPG carries breathing three ways (Karlen et al., IEEE TBME 60(7), 2013;
Charlton et al., Physiol. Meas. 37(4), 2016): the baseline rises and falls with intrathoracic
pressure (intensity variation), the pulse amplitude swells and shrinks (amplitude variation),
and the beat intervals shorten on inspiration (respiratory sinus arrhythmia, frequency
variation). The features use the last two, read from the detected beats: the Empatica E4's
BVP output is band-passed, which removes most of the baseline swing, and a model trained on
it must not lean on what a raw finger PPG has and the training data lacks. Each beat series
is resampled to 4 Hz; their band spectra over the last ``RESP_WINDOW_S`` are normalised and
summed (the "smart fusion" idea: a rhythm present in several modulations is breathing, an
artefact in one is not).

Hyperventilation shows as a fast, deep rhythm; speech breaks the rhythm (low regularity).
"""

from __future__ import annotations

import numpy as np

RESP_RATE_HZ = 4.0
RESP_WINDOW_S = 32.0
# Breathing band 8-42 breaths/min: below 8/min the beat series carry Mayer waves (~0.1 Hz,
# blood-pressure control), not breath; hyperventilation on command reaches ~40/min.
RESP_BAND_HZ = (0.13, 0.7)
# A peak within this of the dominant frequency counts towards regularity.
_PEAK_HALF_WIDTH_HZ = 0.05


def resample_beats(beat_t: np.ndarray, values: np.ndarray, n_out: int) -> np.ndarray:
    """A beat-by-beat series (values at ``beat_t`` s) held/interpolated on the 4 Hz grid."""
    grid = (np.arange(n_out) + 1) / RESP_RATE_HZ
    if len(beat_t) < 2:
        return np.full(n_out, np.nan)
    return np.interp(grid, beat_t, values)


def respiration_features(series: list[np.ndarray], ends_s: np.ndarray,
                         depth_series: np.ndarray | None = None) -> np.ndarray:
    """(steps x 3): breathing rate (breaths/min), depth (RMS of the band-passed
    ``depth_series`` over the window, its units), regularity (0..1: share of band power
    near the dominant rhythm). ``series`` are 4 Hz signals starting at t = 0; NaN where the
    window is not yet covered or no series is usable."""
    n_win = int(RESP_WINDOW_S * RESP_RATE_HZ)
    out = np.full((len(ends_s), 3), np.nan)
    end_idx = np.round(ends_s * RESP_RATE_HZ).astype(int)  # exclusive
    ok = end_idx >= n_win
    if not ok.any():
        return out
    freqs = np.fft.rfftfreq(n_win, 1.0 / RESP_RATE_HZ)
    band = (freqs >= RESP_BAND_HZ[0]) & (freqs <= RESP_BAND_HZ[1])
    taper = np.hanning(n_win)
    fused = np.zeros((int(ok.sum()), int(band.sum())))
    used = np.zeros(int(ok.sum()))
    for s in series:
        w = _windows(s, end_idx[ok], n_win)
        if w is None:
            continue
        good = np.all(np.isfinite(w), axis=1)
        w = np.where(good[:, None], w, 0.0)
        spec = np.abs(np.fft.rfft(_detrend(w) * taper, axis=1)) ** 2
        spec = spec[:, band]
        total = spec.sum(axis=1, keepdims=True)
        norm = np.where(total > 0, spec / np.maximum(total, 1e-30), 0.0)
        fused += norm * good[:, None]
        used += good
    have = used > 0
    fused = fused / np.maximum(used, 1)[:, None]
    f_band = freqs[band]
    peak = f_band[np.argmax(fused, axis=1)]
    near = np.abs(f_band[None, :] - peak[:, None]) <= _PEAK_HALF_WIDTH_HZ
    regularity = np.sum(fused * near, axis=1)
    rows = np.flatnonzero(ok)[have]
    out[rows, 0] = 60.0 * peak[have]
    out[rows, 2] = regularity[have]
    if depth_series is not None:
        w = _windows(depth_series, end_idx[ok], n_win)
        if w is not None:
            spec = np.abs(np.fft.rfft(_detrend(np.nan_to_num(w)) * taper, axis=1)) ** 2
            # Parseval on the Hann-windowed band: an RMS comparable between windows.
            rms = np.sqrt(2.0 * spec[:, band].sum(axis=1) / (n_win * np.sum(taper ** 2)))
            depth = np.where(np.all(np.isfinite(w), axis=1), rms, np.nan)
            out[np.flatnonzero(ok), 1] = depth
    return out


def _windows(s: np.ndarray, end_idx: np.ndarray, n_win: int) -> np.ndarray | None:
    s = np.asarray(s, float)
    if len(s) < n_win:
        return None
    idx = np.clip(end_idx, n_win, len(s))
    view = np.lib.stride_tricks.sliding_window_view(s, n_win)
    w = view[idx - n_win].copy()
    w[end_idx > len(s)] = np.nan
    return w


def _detrend(w: np.ndarray) -> np.ndarray:
    n = w.shape[1]
    t = np.arange(n) - (n - 1) / 2.0
    slope = (w @ t) / np.sum(t * t)
    return w - w.mean(axis=1, keepdims=True) - slope[:, None] * t[None, :]
