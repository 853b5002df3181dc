"""Streaming vitals: heart rate from PPG and from ECG, skin-conductance level, motion level.

``VitalsTracker`` takes ``SampleBlock``s as they arrive, filters each channel on arrival with
state carried between blocks, keeps the filtered (and, where clipping must be seen, raw)
samples in ring buffers, and on each hop computes every vital over the latest window. One
small function per vital does the estimate and says how much to trust it (quality 0..1);
the tracker scales that by how complete and unclipped the window is, and withholds a heart
rate whose quality is under ``min_quality``: a monitor must say "don't know" rather than
invent a pulse from a loose sensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
from scipy import ndimage, signal

from models.dsp import (
    StreamingSos,
    bandpass_sos,
    clipped_fraction,
    fill_nonfinite,
    highpass_sos,
    lowpass_sos,
    moving_average,
    refined_peak_times_s,
    spectral_peak,
)
from models.ring import SampleRing, TriaxialBuffer
from sensors.types import SampleBlock

HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0
ECG_HR_MIN_BPM, ECG_HR_MAX_BPM = 30.0, 220.0
# Skin conductance outside this is an open circuit (near 0) or a short, not skin.
EDA_MIN_US, EDA_MAX_US = 0.05, 100.0
# Share of the PPG power in the pulse's spectral lines (spectral_peak, 3 harmonics): band-passed
# white noise gives ~0.3 (95th percentile ~0.48), a clean pulse 0.85-0.95.
PPG_SHARE_FLOOR, PPG_SHARE_GOOD = 0.5, 0.8
# Spectral and peak-interval HR agree within this without penalty; quality reaches 0 at
# AGREE_BPM + AGREE_SPAN_BPM of disagreement.
AGREE_BPM, AGREE_SPAN_BPM = 3.0, 10.0
ECG_REFRACTORY_S = 0.25  # no second QRS within 250 ms (physiological refractory period)


class Estimate(NamedTuple):
    """One vital from one window, before gating: ``value`` None when nothing was measurable."""

    value: float | None
    quality: float


# ---------------------------------------------------------------------------------------------
# One function per vital. Inputs are the filtered window the tracker keeps for that channel.


def _usable(x: np.ndarray, rate_hz: float) -> bool:
    """At least 3 s (two beats at 40 bpm) of finite samples."""
    return x.ndim == 1 and x.size >= 3 * rate_hz and bool(np.isfinite(x).all())


def ppg_interval_hr(ppg: np.ndarray, rate_hz: float, min_period_s: float) -> float | None:
    """HR from the median interval between systolic peaks at least ``min_period_s`` apart."""
    spread = float(np.std(ppg))
    if spread <= 0:
        return None
    peaks, _ = signal.find_peaks(
        ppg, distance=max(1, int(min_period_s * rate_hz)), prominence=0.5 * spread
    )
    times_s = refined_peak_times_s(ppg, peaks, rate_hz)
    if times_s.size < 3:
        return None
    return 60.0 / float(np.median(np.diff(times_s)))


def hr_from_ppg(ppg: np.ndarray, rate_hz: float) -> Estimate:
    """Heart rate from a band-passed PPG window.

    The spectral peak in 40-200 bpm gives the value; the median peak interval (peaks held
    0.6 of a spectral period apart so the dicrotic wave is not counted) cross-checks it.
    Quality is the spectral peak's share of the power, mapped to 0..1, times the agreement.
    """
    ppg = np.asarray(ppg, dtype=float)
    if not _usable(ppg, rate_hz):
        return Estimate(None, 0.0)
    f_hz, share = spectral_peak(ppg, rate_hz, HR_MIN_BPM / 60.0, HR_MAX_BPM / 60.0)
    if f_hz is None:
        return Estimate(None, 0.0)
    hr_bpm = 60.0 * f_hz
    q_share = np.clip((share - PPG_SHARE_FLOOR) / (PPG_SHARE_GOOD - PPG_SHARE_FLOOR), 0.0, 1.0)
    if q_share == 0:
        return Estimate(hr_bpm, 0.0)
    hr_interval = ppg_interval_hr(ppg, rate_hz, 0.6 / f_hz)
    if hr_interval is None:
        return Estimate(hr_bpm, 0.0)
    disagreement = abs(hr_bpm - hr_interval)
    agreement = np.clip(1.0 - (disagreement - AGREE_BPM) / AGREE_SPAN_BPM, 0.0, 1.0)
    return Estimate(hr_bpm, float(q_share * agreement))


def ecg_r_peaks_s(ecg: np.ndarray, rate_hz: float) -> np.ndarray:
    """Times (s from window start) of R peaks in a band-passed ECG window.

    The squared derivative, integrated over 100 ms (the QRS width), stands out from P and T
    waves (Pan & Tompkins 1985). A peak counts when it rises above noise + 30% of the way to
    the largest envelope within +-1.5 s - a threshold that follows amplitude changes and
    still sees one beat at 40 bpm - and the strongest peak within 250 ms wins.
    """
    slope = np.diff(ecg, prepend=ecg[:1]) * rate_hz
    envelope = moving_average(slope * slope, round(0.1 * rate_hz))
    noise = float(np.median(envelope))
    local_max = ndimage.maximum_filter1d(envelope, size=max(3, round(3.0 * rate_hz)))
    if not np.isfinite(local_max).all() or local_max.max() <= noise * (1 + 1e-9) + 1e-300:
        return np.empty(0)
    threshold = noise + 0.3 * (local_max - noise)
    peaks, _ = signal.find_peaks(
        envelope, height=threshold, distance=max(1, round(ECG_REFRACTORY_S * rate_hz))
    )
    return refined_peak_times_s(envelope, peaks, rate_hz)


def hr_from_ecg(ecg: np.ndarray, rate_hz: float) -> Estimate:
    """Heart rate as 60 / median RR.

    Quality multiplies RR regularity (robust spread of RR; sinus rhythm with respiratory
    arrhythmia stays under ~10%), the share of RR intervals close to the median (a missed or
    extra beat makes one 2x or 0.5x) and how much of the window the beats span.
    """
    ecg = np.asarray(ecg, dtype=float)
    if not _usable(ecg, rate_hz):
        return Estimate(None, 0.0)
    r_s = ecg_r_peaks_s(ecg, rate_hz)
    if r_s.size < 4:
        return Estimate(None, 0.0)
    rr_s = np.diff(r_s)
    rr_median = float(np.median(rr_s))
    hr_bpm = 60.0 / rr_median
    if not ECG_HR_MIN_BPM <= hr_bpm <= ECG_HR_MAX_BPM:
        return Estimate(None, 0.0)
    spread = 1.4826 * float(np.median(np.abs(rr_s - rr_median))) / rr_median
    q_regular = np.clip(1.0 - (spread - 0.1) / 0.2, 0.0, 1.0)
    q_plausible = float(np.mean(np.abs(rr_s / rr_median - 1.0) < 0.3))
    window_s = len(ecg) / rate_hz
    q_span = min(1.0, (r_s[-1] - r_s[0] + rr_median) / window_s)
    return Estimate(hr_bpm, float(q_regular * q_plausible * q_span))


def eda_level(eda_us: np.ndarray, rate_hz: float, level_s: float = 2.0) -> Estimate:
    """Skin-conductance level: mean of the last ``level_s`` of the low-passed signal."""
    tail = eda_us[-max(1, round(level_s * rate_hz)) :]
    level = float(np.mean(tail))
    if not EDA_MIN_US <= level <= EDA_MAX_US:
        return Estimate(None, 0.0)
    return Estimate(level, 1.0)


def motion_level(motion_g: np.ndarray) -> Estimate:
    """RMS of the high-passed acceleration magnitude (gravity removed), in g."""
    return Estimate(float(np.sqrt(np.mean(np.square(motion_g)))), 1.0)


def clip_penalty(raw: np.ndarray) -> float:
    """1 up to 2% of samples at full scale, 0 from 10%: a clipped pulse has lost its shape."""
    return float(np.clip(1.0 - (clipped_fraction(raw) - 0.02) / 0.08, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------


@dataclass
class Vitals:
    """Vitals over the window ending at ``t_ns``; None where not measurable or not trusted."""

    t_ns: int
    hr_bpm: dict[str, float | None] = field(default_factory=lambda: {"ppg": None, "ecg": None})
    eda_us: float | None = None
    motion_g: float | None = None
    quality: dict[str, float] = field(
        default_factory=lambda: {"ppg": 0.0, "ecg": 0.0, "eda": 0.0, "accel": 0.0}
    )
    ppg_channel: str | None = None  # which PPG channel gave hr_bpm["ppg"]

    def to_dict(self) -> dict:
        def r(x: float | None, digits: int) -> float | None:
            return None if x is None else round(float(x), digits)

        return {
            "t_ns": int(self.t_ns),
            "hr_bpm": {k: r(v, 1) for k, v in self.hr_bpm.items()},
            "eda_us": r(self.eda_us, 3),
            "motion_g": r(self.motion_g, 4),
            "quality": {k: r(v, 3) for k, v in self.quality.items()},
            "ppg_channel": self.ppg_channel,
        }


def _design_ppg(rate_hz: float) -> np.ndarray:
    if rate_hz < 10:
        raise ValueError(f"rate_hz {rate_hz} too low for heart rate, need >= 10 Hz")
    return bandpass_sos(0.5, min(3.5, 0.4 * rate_hz), rate_hz)


def _design_ecg(rate_hz: float) -> np.ndarray:
    if rate_hz < 50:
        raise ValueError(f"rate_hz {rate_hz} too low for QRS detection, need >= 50 Hz")
    return bandpass_sos(5.0, min(25.0, 0.4 * rate_hz), rate_hz)


def _design_eda(rate_hz: float) -> np.ndarray:
    return lowpass_sos(min(1.0, 0.4 * rate_hz), rate_hz)


def _design_motion(rate_hz: float) -> np.ndarray:
    return highpass_sos(0.3, rate_hz)


class _Window(NamedTuple):
    filtered: np.ndarray
    raw: np.ndarray | None
    rate_hz: float
    completeness: float


class _Channel:
    """One channel's streaming filter and rings; the filter restarts when the ring does."""

    def __init__(
        self, name: str, design: Callable[[float], np.ndarray], capacity_s: float, keep_raw: bool
    ) -> None:
        self.name = name
        self._design = design
        self._capacity_s = capacity_s
        self._keep_raw = keep_raw
        self.filtered: SampleRing | None = None
        self.raw: SampleRing | None = None
        self._filter: StreamingSos | None = None
        self._last = 0.0
        self.nonfinite = 0

    def feed(self, samples: np.ndarray, t0_ns: int, rate_hz: float) -> None:
        if self.filtered is None or not math.isclose(rate_hz, self.filtered.rate_hz, rel_tol=1e-9):
            try:
                sos = self._design(rate_hz)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
            self._filter = StreamingSos(sos)
            if self.filtered is None:
                self.filtered = SampleRing(rate_hz, self._capacity_s)
                self.raw = SampleRing(rate_hz, self._capacity_s) if self._keep_raw else None
        elif not self.filtered.continues(t0_ns, rate_hz):
            self._filter.reset()
        x = np.asarray(samples, dtype=float)
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            self.nonfinite += bad
            x = fill_nonfinite(x, self._last)
        self._last = float(x[-1])
        y = self._filter.process(x)
        t_end_ns = t0_ns + round(x.size * 1e9 / rate_hz)
        self.filtered.extend(y, t_end_ns, rate_hz)
        if self.raw is not None:
            self.raw.extend(x, t_end_ns, rate_hz)

    @property
    def resets(self) -> int:
        return 0 if self.filtered is None else self.filtered.resets

    def window(self, t_ns: int, window_s: float, stale_s: float) -> _Window | None:
        """The latest window, or None when under 80% of a window is held or data is stale."""
        ring = self.filtered
        if ring is None or ring.t_end_ns is None:
            return None
        last_sample_ns = ring.t_end_ns - ring.period_ns
        if t_ns - last_sample_ns > stale_s * 1e9 or ring.duration_s < 0.8 * window_s:
            return None
        raw = None if self.raw is None else self.raw.latest(window_s)
        return _Window(
            ring.latest(window_s), raw, ring.rate_hz, min(1.0, ring.duration_s / window_s)
        )


