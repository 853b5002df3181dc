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

import math
from typing import ClassVar

import numpy as np

from models import iir
from models.dsp import bandpass_sos, fill_nonfinite, find_peaks, highpass_sos, lowpass_sos
from models.ecg import HRV_WINDOW_S, RPeakDetector, hr_from_ecg, hr_from_rr, hrv
from models.eda import ScrDetector, tonic_level
from models.pat import PatTracker
from models.ppg import PULSE_BAND_HZ, PulseRateTracker
from models.pulse_belief import MOTION_FLOOR_G
from models.resp import WINDOW_S as RESP_WINDOW_S
from models.resp import BeatLog, reconcile, resp_from_beats
from models.ring import FilteredChannel, TriaxialBuffer, Window
from models.sqi import ecg_sqi, ppg_sqi
from models.vitals_record import Estimate, Vitals
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
# How far apart the PPG's and the accelerometer's latest samples may be (separate chips, read
# by separate FIFO reads) for the accelerometer to still serve as the motion reference.
MOTION_REFERENCE_MARGIN_S = 0.5
# An accelerometer that streamed within this long but does not cover a PPG window leaves the
# motion unknown: the heart rate is withheld. Silent for longer, it is taken as absent (a
# device without one, or a failed one its health reports) and the PPG is read without it.
ACC_HEARD_S = 60.0
ACC_STILL_HOLD_S = 2.0  # ... unless its last 2 s, under 2 s ago, showed the limb still


def hr_from_ppg(ppg: np.ndarray, rate_hz: float) -> Estimate:
    """Heart rate from one band-passed PPG window, without motion reference or history."""
    ppg = np.asarray(ppg, dtype=float)
    if ppg.ndim != 1 or ppg.size < 3 * rate_hz or not np.isfinite(ppg.sum()):
        return Estimate(None, 0.0)
    est = PulseRateTracker().update(ppg[None, :], rate_hz, None, 0.0)
    return Estimate(est.hr_bpm, est.quality)


def eda_level(eda_us: np.ndarray, rate_hz: float, level_s: float = 2.0) -> Estimate:
    """Skin-conductance level: mean of the last ``level_s`` of the low-passed signal."""
    tail = eda_us[-max(1, round(level_s * rate_hz)) :]
    level = float(np.add.reduce(tail)) / tail.size
    if not EDA_MIN_US <= level <= EDA_MAX_US:
        return Estimate(None, 0.0)
    return Estimate(level, 1.0)


def motion_level(motion_g: np.ndarray) -> Estimate:
    """RMS of the high-passed acceleration magnitude (gravity removed), in g."""
    motion_g = np.asarray(motion_g, dtype=float)
    return Estimate(math.sqrt(float(motion_g @ motion_g) / motion_g.size), 1.0)


def clip_penalty(raw: np.ndarray) -> float:
    """1 up to 2% of samples at full scale, 0 from 10%: a clipped pulse has lost its shape."""
    raw = np.asarray(raw, dtype=float)
    if raw.size == 0:
        return 1.0
    hi, lo = np.maximum.reduce(raw), np.minimum.reduce(raw)
    # ``clipped_fraction`` inlined: this runs on every channel every hop.
    pinned = 1.0 if hi == lo else max(np.count_nonzero(raw == hi), np.count_nonzero(raw == lo)) / raw.size
    return min(1.0, max(0.0, 1.0 - (pinned - 0.02) / 0.08))


def _design_ppg(rate_hz: float) -> np.ndarray:
    if rate_hz < 10:
        raise ValueError(f"rate_hz {rate_hz} too low for heart rate, need >= 10 Hz")
    return bandpass_sos(PULSE_BAND_HZ[0], min(PULSE_BAND_HZ[1], 0.4 * rate_hz), rate_hz)


def _design_ecg(rate_hz: float) -> np.ndarray:
    if rate_hz < 50:
        raise ValueError(f"rate_hz {rate_hz} too low for QRS detection, need >= 50 Hz")
    return bandpass_sos(5.0, min(25.0, 0.4 * rate_hz), rate_hz)


def _design_eda(rate_hz: float) -> np.ndarray:
    return lowpass_sos(min(1.0, 0.4 * rate_hz), rate_hz)


def _design_motion(rate_hz: float) -> np.ndarray:
    return highpass_sos(0.3, rate_hz)


