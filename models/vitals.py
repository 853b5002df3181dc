"""Streaming vitals: heart rate (PPG under motion, ECG, reconciled), HRV, respiration, pulse
arrival time, skin conductance (level, SCL, SCRs), motion, and a quality per channel.

``VitalsTracker`` takes ``SampleBlock``s as they arrive, filters each channel on arrival with
state carried between blocks, keeps the filtered (and, where clipping or timing must be seen,
raw) samples in ring buffers, and on each hop computes every vital over the latest window.
The stages live in their own modules (``ppg``, ``ecg``, ``eda``, ``pat``, ``resp``, ``sqi``);
the tracker scales each stage's quality by how complete and unclipped the window is, and
withholds a value whose quality is under ``min_quality``: a monitor must say "don't know"
rather than invent a pulse from a loose sensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
from scipy import signal

from models.dsp import bandpass_sos, clipped_fraction, fill_nonfinite, highpass_sos, lowpass_sos
from models.ecg import HRV_WINDOW_S, RPeakDetector, hr_from_ecg, hr_from_rr, hrv
from models.eda import ScrDetector, tonic_level
from models.pat import SEARCH_S as PAT_SEARCH_S
from models.pat import pat_quality, pulse_arrival_times
from models.ppg import PulseRateTracker
from models.resp import WINDOW_S as RESP_WINDOW_S
from models.resp import resp_from_beats
from models.ring import FilteredChannel, TriaxialBuffer, Window
from models.sqi import ecg_sqi, ppg_sqi
from sensors.types import SampleBlock

__all__ = [
    "Estimate",
    "Vitals",
    "VitalsTracker",
    "clip_penalty",
    "eda_level",
    "hr_from_ecg",
    "hr_from_ppg",
    "motion_level",
]

# Skin conductance outside this is an open circuit (near 0) or a short, not skin.
EDA_MIN_US, EDA_MAX_US = 0.05, 100.0
# Two heart rates within this agree and are averaged by quality; otherwise the better wins.
RECONCILE_BPM = 5.0
SLOW_REFRESH_S = 5.0


class Estimate(NamedTuple):
    """One vital from one window, before gating: ``value`` None when nothing was measurable."""

    value: float | None
    quality: float


def hr_from_ppg(ppg: np.ndarray, rate_hz: float) -> Estimate:
    """Heart rate from one band-passed PPG window, without motion reference or history."""
    ppg = np.asarray(ppg, dtype=float)
    if ppg.ndim != 1 or ppg.size < 3 * rate_hz or not np.isfinite(ppg).all():
        return Estimate(None, 0.0)
    est = PulseRateTracker().update(ppg[None, :], rate_hz, None, 0.0)
    return Estimate(est.hr_bpm, est.quality)


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


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(float(x), digits)


@dataclass
class Vitals:
    """Vitals over the window ending at ``t_ns``; None where not measurable or not trusted.

    ``heart_rate`` reconciles ``hr_bpm["ppg"]`` and ``hr_bpm["ecg"]``; ``hrv`` covers the
    last 60 s of ECG beats; ``resp`` the last 32 s; ``pat`` is the median R-to-foot time of
    the window's beats; ``scr`` counts the skin-conductance responses of the last minute;
    ``sqi`` holds the indices behind each channel's quality.
    """

    t_ns: int
    hr_bpm: dict[str, float | None] = field(default_factory=lambda: {"ppg": None, "ecg": None})
    eda_us: float | None = None
    motion_g: float | None = None
    quality: dict[str, float] = field(
        default_factory=lambda: {"ppg": 0.0, "ecg": 0.0, "eda": 0.0, "accel": 0.0}
    )
    ppg_channel: str | None = None  # which PPG channel weighed most in hr_bpm["ppg"]
    heart_rate: dict = field(default_factory=lambda: {"bpm": None, "quality": 0.0, "source": None})
    hrv: dict = field(default_factory=lambda: {"rmssd_ms": None, "sdnn_ms": None, "pnn50": None,
                                               "n_beats": 0, "ectopic_fraction": 0.0})
    resp: dict = field(default_factory=lambda: {"rate_bpm": None, "quality": 0.0, "source": None})
    pat: dict = field(default_factory=lambda: {"ms": None, "quality": 0.0, "n_beats": 0})
    scl_us: float | None = None
    scr: dict = field(default_factory=lambda: {"rate_per_min": None, "new": []})
    sqi: dict = field(default_factory=lambda: {"ppg": {}, "ecg": {}})

    def to_dict(self) -> dict:
        return {
            "t_ns": int(self.t_ns),
            "hr_bpm": {k: _r(v, 1) for k, v in self.hr_bpm.items()},
            "eda_us": _r(self.eda_us, 3),
            "motion_g": _r(self.motion_g, 4),
            "quality": {k: _r(v, 3) for k, v in self.quality.items()},
            "ppg_channel": self.ppg_channel,
            "heart_rate": {"bpm": _r(self.heart_rate["bpm"], 1),
                           "quality": _r(self.heart_rate["quality"], 3),
                           "source": self.heart_rate["source"]},
            "hrv": {"rmssd_ms": _r(self.hrv["rmssd_ms"], 1), "sdnn_ms": _r(self.hrv["sdnn_ms"], 1),
                    "pnn50": _r(self.hrv["pnn50"], 3), "n_beats": int(self.hrv["n_beats"]),
                    "ectopic_fraction": _r(self.hrv["ectopic_fraction"], 3)},
            "resp": {"rate_bpm": _r(self.resp["rate_bpm"], 1), "quality": _r(self.resp["quality"], 3),
                     "source": self.resp["source"]},
            "pat": {"ms": _r(self.pat["ms"], 1), "quality": _r(self.pat["quality"], 3),
                    "n_beats": int(self.pat["n_beats"])},
            "scl_us": _r(self.scl_us, 3),
            "scr": {"rate_per_min": _r(self.scr["rate_per_min"], 2),
                    "new": [{"onset_ns": int(s.onset_ns), "amplitude_us": round(s.amplitude_us, 3),
                             "rise_s": round(s.rise_s, 2)} for s in self.scr["new"]]},
            "sqi": self.sqi,
        }


def _design_ppg(rate_hz: float) -> np.ndarray:
    if rate_hz < 10:
        raise ValueError(f"rate_hz {rate_hz} too low for heart rate, need >= 10 Hz")
    return bandpass_sos(0.4, min(4.0, 0.4 * rate_hz), rate_hz)


def _design_ecg(rate_hz: float) -> np.ndarray:
    if rate_hz < 50:
        raise ValueError(f"rate_hz {rate_hz} too low for QRS detection, need >= 50 Hz")
    return bandpass_sos(5.0, min(25.0, 0.4 * rate_hz), rate_hz)


def _design_eda(rate_hz: float) -> np.ndarray:
    return lowpass_sos(min(1.0, 0.4 * rate_hz), rate_hz)


def _design_motion(rate_hz: float) -> np.ndarray:
    return highpass_sos(0.3, rate_hz)


def _group_delay_s(sos: np.ndarray, f_hz: float, rate_hz: float) -> float:
    _, gd = signal.group_delay(signal.sos2tf(sos), w=[f_hz], fs=rate_hz)
    return float(gd[0]) / rate_hz


class VitalsTracker:
    """Vitals over the latest ``window_s``, updated every ``hop_s``, from streamed blocks.

    Channels (others are ignored and counted in ``ignored_blocks``):

    - ``ppg_channels`` (default ``ppg_green``, ``ppg_ir``, ``ppg_red``; counts, any unit): one
      heart rate from all of them at one rate, each weighted by how pulse-like it is, with the
      accelerometer as the motion reference; ties go to the first named.
    - ``ecg`` (mV; only timing is used): R peaks, heart rate, HRV, respiration, PAT.
    - ``eda`` (uS): level, tonic level (SCL), SCRs.
    - ``acc_x``, ``acc_y``, ``acc_z`` (g): motion level and the PPG's motion reference.

    ``update(t_ns)`` gives None with quality 0 for a channel holding under 80% of a window
    or whose last sample is older than two hops, and withholds a value whose quality is under
    ``min_quality``. Beats committed by the ECG detector since the last update are in
    ``new_r_peaks_ns``.
    """

    _UNITS: ClassVar[dict[str, str]] = {"eda": "uS", "acc_x": "g", "acc_y": "g", "acc_z": "g"}
    PPG_PREFERENCE = ("ppg_green", "ppg_ir", "ppg_red")

    def __init__(self, window_s: float = 10.0, hop_s: float = 1.0, min_quality: float = 0.5,
                 ppg_channels: tuple[str, ...] = PPG_PREFERENCE) -> None:
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window_s and hop_s must be > 0, got {window_s}, {hop_s}")
        if not 0 <= min_quality <= 1:
            raise ValueError(f"min_quality must be within 0..1, got {min_quality}")
        if not ppg_channels or set(ppg_channels) & {"ecg", "eda", "motion", *TriaxialBuffer.AXES}:
            raise ValueError(f"ppg_channels must name PPG channels only, got {ppg_channels!r}")
        self.window_s, self.hop_s, self.min_quality = float(window_s), float(hop_s), float(min_quality)
        self.ppg_channels = tuple(ppg_channels)
        cap = self.window_s + 2 * self.hop_s
        ch = {name: FilteredChannel(name, _design_ppg, cap, keep_raw=True) for name in self.ppg_channels}
        ch["ecg"] = FilteredChannel("ecg", _design_ecg, cap, keep_raw=True)
        ch["eda"] = FilteredChannel("eda", _design_eda, cap, keep_raw=False)
        ch["motion"] = FilteredChannel("motion", _design_motion, cap, keep_raw=False)
        for axis in TriaxialBuffer.AXES:  # band-passed like the PPG: its motion reference
            ch[axis] = FilteredChannel(axis, _design_ppg, cap, keep_raw=False)
        self._channels = ch
        self._triaxial = TriaxialBuffer(max_pending_s=cap)
        self.pulse = PulseRateTracker()
        self.r_peaks = RPeakDetector()
        self.scrs = ScrDetector()
        self._ecg_resets = 0
        self._pat_ns, self._pat_ms, self._pat_done_ns = np.empty(0, dtype=np.int64), np.empty(0), 0
        self._slow_due_ns: int | None = None
        self._slow: dict = {}
        self.ignored_blocks: dict[str, int] = {}

    @property
    def resets(self) -> dict[str, int]:
        """Per channel, how often a gap or a new rate restarted its ring and filter."""
        return {name: ch.resets for name, ch in self._channels.items()}

    @property
    def nonfinite_samples(self) -> dict[str, int]:
        """Per channel, NaN/inf samples replaced by the last finite value."""
        return {name: ch.nonfinite for name, ch in self._channels.items()}

    @property
    def new_r_peaks_ns(self) -> np.ndarray:
        return self.r_peaks.new_beats_ns

    def push(self, block: SampleBlock) -> None:
        name = block.channel
        expected_unit = self._UNITS.get(name)
        if expected_unit and block.unit and block.unit != expected_unit:
            raise ValueError(f"{name}: unit must be {expected_unit!r}, got {block.unit!r}")
        if len(block) == 0:
            return
        if name in TriaxialBuffer.AXES:
            samples = fill_nonfinite(block.samples, 0.0)
            aligned = self._triaxial.add_axes(name, block.t0_ns, block.rate_hz, samples)
            if aligned is not None:
                t0, rate, xyz = aligned
                self._channels["motion"].feed(np.sqrt(np.einsum("ij,ij->i", xyz, xyz)), t0, rate)
                for i, axis in enumerate(TriaxialBuffer.AXES):
                    self._channels[axis].feed(xyz[:, i], t0, rate)
        elif name in self._channels and name != "motion":
            self._channels[name].feed(block.samples, block.t0_ns, block.rate_hz)
        else:
            self.ignored_blocks[name] = self.ignored_blocks.get(name, 0) + 1

    def _window(self, name: str, t_ns: int) -> Window | None:
        return self._channels[name].window(t_ns, self.window_s, 2 * self.hop_s)

    def _motion_reference(self, ppg: Window, n: int, t_ns: int) -> np.ndarray | None:
        """Accelerometer axes (n, 3) on the PPG's sample times, or None without them."""
        axes = [self._window(a, t_ns) for a in TriaxialBuffer.AXES]
        if any(w is None for w in axes):
            return None
        t_ppg = ppg.t_end_ns - (n - np.arange(n)) * (1e9 / ppg.rate_hz)
        out = np.empty((n, 3))
        for i, w in enumerate(axes):
            t_acc = w.t_end_ns - (w.filtered.size - np.arange(w.filtered.size)) * (1e9 / w.rate_hz)
            if t_acc[0] > t_ppg[0] + 1e9 / w.rate_hz:
                return None
            out[:, i] = np.interp(t_ppg, t_acc, w.filtered)
        return out

    def _update_ppg(self, v: Vitals, t_ns: int) -> tuple[Window, int] | None:
        wins = [(name, w) for name in self.ppg_channels if (w := self._window(name, t_ns)) is not None]
        if wins:
            wins = [(name, w) for name, w in wins if w.rate_hz == wins[0][1].rate_hz]
        penalties = [clip_penalty(w.raw) for _, w in wins]
        wins = [(nw, p) for nw, p in zip(wins, penalties) if p > 0]
        if not wins:
            self.pulse.reset()
            return None
        n = min(w.filtered.size for (_, w), _ in wins)
        lead = wins[0][0][1]
        stack = np.stack([w.filtered[-n:] for (_, w), _ in wins])
        acc = self._motion_reference(lead, n, t_ns)
        est = self.pulse.update(stack, lead.rate_hz, acc, lead.t_end_ns / 1e9)
        if est.hr_bpm is None:
            return None
        (name, best), penalty = wins[est.channel]
        q = est.quality * best.completeness * penalty
        v.quality["ppg"] = q
        if q >= self.min_quality:
            v.hr_bpm["ppg"], v.ppg_channel = est.hr_bpm, name
        if self._slow_refresh("ppg", t_ns):
            clean, rate_hz = self.pulse.last_clean, self.pulse.last_rate_hz
            period_s = 60.0 / est.hr_bpm
            peaks, _ = signal.find_peaks(clean, distance=max(1, int(0.6 * period_s * rate_hz)))
            self._slow["sqi_ppg"] = ppg_sqi(clean, rate_hz, est.share, peaks, period_s)
        v.sqi["ppg"] = self._slow.get("sqi_ppg", {})
        return best, n

    def _update_ecg(self, v: Vitals, t_ns: int) -> Window | None:
        w = self._window("ecg", t_ns)
        ch = self._channels["ecg"]
        if w is None or ch.resets != self._ecg_resets:
            self._ecg_resets = ch.resets
            self.r_peaks.reset()
            if w is None:
                return None
        if self.r_peaks.group_delay_s == 0.0:
            self.r_peaks.group_delay_s = _group_delay_s(_design_ecg(w.rate_hz), 12.0, w.rate_hz)
        self.r_peaks.update(w.filtered, w.rate_hz, w.t_end_ns)
        beats = self.r_peaks.beats_ns
        window_ns = round(self.window_s * 1e9)
        _, rr = self.r_peaks.rr_since(w.t_end_ns - window_ns)
        in_win = beats[beats > w.t_end_ns - window_ns]
        span_s = (in_win[-1] - in_win[0]) / 1e9 if in_win.size > 1 else 0.0
        est = hr_from_rr(rr, span_s, self.window_s)
        q = est.quality * w.completeness * clip_penalty(w.raw)
        v.quality["ecg"] = q
        if est.value is not None and q >= self.min_quality:
            v.hr_bpm["ecg"] = est.value
            if self._slow_refresh("ecg", t_ns):
                _, rr_long = self.r_peaks.rr_since(w.t_end_ns - round(HRV_WINDOW_S * 1e9))
                h = hrv(rr_long)
                self._slow["hrv"] = {"rmssd_ms": h.rmssd_ms, "sdnn_ms": h.sdnn_ms, "pnn50": h.pnn50,
                                     "n_beats": h.n_beats, "ectopic_fraction": h.ectopic_fraction}
                recent = beats > w.t_end_ns - round(RESP_WINDOW_S * 1e9)
                resp = resp_from_beats(beats[recent] / 1e9, self.r_peaks.amplitudes[recent])
                ok = resp.rate_bpm is not None and resp.quality >= self.min_quality
                self._slow["resp"] = {"rate_bpm": resp.rate_bpm if ok else None,
                                      "quality": resp.quality, "source": "ecg" if ok else None}
                t0_ns = w.t_end_ns - w.filtered.size * 1e9 / w.rate_hz
                r_idx = np.round((in_win - t0_ns) * w.rate_hz / 1e9).astype(int)
                self._slow["sqi_ecg"] = ecg_sqi(w.filtered, w.rate_hz, r_idx)
            v.hrv = dict(self._slow.get("hrv", v.hrv))
            v.resp = dict(self._slow.get("resp", v.resp))
        else:
            self._slow.pop("hrv", None)
            self._slow.pop("resp", None)
        v.sqi["ecg"] = self._slow.get("sqi_ecg", {})
        return w

    def _slow_refresh(self, what: str, t_ns: int) -> bool:
        """HRV (60 s), respiration (32 s) and the SQI details change slowly: recomputed every
        ``SLOW_REFRESH_S`` and republished in between, which keeps the hop cheap."""
        due = self._slow.get("due_" + what)
        if due is not None and 0 <= due - t_ns <= SLOW_REFRESH_S * 1e9:
            return False
        self._slow["due_" + what] = t_ns + round(SLOW_REFRESH_S * 1e9)
        return True

    def _update_pat(self, v: Vitals, ppg: tuple[Window, int]) -> None:
        """PAT of the beats not measured yet (a foot needs ``SEARCH_S[1]`` after its R peak),
        kept per beat; the window's median is published."""
        w, n = ppg
        t0_ns = w.t_end_ns - n * 1e9 / w.rate_hz
        beats = self.r_peaks.beats_ns
        ready = (beats > max(t0_ns + 0.5e9, self._pat_done_ns)) & (beats < w.t_end_ns - PAT_SEARCH_S[1] * 1e9 - 0.2e9)
        if ready.any():
            first_ns = int(beats[ready][0]) - 1e9
            k = int(max(0, (first_ns - t0_ns) * w.rate_hz / 1e9))
            seg_t0_ns = t0_ns + k * 1e9 / w.rate_hz
            at = pulse_arrival_times((beats[ready] - seg_t0_ns) / 1e9, w.raw[-n:][k:], w.rate_hz)
            self._pat_ns = np.concatenate((self._pat_ns, beats[ready]))[-256:]
            self._pat_ms = np.concatenate((self._pat_ms, at.per_beat_ms if at.per_beat_ms.size
                                           else np.full(ready.sum(), np.nan)))[-256:]
            self._pat_done_ns = int(beats[ready][-1])
        recent = self._pat_ns > w.t_end_ns - self.window_s * 1e9
        pat = self._pat_ms[recent]
        good = pat[np.isfinite(pat)]
        if good.size >= 3:
            med = float(np.median(good))
            spread = 1.4826 * float(np.median(np.abs(good - med)))
            q = pat_quality(spread, good.size / pat.size)
            if q >= self.min_quality:
                v.pat = {"ms": med, "quality": q, "n_beats": int(good.size)}

    def _reconcile(self, v: Vitals) -> None:
        sources = [(k, v.hr_bpm[k], v.quality[k]) for k in ("ecg", "ppg") if v.hr_bpm[k] is not None]
        if not sources:
            return
        if len(sources) == 2 and abs(sources[0][1] - sources[1][1]) <= RECONCILE_BPM:
            q = np.array([s[2] for s in sources])
            bpm = float(np.dot(q, [s[1] for s in sources]) / q.sum())
            v.heart_rate = {"bpm": bpm, "quality": float(q.max()), "source": "ecg+ppg"}
            return
        k, bpm, q = max(sources, key=lambda s: s[2])
        if len(sources) == 2:  # disagreement costs trust in the winner
            q *= 0.5
        if q >= self.min_quality:
            v.heart_rate = {"bpm": bpm, "quality": q, "source": k}

    def update(self, t_ns: int) -> Vitals:
        v = Vitals(t_ns=int(t_ns))
        ppg = self._update_ppg(v, t_ns)
        ecg = self._update_ecg(v, t_ns)
        if ppg is not None and ecg is not None and v.hr_bpm["ecg"] is not None:
            self._update_pat(v, ppg)
        else:
            self._pat_ns, self._pat_ms = np.empty(0, dtype=np.int64), np.empty(0)
        self._reconcile(v)

        w = self._window("eda", t_ns)
        if w is None:
            self.scrs.reset()
        else:
            est = eda_level(w.filtered, w.rate_hz)
            v.eda_us, v.quality["eda"] = est.value, est.quality * w.completeness
            if est.value is not None:
                v.scl_us = tonic_level(w.filtered)
                new = self.scrs.update(w.filtered, w.rate_hz, w.t_end_ns)
                v.scr = {"rate_per_min": self.scrs.rate_per_min(w.t_end_ns), "new": new}

        w = self._window("motion", t_ns)
        if w is not None:
            est = motion_level(w.filtered)
            v.motion_g, v.quality["accel"] = est.value, est.quality * w.completeness
        return v