class VitalsTracker:
    """Vitals over the latest ``window_s``, updated every ``hop_s``, from streamed blocks.

    Channels (others are ignored and counted in ``ignored_blocks``):

    - ``ppg_green``, ``ppg_ir``, ``ppg_red`` (any unit, counts from the MAX3010x): heart rate
      from the first that passes the quality gate in that order - green follows the pulse
      best under motion at the wrist, IR reaches deepest at the finger.
    - ``ecg`` (mV; any unit works, only timing is used): heart rate from R peaks.
    - ``eda`` (uS): skin-conductance level.
    - ``acc_x``, ``acc_y``, ``acc_z`` (g): motion level.

    ``update(t_ns)`` gives None with quality 0 for a channel holding under 80% of a window
    or whose last sample is older than two hops, and withholds a heart rate whose quality
    is under ``min_quality``.
    """

    PPG_PREFERENCE = ("ppg_green", "ppg_ir", "ppg_red")
    _UNITS: ClassVar[dict[str, str]] = {"eda": "uS", "acc_x": "g", "acc_y": "g", "acc_z": "g"}

    def __init__(
        self, window_s: float = 10.0, hop_s: float = 1.0, min_quality: float = 0.5
    ) -> None:
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window_s and hop_s must be > 0, got {window_s}, {hop_s}")
        if not 0 <= min_quality <= 1:
            raise ValueError(f"min_quality must be within 0..1, got {min_quality}")
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self.min_quality = float(min_quality)
        capacity_s = self.window_s + 2 * self.hop_s
        self._channels = {
            name: _Channel(name, _design_ppg, capacity_s, keep_raw=True)
            for name in self.PPG_PREFERENCE
        }
        self._channels["ecg"] = _Channel("ecg", _design_ecg, capacity_s, keep_raw=True)
        self._channels["eda"] = _Channel("eda", _design_eda, capacity_s, keep_raw=False)
        self._channels["motion"] = _Channel("motion", _design_motion, capacity_s, keep_raw=False)
        self._triaxial = TriaxialBuffer(max_pending_s=capacity_s)
        self.ignored_blocks: dict[str, int] = {}

    @property
    def resets(self) -> dict[str, int]:
        """Per channel, how often a gap or a new rate restarted its ring and filter."""
        return {name: ch.resets for name, ch in self._channels.items()}

    @property
    def nonfinite_samples(self) -> dict[str, int]:
        """Per channel, NaN/inf samples replaced by the last finite value."""
        return {name: ch.nonfinite for name, ch in self._channels.items()}

    def push(self, block: SampleBlock) -> None:
        name = block.channel
        expected_unit = self._UNITS.get(name)
        if expected_unit and block.unit and block.unit != expected_unit:
            raise ValueError(f"{name}: unit must be {expected_unit!r}, got {block.unit!r}")
        if len(block) == 0:
            return
        if name in TriaxialBuffer.AXES:
            samples = fill_nonfinite(block.samples, 0.0)
            aligned = self._triaxial.add(name, block.t0_ns, block.rate_hz, samples)
            if aligned is not None:
                self._channels["motion"].feed(aligned[2], aligned[0], aligned[1])
        elif name in self._channels and name != "motion":
            self._channels[name].feed(block.samples, block.t0_ns, block.rate_hz)
        else:
            self.ignored_blocks[name] = self.ignored_blocks.get(name, 0) + 1

    def _window(self, name: str, t_ns: int) -> _Window | None:
        return self._channels[name].window(t_ns, self.window_s, 2 * self.hop_s)

    def update(self, t_ns: int) -> Vitals:
        vitals = Vitals(t_ns=int(t_ns))
        for name in self.PPG_PREFERENCE:
            w = self._window(name, t_ns)
            if w is None:
                continue
            est = hr_from_ppg(w.filtered, w.rate_hz)
            q = est.quality * w.completeness * clip_penalty(w.raw)
            if est.value is not None and q >= self.min_quality:
                vitals.hr_bpm["ppg"], vitals.quality["ppg"], vitals.ppg_channel = est.value, q, name
                break
            vitals.quality["ppg"] = max(vitals.quality["ppg"], q)

        w = self._window("ecg", t_ns)
        if w is not None:
            est = hr_from_ecg(w.filtered, w.rate_hz)
            q = est.quality * w.completeness * clip_penalty(w.raw)
            vitals.quality["ecg"] = q
            if est.value is not None and q >= self.min_quality:
                vitals.hr_bpm["ecg"] = est.value

        w = self._window("eda", t_ns)
        if w is not None:
            est = eda_level(w.filtered, w.rate_hz)
            vitals.eda_us, vitals.quality["eda"] = est.value, est.quality * w.completeness

        w = self._window("motion", t_ns)
        if w is not None:
            est = motion_level(w.filtered)
            vitals.motion_g, vitals.quality["accel"] = est.value, est.quality * w.completeness
        return vitals