def _group_delay_s(sos: np.ndarray, f_hz: float, rate_hz: float) -> float:
    return iir.group_delay(sos, f_hz, rate_hz) / rate_hz


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
        # The three axes, band-passed like the PPG (its motion reference), in one ring.
        ch["acc"] = FilteredChannel("acc", _design_ppg, cap, keep_raw=False, rows=3)
        self._channels = ch
        self._triaxial = TriaxialBuffer(max_pending_s=cap)
        self.pulse = PulseRateTracker()
        self.r_peaks = RPeakDetector()
        self.scrs = ScrDetector()
        self._ecg_resets = 0
        self.pat = PatTracker()
        self.pulse_beats = BeatLog()
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
            aligned = self._triaxial.pair(name, block.t0_ns, block.rate_hz, samples)
            if aligned is not None:
                t0, rate, xyz = aligned
                self._channels["motion"].feed(np.sqrt(np.einsum("ij,ij->j", xyz, xyz)), t0, rate)
                self._channels["acc"].feed(xyz, t0, rate)
        elif name in self._channels and name not in ("motion", "acc"):
            self._channels[name].feed(block.samples, block.t0_ns, block.rate_hz)
        else:
            self.ignored_blocks[name] = self.ignored_blocks.get(name, 0) + 1

    def _window(self, name: str, t_ns: int, extra_s: float = 0.0) -> Window | None:
        return self._channels[name].window(t_ns, self.window_s + extra_s, 2 * self.hop_s)

    def _motion_reference(self, ppg: Window, n: int, t_ns: int) -> np.ndarray | None:
        """Accelerometer axes (n, 3) on the PPG's sample times, or None without them.

        The two chips are read apart, so their latest samples are tens of ms apart: the
        accelerometer's window reaches ``MOTION_REFERENCE_MARGIN_S`` further back, and the
        reference is None only when it does not cover the PPG's window within that margin."""
        w = self._window("acc", t_ns, extra_s=MOTION_REFERENCE_MARGIN_S)
        if w is None:
            return None
        m = w.filtered.shape[1]
        if w.rate_hz == ppg.rate_hz and m >= n and abs(w.t_end_ns - ppg.t_end_ns) < 0.05e9 / w.rate_hz:
            return w.filtered[:, m - n:].T  # sampled together: same grid, no interpolation
        t_ppg = ppg.t_end_ns - (n - np.arange(n)) * (1e9 / ppg.rate_hz)
        t_acc = w.t_end_ns - (m - np.arange(m)) * (1e9 / w.rate_hz)
        if t_acc[0] > t_ppg[0] + 1e9 / w.rate_hz or t_acc[-1] < t_ppg[-1] - MOTION_REFERENCE_MARGIN_S * 1e9:
            return None
        out = np.empty((n, 3))
        for i in range(3):
            out[:, i] = np.interp(t_ppg, t_acc, w.filtered[i])
        return out

    def _motion_unknown(self, t_ns: int) -> bool:
        """An accelerometer heard from lately that does not cover the PPG window (its reader
        fell behind, a gap restarted its ring) leaves the motion unknown, not absent - unless
        its last seconds, a moment ago, showed the limb still."""
        ring = self._channels["acc"].ring
        if ring is None or ring.t_end_ns is None or t_ns - ring.t_end_ns >= ACC_HEARD_S * 1e9:
            return False
        if t_ns - ring.t_end_ns > ACC_STILL_HOLD_S * 1e9:
            return True
        last = ring.view(ACC_STILL_HOLD_S)
        return last.size == 0 or math.sqrt(float(np.vdot(last, last)) / last.shape[-1]) >= MOTION_FLOOR_G

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
        if len(wins) == 1:
            stack = lead.filtered[None, -n:]
        else:
            stack = np.stack([w.filtered[-n:] for (_, w), _ in wins])
        acc = self._motion_reference(lead, n, t_ns)
        unknown = acc is None and self._motion_unknown(t_ns)
        est = self.pulse.update(stack, lead.rate_hz, acc, lead.t_end_ns / 1e9, unknown)
        if est.hr_bpm is None:
            return None
        (name, best), penalty = wins[est.channel]
        q = est.quality * best.completeness * penalty
        v.quality["ppg"] = q
        if q >= self.min_quality:
            v.hr_bpm["ppg"], v.ppg_channel = est.hr_bpm, name
            # Pulse peaks for respiration, from windows trusted for the heart rate only: a
            # beat series with a gap would read as one long interval.
            clean_t0_ns = lead.t_end_ns - n * 1e9 / lead.rate_hz
            self.pulse_beats.add(clean_t0_ns + self.pulse.last_peaks_s * 1e9, self.pulse.last_heights, lead.t_end_ns)
        else:
            self.pulse_beats.reset()
        self._update_ppg_resp(t_ns)
        if self._slow_refresh("ppg", t_ns):
            clean, rate_hz = self.pulse.last_clean, self.pulse.last_rate_hz
            period_s = 60.0 / est.hr_bpm
            peaks = find_peaks(clean, distance=max(1, int(0.6 * period_s * rate_hz)))
            self._slow["sqi_ppg"] = ppg_sqi(clean, rate_hz, est.share, peaks, period_s)
        v.sqi["ppg"] = self._slow.get("sqi_ppg", {})
        return best, n

    def _update_ppg_resp(self, t_ns: int) -> None:
        if self._slow_refresh("resp_ppg", t_ns):
            beats_ns, amplitudes = self.pulse_beats.since(t_ns - RESP_WINDOW_S * 1e9)
            self._slow["resp_ppg"] = resp_from_beats(beats_ns / 1e9, amplitudes)

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
        in_win = beats[int(beats.searchsorted(w.t_end_ns - window_ns, side="right")):]  # beats ascend
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
                self._slow["resp_ecg"] = resp_from_beats(beats[recent] / 1e9, self.r_peaks.amplitudes[recent])
                t0_ns = w.t_end_ns - w.filtered.size * 1e9 / w.rate_hz
                r_idx = np.round((in_win - t0_ns) * w.rate_hz / 1e9).astype(int)
                self._slow["sqi_ecg"] = ecg_sqi(w.filtered, w.rate_hz, r_idx)
            v.hrv = dict(self._slow.get("hrv", v.hrv))
        else:
            self._slow.pop("hrv", None)
            self._slow.pop("resp_ecg", None)
        v.sqi["ecg"] = self._slow.get("sqi_ecg", {})
        return w

    def _slow_refresh(self, what: str, t_ns: int, every_s: float = SLOW_REFRESH_S) -> bool:
        """HRV (60 s), respiration (32 s), PAT and the SQI details change slowly: recomputed
        every ``every_s`` and republished in between, which keeps the hop cheap."""
        due = self._slow.get("due_" + what)
        if due is not None and 0 < due - t_ns <= every_s * 1e9:
            return False
        self._slow["due_" + what] = t_ns + round(every_s * 1e9)
        return True

    def _update_pat(self, v: Vitals, ppg: tuple[Window, int], t_ns: int) -> None:
        """PAT of the beats not measured yet, kept per beat; the window's median is published.
        Measured in batches every few seconds (a beat stays measurable for most of a window):
        PAT follows blood pressure over tens of seconds, not beat to beat."""
        if self._slow_refresh("pat", t_ns, min(SLOW_REFRESH_S, 0.5 * self.window_s)):
            w, n = ppg
            self.pat.update(self.r_peaks.beats_ns, w.raw[-n:], w.rate_hz, w.t_end_ns)
            med, q, n_beats = self.pat.summary(w.t_end_ns - self.window_s * 1e9)
            ok = med is not None and q >= self.min_quality
            self._slow["pat"] = {"ms": med, "quality": q, "n_beats": n_beats} if ok else None
        if self._slow.get("pat") is not None:
            v.pat = dict(self._slow["pat"])

    def _reconcile(self, v: Vitals) -> None:
        sources = [(k, v.hr_bpm[k], v.quality[k]) for k in ("ecg", "ppg") if v.hr_bpm[k] is not None]
        if not sources:
            return
        if len(sources) == 2 and abs(sources[0][1] - sources[1][1]) <= RECONCILE_BPM:
            (_, bpm_a, q_a), (_, bpm_b, q_b) = sources
            bpm = (q_a * bpm_a + q_b * bpm_b) / (q_a + q_b)
            v.heart_rate = {"bpm": bpm, "quality": max(q_a, q_b), "source": "ecg+ppg"}
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
            self._update_pat(v, ppg, t_ns)
        else:
            self.pat.reset()
            self._slow.pop("pat", None)
        self._reconcile(v)
        if ppg is None:
            self.pulse_beats.reset()
            self._slow.pop("resp_ppg", None)
        sources = {k: self._slow[f"resp_{k}"] for k in ("ecg", "ppg") if f"resp_{k}" in self._slow}
        if sources:
            v.resp = reconcile(sources, self.min_quality)

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
