"""Per-second physiological features the physio model reads, computed from raw signals.

The same code runs offline on whole recordings (training, evaluation) and on the device on
its last ``HISTORY_S`` seconds of samples, so every window is causal: the value for a step
uses only samples up to that step's end. Any sample rate works; each signal carries its own.

Features (one row per ``STEP_S`` step, physical units, NaN where the signal does not allow
the measure):

With ``motion_clean`` and the accelerometer's three axes, beats come from the motion-cleaned
PPG: cleaned as the vitals clean it (``motion_clean_ppg``: the same band, the same
least-squares fit on the band-passed axes, ``models.ppg.remove_motion``, over the vitals'
10 s windows) before beats are detected. A model records whether it was trained on cleaned
beats (``ppg_motion_clean`` in its .json) and the device follows it; the committed model was
not (cleaning measured worse on Stress-Predict, see MODEL_CARD.md). With an ECG fitted, heart
rate and RMSSD come from its R peaks instead (the same measures, the same windows), the pulse
amplitude and breathing from the PPG; a step the ECG does not cover keeps the PPG's values.

- ``hr_bpm``: 60 / mean of the plausible inter-beat intervals in the last 10 s.
- ``hrv_rmssd_ms``: RMSSD of successive plausible intervals over the last 30 s. Ultra-short
  RMSSD (10-30 s) tracks the 5-min standard (Munoz et al., PLoS ONE 2015).
- ``ppg_amp``: geometric mean of the beat amplitudes (peak minus the trough before it) in the
  last 10 s, in the input's units; sympathetic vasoconstriction shrinks it.
- ``eda_tonic_us``: lowest skin conductance in the last 10 s; phasic responses ride on top.
- ``eda_phasic_us_per_s``: summed rises of the 1 Hz low-passed conductance over the last
  10 s per second, a cheap stand-in for skin-conductance-response activity.
- ``motion_g``: standard deviation of the acceleration magnitude over the last 2 s.
- ``resp_rate_brpm``, ``resp_depth``, ``resp_regularity``: breathing rate, depth (RMS of the
  breathing-band swing of the log pulse amplitude) and regularity read from the beat series
  over the last 32 s (``models.physio.respiration``). Hyperventilation is fast and deep;
  speech breaks the rhythm.
- ``eda_slope_per_min``: least-squares slope of log conductance over the last 30 s, per
  minute: the tonic level climbs while arousal lasts and sinks in recovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from models.dsp import median_filter1d, minimum_filter1d, uniform_filter1d
from models.ecg import ecg_r_peaks_s
from models.iir import butter, sosfiltfilt
from models.peaks import find_peaks
from models.physio.respiration import (
    RESP_RATE_HZ,
    RESP_WINDOW_S,
    resample_beats,
    respiration_features,
)
from models.ppg import PULSE_BAND_HZ, remove_motion
from models.pulse_belief import MOTION_FLOOR_G

FEATURE_NAMES = (
    "hr_bpm",
    "hrv_rmssd_ms",
    "ppg_amp",
    "eda_tonic_us",
    "eda_phasic_us_per_s",
    "motion_g",
    "resp_rate_brpm",
    "resp_depth",
    "resp_regularity",
    "eda_slope_per_min",
)
# Columns each signal fills, in the order its feature function returns them.
_BEAT_COLUMNS = [FEATURE_NAMES.index(n) for n in ("hr_bpm", "hrv_rmssd_ms", "ppg_amp",
                                                  "resp_rate_brpm", "resp_depth",
                                                  "resp_regularity")]
_EDA_COLUMNS = [FEATURE_NAMES.index(n) for n in ("eda_tonic_us", "eda_phasic_us_per_s",
                                                 "eda_slope_per_min")]
_MOTION_COLUMN = FEATURE_NAMES.index("motion_g")
# Fewer beats than this in the breathing window: the spectrum would read interpolation.
_RESP_MIN_BEATS = 16
STEP_S = 1.0
SEQUENCE_STEPS = 60
HR_WINDOW_S = 10.0
HRV_WINDOW_S = 30.0
EDA_WINDOW_S = 10.0
MOTION_WINDOW_S = 2.0
EDA_SLOPE_WINDOW_S = 30.0
# The device keeps this much raw signal: the longest window (breathing, 32 s) plus room for
# beat detection's filter edges and the first beats of the window.
HISTORY_S = 60.0

# 40-180 bpm; a beat closer than 0.33 s to the last one is a dicrotic notch or noise.
_IBI_MIN_S, _IBI_MAX_S = 0.33, 1.5
# A beat-to-beat jump above 25 % of the local median is an artefact (Kubios-style correction).
_IBI_JUMP = 0.25
# A finger-free E4 or an open GSR clip reads (near) zero conductance.
_EDA_CONTACT_US = 0.02
_BEAT_BANDS_HZ = {"ppg": (0.7, 3.5), "ecg": (5.0, 20.0)}
# Motion cleaning: the vitals' PPG band (``PULSE_BAND_HZ``) for the PPG and the accelerometer
# axes alike, and their window: one least-squares fit per 10 s, on windows aligned to whole
# multiples of 10 s of the signals' own clock, so that a device holding the last minute and a
# whole recording cut the same windows.
CLEAN_WINDOW_S = 10.0
_HR_COLUMNS = [FEATURE_NAMES.index("hr_bpm"), FEATURE_NAMES.index("hrv_rmssd_ms")]


@dataclass(frozen=True, slots=True)
class StepFeatures:
    """``values`` (steps x features, columns in ``FEATURE_NAMES`` order) and per-step signal
    quality."""

    values: np.ndarray
    ppg_quality: np.ndarray
    eda_quality: np.ndarray

    @property
    def quality(self) -> np.ndarray:
        """0..1 per step: beat coverage and skin contact, lowered by strong motion."""
        motion = np.nan_to_num(self.values[:, _MOTION_COLUMN], nan=0.0)
        motion_factor = np.clip(1.5 - 5.0 * motion, 0.3, 1.0)
        return 0.5 * (self.ppg_quality + self.eda_quality) * motion_factor


def step_features(
    ppg: np.ndarray | None = None,
    ppg_rate_hz: float | None = None,
    eda_us: np.ndarray | None = None,
    eda_rate_hz: float | None = None,
    accel_g: np.ndarray | None = None,
    accel_rate_hz: float | None = None,
    *,
    n_steps: int | None = None,
    ppg_polarity: int = 1,
    beat_source: str = "ppg",
    ecg: np.ndarray | None = None,
    ecg_rate_hz: float | None = None,
    t0_s: float = 0.0,
    motion_clean: bool = False,
) -> StepFeatures:
    """Features for each ``STEP_S`` step of signals that all start at the same instant.

    ``ppg`` is any pulse wave (E4 BVP, MAX30102 counts); ``ppg_polarity`` is +1 when the
    systolic upstroke raises the value and -1 when it lowers it (raw reflectance counts).
    ``beat_source="ecg"`` reads every beat column from ``ppg`` as an ECG lead instead.
    ``accel_g`` is (N, 3) axes or (N,) magnitude, in g; given as axes, with ``motion_clean``,
    it cleans the PPG before its beats are read. ``ecg`` (any units, R peaks upward), when
    given, supplies heart rate and RMSSD. ``t0_s`` is the signals' start on their own clock
    (unix s, say): it places the cleaning windows. A missing signal gives NaN columns and
    zero quality for it.
    """
    durations = []
    for name, x, rate in (("ppg", ppg, ppg_rate_hz), ("eda_us", eda_us, eda_rate_hz),
                          ("accel_g", accel_g, accel_rate_hz), ("ecg", ecg, ecg_rate_hz)):
        if x is None:
            continue
        if rate is None or not rate > 0:
            raise ValueError(f"{name}: a positive sample rate is needed, got {rate}")
        durations.append(len(x) / rate)
    if not durations:
        raise ValueError("step_features: no signal given (ppg, eda_us and accel_g are all None)")
    if n_steps is None:
        n_steps = int(np.floor(min(durations) / STEP_S + 1e-9))
    ends_s = (np.arange(n_steps) + 1) * STEP_S
    values = np.full((n_steps, len(FEATURE_NAMES)), np.nan)
    ppg_q = np.zeros(n_steps)
    eda_q = np.zeros(n_steps)
    if ppg is not None:
        ppg = np.asarray(ppg, float)
        if (motion_clean and beat_source == "ppg" and accel_g is not None
                and np.ndim(accel_g) == 2):
            ppg = motion_clean_ppg(ppg, float(ppg_rate_hz), np.asarray(accel_g, float),
                                   float(accel_rate_hz), t0_s)
        values[:, _BEAT_COLUMNS], ppg_q = _beat_features(
            ppg, float(ppg_rate_hz), ends_s, ppg_polarity, beat_source)
    if ecg is not None:
        ecg_values, ecg_q = _beat_features(np.asarray(ecg, float), float(ecg_rate_hz), ends_s,
                                           1, "ecg")
        if ppg is None:
            values[:, _BEAT_COLUMNS], ppg_q = ecg_values, ecg_q
        else:
            from_ecg = np.isfinite(ecg_values[:, :2])
            values[:, _HR_COLUMNS] = np.where(from_ecg, ecg_values[:, :2], values[:, _HR_COLUMNS])
            ppg_q = np.maximum(ppg_q, ecg_q)
    if eda_us is not None:
        values[:, _EDA_COLUMNS], eda_q = _eda_features(
            np.asarray(eda_us, float), float(eda_rate_hz), ends_s)
    if accel_g is not None:
        values[:, _MOTION_COLUMN] = _motion_feature(np.asarray(accel_g, float), float(accel_rate_hz), ends_s)
    return StepFeatures(values, ppg_q, eda_q)


def motion_clean_ppg(ppg: np.ndarray, rate_hz: float, accel_g: np.ndarray,
                     accel_rate_hz: float, t0_s: float = 0.0) -> np.ndarray:
    """The PPG band-passed as the vitals band-pass it, minus its least-squares fit on the
    band-passed accelerometer axes (``models.ppg.remove_motion``), window by window.

    ``accel_g`` (M, 3) starts with the PPG; both are filtered forward and backward (no phase
    shift between them), the axes interpolated onto the PPG's sample times. Windows are
    ``CLEAN_WINDOW_S`` long on the clock ``t0_s`` gives the first sample; the first and last
    may be shorter. A window whose band-passed acceleration stays under the vitals' still
    floor (``MOTION_FLOOR_G``) is only band-passed: a fit on sensor noise would take a random
    share of the pulse with it and jitter the beat times that RMSSD reads. Samples the
    accelerometer does not reach are left uncleaned."""
    n = len(ppg)
    if n < 16 or len(accel_g) < 16 or accel_g.ndim != 2 or accel_g.shape[1] != 3:
        return ppg
    band = (PULSE_BAND_HZ[0], min(PULSE_BAND_HZ[1], 0.4 * rate_hz, 0.4 * accel_rate_hz))
    x = np.nan_to_num(ppg, nan=np.nanmedian(ppg) if np.any(np.isfinite(ppg)) else 0.0)
    x = sosfiltfilt(_butter_sos(band, "bandpass", rate_hz), x - np.median(x),
                    padlen=min(n - 1, int(3 * rate_hz)))
    acc = np.nan_to_num(accel_g - np.median(accel_g, axis=0), nan=0.0)
    acc = sosfiltfilt(_butter_sos(band, "bandpass", accel_rate_hz), acc.T,
                      padlen=min(len(acc) - 1, int(3 * accel_rate_hz)))
    t_ppg = np.arange(n) / rate_hz
    covered = int(np.searchsorted(t_ppg, (acc.shape[1] - 1) / accel_rate_hz, side="right"))
    t_acc = np.arange(acc.shape[1]) / accel_rate_hz
    ref = np.stack([np.interp(t_ppg[:covered], t_acc, a) for a in acc], axis=1)
    # Window edges on the signals' own clock: whole multiples of CLEAN_WINDOW_S.
    first_edge = (np.floor(t0_s / CLEAN_WINDOW_S) + 1) * CLEAN_WINDOW_S - t0_s
    edges = np.arange(first_edge, covered / rate_hz, CLEAN_WINDOW_S)
    cuts = np.concatenate(([0], np.round(edges * rate_hz).astype(int), [covered]))
    out = x.copy()
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b > a and np.sqrt(np.mean(ref[a:b] ** 2) * 3) >= MOTION_FLOOR_G:
            out[a:b] = remove_motion(x[a:b], ref[a:b], rate_hz)[0]
    return out


def detect_beats(x: np.ndarray, rate_hz: float, polarity: int = 1, source: str = "ppg"):
    """Beat times (s) and amplitudes. A PPG's: peaks of the band-passed wave, scaled by its local
    RMS so that one prominence threshold works for any gain and through slow amplitude changes.
    An ECG's: the R peaks the vitals find (``models.ecg``), on the band-passed lead; no
    amplitude (1 each), since no feature reads it."""
    if source not in _BEAT_BANDS_HZ:
        raise ValueError(f"beat source must be one of {sorted(_BEAT_BANDS_HZ)}, got {source!r}")
    low, high = _BEAT_BANDS_HZ[source]
    high = min(high, 0.45 * rate_hz)
    if len(x) < int(3 * rate_hz) or not np.all(np.isfinite(x)):
        x = np.nan_to_num(x, nan=np.nanmedian(x) if np.any(np.isfinite(x)) else 0.0)
    if len(x) < 16:
        return np.empty(0), np.empty(0)
    sos = _butter_sos((low, high), "bandpass", rate_hz)
    padlen = min(len(x) - 1, int(3 * rate_hz))
    y = sosfiltfilt(sos, x - np.median(x), padlen=padlen) * (1 if polarity >= 0 else -1)
    if source == "ecg":  # the vitals' R-peak detector (Pan-Tompkins); no amplitude feature
        beat_t = ecg_r_peaks_s(y, rate_hz)
        return beat_t, np.ones(beat_t.size)
    rms = np.sqrt(uniform_filter1d(y * y, max(3, int(3 * rate_hz))))
    z = y / (rms + 1e-12 + 1e-6 * np.max(np.abs(y)))
    peaks = find_peaks(z, distance=max(1, int(_IBI_MIN_S * rate_hz)), prominence=0.8)
    trough_w = max(2, int(0.4 * rate_hz))
    troughs = minimum_filter1d(y, trough_w, origin=(trough_w - 1) // 2)
    return peaks / rate_hz, y[peaks] - troughs[peaks]


@lru_cache(maxsize=32)
def _butter_sos(cutoff_hz, btype: str, rate_hz: float) -> np.ndarray:
    # Designing the filter costs more than running it on a minute of samples: once per rate.
    return butter(2, cutoff_hz, btype, rate_hz)


def _window_index(times: np.ndarray, ends_s: np.ndarray, window_s: float):
    lo = np.searchsorted(times, ends_s - window_s, side="right")
    hi = np.searchsorted(times, ends_s, side="right")
    return lo, hi


def _window_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    c = np.concatenate(([0.0], np.cumsum(values)))
    return c[hi] - c[lo]


def _beat_features(x, rate_hz, ends_s, polarity, source):
    n = len(ends_s)
    out = np.full((n, 6), np.nan)
    beat_t, amp = detect_beats(x, rate_hz, polarity, source)
    if len(beat_t) < 3:
        return out, np.zeros(n)
    ibi = np.diff(beat_t)
    t = beat_t[1:]
    amp = amp[1:]
    local = median_filter1d(ibi, 5)
    ok = (ibi > _IBI_MIN_S) & (ibi < _IBI_MAX_S) & (np.abs(ibi / local - 1.0) < _IBI_JUMP)
    ok &= amp > 0
    okf = ok.astype(float)

    lo, hi = _window_index(t, ends_s, HR_WINDOW_S)
    count = _window_sum(okf, lo, hi)
    ibi_sum = _window_sum(np.where(ok, ibi, 0.0), lo, hi)
    log_amp = _window_sum(np.where(ok, np.log(np.where(ok, amp, 1.0)), 0.0), lo, hi)
    enough = count >= 3
    out[enough, 0] = 60.0 * count[enough] / ibi_sum[enough]
    if source == "ppg":
        out[enough, 2] = np.exp(log_amp[enough] / count[enough])
    quality = np.clip(ibi_sum / HR_WINDOW_S, 0.0, 1.0)

    pair_ok = ok[1:] & ok[:-1]
    sq = np.where(pair_ok, np.diff(ibi) ** 2, 0.0)
    lo, hi = _window_index(t[1:], ends_s, HRV_WINDOW_S)
    pairs = _window_sum(pair_ok.astype(float), lo, hi)
    ssq = _window_sum(sq, lo, hi)
    enough = pairs >= 5
    out[enough, 1] = 1000.0 * np.sqrt(ssq[enough] / pairs[enough])
    if ok.sum() >= 3 and n > 0:
        # Sinus arrhythmia and pulse-amplitude swings, both present in a band-limited wrist
        # BVP and in raw finger counts alike (the baseline swing is filtered out of the E4's).
        n_grid = int(np.round(ends_s[-1] * RESP_RATE_HZ))
        ibi_4hz = resample_beats(t[ok], ibi[ok], n_grid)
        series = [ibi_4hz]
        log_amp_4hz = None
        if source == "ppg":
            log_amp_4hz = resample_beats(t[ok], np.log(amp[ok]), n_grid)
            series.append(log_amp_4hz)
        out[:, 3:6] = respiration_features(series, ends_s, depth_series=log_amp_4hz)
        lo, hi = _window_index(t, ends_s, RESP_WINDOW_S)
        out[_window_sum(okf, lo, hi) < _RESP_MIN_BEATS, 3:6] = np.nan
    return out, quality


def _sample_index_at(ends_s: np.ndarray, rate_hz: float, n: int) -> np.ndarray:
    """Index of the last sample taken before each step end (sample i is at i / rate_hz)."""
    return np.clip(np.ceil(ends_s * rate_hz - 1e-9).astype(int) - 1, 0, n - 1)


def _eda_features(eda_us, rate_hz, ends_s):
    n = len(ends_s)
    out = np.full((n, 3), np.nan)
    if len(eda_us) < 2:
        return out, np.zeros(n)
    eda_us = np.nan_to_num(eda_us, nan=0.0)
    if rate_hz > 2.5 and len(eda_us) > 3 * rate_hz:
        sos = _butter_sos(1.0, "lowpass", rate_hz)
        eda_us = sosfiltfilt(sos, eda_us, padlen=min(len(eda_us) - 1, int(3 * rate_hz)))
    w = max(1, int(round(EDA_WINDOW_S * rate_hz)))
    tonic = minimum_filter1d(eda_us, w, origin=(w - 1) // 2)
    rises = np.concatenate(([0.0], np.maximum(np.diff(eda_us), 0.0)))
    idx = _sample_index_at(ends_s, rate_hz, len(eda_us))
    covered = ends_s * rate_hz <= len(eda_us) + 1e-6
    out[:, 0] = tonic[idx]
    rise_sum = _window_sum(rises, np.maximum(idx + 1 - w, 0), idx + 1)
    out[:, 1] = rise_sum / EDA_WINDOW_S
    out[:, 2] = _log_slope_per_min(eda_us, rate_hz, idx)
    out[~covered] = np.nan
    quality = ((out[:, 0] >= _EDA_CONTACT_US) & covered).astype(float)
    return out, quality


def _log_slope_per_min(eda_us, rate_hz, idx):
    """Least-squares slope of log(conductance + 0.05 uS) over the window ending at each idx,
    from running sums (no per-step loop)."""
    w = max(2, int(round(EDA_SLOPE_WINDOW_S * rate_hz)))
    y = np.log(np.maximum(eda_us, 0.0) + 0.05)
    t = np.arange(len(y)) / rate_hz

    def csum(v):
        return np.concatenate(([0.0], np.cumsum(v)))

    lo, hi = np.maximum(idx + 1 - w, 0), idx + 1
    m, st, sy, sty, stt = (c[hi] - c[lo] for c in (csum(np.ones_like(y)), csum(t), csum(y),
                                                   csum(t * y), csum(t * t)))
    den = m * stt - st * st
    slope = np.where(den > 1e-12, (m * sty - st * sy) / np.maximum(den, 1e-12), np.nan)
    return 60.0 * slope


def _motion_feature(accel_g, rate_hz, ends_s):
    mag = np.linalg.norm(accel_g, axis=1) if accel_g.ndim == 2 else np.abs(accel_g)
    if len(mag) == 0:
        return np.full(len(ends_s), np.nan)
    w = max(2, int(round(MOTION_WINDOW_S * rate_hz)))
    idx = _sample_index_at(ends_s, rate_hz, len(mag))
    lo = np.maximum(idx + 1 - w, 0)
    count = (idx + 1 - lo).astype(float)
    mean = _window_sum(mag, lo, idx + 1) / count
    mean_sq = _window_sum(mag * mag, lo, idx + 1) / count
    motion = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    motion[ends_s * rate_hz > len(mag) + 1e-6] = np.nan
    return motion


# How each feature is compared with the rest baseline: a difference for heart rate, a log
# ratio for the others (their scale depends on the sensor, gain and skin), each divided by a
# fixed population scale so that one unit is a comparable change for every feature. Fixed
# scales rather than the rest spread: a few minutes of calibration give a good median but a
# noisy spread. (name, kind, offset added before the log, scale)
_NORMALISATION = (
    ("hr_bpm", "diff", 0.0, 10.0),
    ("hrv_rmssd_ms", "log", 5.0, 0.5),
    ("ppg_amp", "log", 0.0, 0.5),
    ("eda_tonic_us", "log", 0.05, 0.5),
    ("eda_phasic_us_per_s", "log", 0.005, 1.0),
    ("motion_g", "log", 0.005, 1.0),
    ("resp_rate_brpm", "diff", 0.0, 4.0),
    ("resp_depth", "log", 0.005, 0.5),
    ("resp_regularity", "diff", 0.0, 0.1),
    ("eda_slope_per_min", "diff", 0.0, 0.05),
)
NORMALISED_CLIP = 6.0


@dataclass(frozen=True)
class Baseline:
    """A person's resting level of each feature (physical units; None where unmeasured).

    Fitted from rest steps, persisted with ``to_dict``/``from_dict`` so a device keeps a
    patient's calibration across restarts. ``beats_from_ecg`` records where its heart rate
    and RMSSD came from (None: not known): an ECG's RMSSD sits lower than a PPG's, so a
    baseline taken with one source does not fit the other.
    """

    centers: dict[str, float | None]
    n_steps: int
    beats_from_ecg: bool | None = None

    @classmethod
    def fit(cls, values: np.ndarray, quality: np.ndarray | None = None,
            min_steps: int = 30) -> Baseline:
        """Median of each feature over rest steps (rows of ``step_features(...).values``);
        steps with ``quality`` below 0.5 are left out when enough others remain."""
        values = np.asarray(values, float)
        if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"Baseline.fit: values must be (steps, {len(FEATURE_NAMES)}), "
                             f"got {values.shape}")
        if len(values) < min_steps:
            raise ValueError(f"Baseline.fit: {len(values)} rest steps, need at least {min_steps}")
        if quality is not None:
            good = np.asarray(quality) >= 0.5
            if good.sum() >= min_steps:
                values = values[good]
        centers: dict[str, float | None] = {}
        for j, name in enumerate(FEATURE_NAMES):
            col = values[:, j]
            col = col[np.isfinite(col)]
            centers[name] = float(np.median(col)) if len(col) >= min_steps // 2 else None
        return cls(centers, len(values))

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Steps x features in physical units -> model input: change from rest in population units,
        clipped to +-6; unmeasured values sit at the baseline (0)."""
        values = np.asarray(values, float)
        out = np.zeros(values.shape, dtype=np.float32)
        for j, (name, kind, offset, scale) in enumerate(_NORMALISATION):
            center = self.centers.get(name)
            if center is None:
                continue
            col = values[..., j]
            if kind == "diff":
                z = (col - center) / scale
            else:
                z = (np.log(np.maximum(col, 0.0) + offset + 1e-9)
                     - np.log(max(center, 0.0) + offset + 1e-9)) / scale
            out[..., j] = np.clip(np.nan_to_num(z, nan=0.0), -NORMALISED_CLIP, NORMALISED_CLIP)
        return out

    def to_dict(self) -> dict:
        return {"centers": dict(self.centers), "n_steps": self.n_steps,
                "features": list(FEATURE_NAMES), "beats_from_ecg": self.beats_from_ecg}

    @classmethod
    def from_dict(cls, data: dict) -> Baseline:
        try:
            centers = data["centers"]
            n_steps = int(data["n_steps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"Baseline.from_dict: need 'centers' and 'n_steps' ({exc!r})") from None
        unknown = set(centers) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"Baseline.from_dict: unknown feature(s) {sorted(unknown)}")
        source = data.get("beats_from_ecg")
        return cls({name: (None if centers.get(name) is None else float(centers[name]))
                    for name in FEATURE_NAMES}, n_steps, None if source is None else bool(source))
