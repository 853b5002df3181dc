"""A subject for the emulated chips: coherent PPG, ECG, skin conductance and acceleration.

Every signal is a pure function of (seed, time). Random schedules (beat-rate jitter, SCR
onsets, limb jerks) and noise are drawn in fixed ``CHUNK_S`` chunks from a generator seeded by
(seed, stream, chunk index), and heart and breath phases come from integrals of the scenario
tabulated once (``RateIntegral``), so no chunk depends on another. A value at time t is the
same whichever thread asks, in whatever order or batch, and chunks far behind the latest
request can be dropped and rebuilt identically.

The physiology follows the usual textbook couplings: beats are where an integral-pulse-
frequency-modulation phase crosses integers (respiratory sinus arrhythmia, a 0.1 Hz Mayer
wave, random variation); the ECG is a sum of Gaussian P, Q, R, S, T waves (McSharry et al.
2003 in the time domain) with QT scaled by sqrt(RR) (Bazett); the PPG pulse is a systolic plus
a reflected diastolic Gaussian, arriving a pulse-arrival time after the R peak; SCRs have a
1-3 s rise and an exponential recovery (Boucsein, Electrodermal Activity, 2012).
"""

from __future__ import annotations

import math

import numpy as np

from sensors.emulated.scenario import (
    CHUNK_S,
    FLAG_FIELDS,
    RateIntegral,
    Scenario,
    SeededTimeline,
    State,
    effective_arousal,
    effective_hr_bpm,
    sum_events,
    thinned_onsets,
)

__all__ = ["AMBIENT_LIGHT", "CHUNK_S", "LEADS_OFF_MV", "PhysiologySimulator", "Scenario", "State"]

#: ECG at the electrodes with a lead off: the AD8232's DC leads-off pull-up drags the open
#: input towards its supply, far outside the +-~15 mV the in-amp can take, so its output rails.
LEADS_OFF_MV = 500.0
#: Light at the photodiode with no finger: room light through the window, no LED return.
AMBIENT_LIGHT = 0.02
PPG_DC = {"red": 0.6, "ir": 1.0, "green": 0.35}
# Red pulsates about half as much as IR at SpO2 ~97 % (ratio R ~0.5); green more (shallow,
# capillary-rich path).
_PI_SCALE = {"red": 0.5, "ir": 1.0, "green": 1.6}
# P, Q, R, S waves relative to the R peak: (amplitude / R, centre s, width s).
_PQRS = ((0.1, -0.17, 0.022), (-0.1, -0.03, 0.008), (1.0, 0.0, 0.009), (-0.22, 0.03, 0.009))
_BEAT_GRID_S = 0.01
_BLOCK = 1 << 15
# Std of the derivative of a Catmull-Rom interpolation of unit white nodes, per node spacing
# (measured numerically); scales the random part of the beat phase to a wanted RR std.
_CR_SLOPE_SD = 1.527
_RR_JITTER_SPACING_S = 4.0
_SCR_LOOKBACK_S = 75.0
_JERK_MAX_S = 0.8


def _pat_s(cols: dict) -> np.ndarray:
    """R-peak to PPG foot: ~255 ms at rest, ~170 ms at full arousal (stiffer, faster arteries)."""
    return 0.255 - 0.085 * effective_arousal(cols)


def _times(t_s) -> np.ndarray:
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"t_s must be a 1-D array of times in seconds, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("t_s must hold finite times in seconds (found NaN or inf)")
    return t


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class PhysiologySimulator:
    """Ground-truthed PPG, ECG, EDA and acceleration of one simulated subject.

    Times are seconds on the caller's clock; every method takes an array (or a scalar) of
    sample times, in any order and batching. ``ectopic_prob`` is the chance that a beat comes
    early (by 25-40 % of the RR interval), followed by a compensatory pause.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        seed: int = 0,
        *,
        ectopic_prob: float = 0.0,
        history_s: float = 120.0,
    ) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not 0.0 <= ectopic_prob <= 0.5:
            raise ValueError(f"ectopic_prob must be in [0, 0.5], got {ectopic_prob!r}")
        if not history_s >= _SCR_LOOKBACK_S + 2 * CHUNK_S:
            raise ValueError(
                f"history_s must be at least {_SCR_LOOKBACK_S + 2 * CHUNK_S:g} s, got {history_s!r}"
            )
        self.scenario = Scenario.rest() if scenario is None else scenario
        self.seed = int(seed)
        self.ectopic_prob = float(ectopic_prob)
        self._random = SeededTimeline(self.seed, float(history_s))
        self._beat_phase = RateIntegral(self.scenario, lambda c: effective_hr_bpm(c) / 60.0)
        self._breath_phase = RateIntegral(self.scenario, lambda c: c["resp_rate_bpm"] / 60.0)
        rng = np.random.default_rng([self.seed, 0])
        self.r_peak_mv = rng.uniform(1.05, 1.4)
        self.scl_base_us = rng.uniform(3.0, 4.5)
        self.mayer_hz = rng.uniform(0.085, 0.11)
        self._mayer_rad = rng.uniform(0, 2 * np.pi)
        self.cadence_hz = rng.uniform(1.65, 2.1)
        walk_amp = np.abs(rng.normal(1.0, 0.4, (3, 4))) * [1.0, 0.45, 0.25, 0.12]
        swing_amp = np.abs(rng.normal(0.35, 0.1, 3))
        norm = math.sqrt((np.sum(walk_amp**2) + np.sum(swing_amp**2)) / 2)
        self._walk_amp, self._swing_amp = walk_amp / norm, swing_amp / norm
        self._walk_rad = rng.uniform(0, 2 * np.pi, (3, 4))
        self._swing_rad = rng.uniform(0, 2 * np.pi, 3)
        self._gravity_dir = np.array([rng.normal(0, 0.2), rng.normal(0, 0.2), 1.0])
        # Motion artifact: each wavelength sees the limb's acceleration through its own
        # two-tap (0 and 40 ms) transfer, a variation on a shared subject-specific one.
        taps = rng.normal(0, 1, (3, 2))
        taps *= 0.07 / np.linalg.norm(taps)
        self._artifact_taps = taps[None] * (1 + 0.25 * rng.normal(0, 1, (3, 3, 2)))
        u = rng.normal(0, 1, 3)
        self._artifact_dir = u / np.linalg.norm(u)
        self._artifact_square = 0.02 * (1 + 0.2 * rng.normal(0, 1, 3))

    def breath_phase(self, t_s: np.ndarray) -> np.ndarray:
        """The breathing cycle's phase (in cycles) at ``t_s``: its sine is the breath."""
        return self._breath_phase(t_s)

    # -- heart ------------------------------------------------------------------------------

    def _phase(self, t: np.ndarray) -> np.ndarray:
        """Beat phase in cycles: beat n is where it crosses n (IPFM)."""
        cols = self.scenario.columns_at(t)
        f0 = effective_hr_bpm(cols) / 60.0
        rr_rel_sd = np.minimum(
            cols["hrv_ms"] * 1e-3 * (1 - 0.6 * effective_arousal(cols)) * f0, 0.15
        )
        breath_hz = cols["resp_rate_bpm"] / 60.0
        # Variance of RR split: 60 % RSA (the HF peak dominates at rest), 15 % Mayer wave,
        # 25 % random; each term is the integral of f0 * m(t) for a relative rate modulation m.
        sd = f0 * rr_rel_sd
        rsa = (
            sd
            * math.sqrt(1.2)
            / (2 * np.pi * breath_hz)
            * np.cos(2 * np.pi * self._breath_phase(t))
        )
        mayer = sd * math.sqrt(0.3) / (2 * np.pi * self.mayer_hz)
        mayer *= np.cos(2 * np.pi * self.mayer_hz * t + self._mayer_rad)
        jitter = sd * 0.5 * _RR_JITTER_SPACING_S / _CR_SLOPE_SD
        jitter *= self._random.smooth("rr_jitter", t, _RR_JITTER_SPACING_S)[:, 0]
        return self._beat_phase(t) - rsa - mayer + jitter

    def _make_beats(self, rng, k: int) -> np.ndarray:
        n = round(CHUNK_S / _BEAT_GRID_S)
        grid = (k * n + np.arange(n + 1)) * _BEAT_GRID_S
        ph = self._phase(grid)
        whole = np.floor(ph)
        i = np.nonzero(whole[1:] > whole[:-1])[0]
        dph = ph[i + 1] - ph[i]
        beats = grid[i] + (whole[i + 1] - ph[i]) / dph * _BEAT_GRID_S
        early = rng.random(len(beats)) < self.ectopic_prob
        frac = rng.uniform(0.25, 0.4, len(beats))
        return beats - np.where(early, frac * _BEAT_GRID_S / dph, 0.0)

    def _beats_in(self, t0_s: float, t1_s: float) -> np.ndarray:
        # One chunk earlier too: a premature beat may move across a chunk boundary.
        ks = range(math.floor(t0_s / CHUNK_S) - 1, math.floor(t1_s / CHUNK_S) + 1)
        chunks = [self._random.chunk("beats", k, (k + 1) * CHUNK_S, self._make_beats) for k in ks]
        b = np.concatenate(chunks)
        return b[(b >= t0_s) & (b < t1_s)]

    def beats(self, t0_s: float, t1_s: float) -> np.ndarray:
        """R-peak times in [t0_s, t1_s)."""
        b = self._beats_in(float(t0_s), float(t1_s))
        self._random.note_request(float(t1_s))
        return b

    def hr_bpm(self, t0_s: float, t1_s: float) -> float:
        """Mean heart rate over [t0_s, t1_s): 60 / mean RR of the beats inside."""
        b = self.beats(t0_s, t1_s)
        if len(b) < 2:
            raise ValueError(f"window [{t0_s}, {t1_s}) s holds {len(b)} beat(s); need at least 2")
        return 60.0 * (len(b) - 1) / (b[-1] - b[0])

    # -- signals ----------------------------------------------------------------------------
    def _blockwise(self, fn, t_s):
        """Long requests in blocks, so caches stay small and old chunks are dropped as we go."""
        t = _times(t_s)
        if len(t) == 0:
            return fn(t)
        parts = []
        for i in range(0, len(t), _BLOCK):
            block = t[i : i + _BLOCK]
            parts.append(fn(block))
            self._random.note_request(float(block.max()))
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)

    def ecg_mv(self, t_s) -> np.ndarray:
        """Lead-II-like ECG at the electrodes, mV. Leads off: ``LEADS_OFF_MV`` (railing, flat)."""
        return self._blockwise(self._ecg_mv, t_s)

    def ppg(self, t_s) -> dict[str, np.ndarray]:
        """Relative light at the photodiode for "red", "ir", "green" (IR ~1.0 with a finger on).

        Blood volume absorbs light, so each pulse is a dip (systolic trough, dicrotic notch).
        Finger off: ``AMBIENT_LIGHT`` on every channel plus sensor noise.
        """
        return self._blockwise(self._ppg, t_s)

    def eda_us(self, t_s) -> np.ndarray:
        """Skin conductance, uS: tonic level plus SCRs plus noise; exactly 0 without contact."""
        return self._blockwise(self._eda_us, t_s)

    def accel_g(self, t_s) -> np.ndarray:
        """Acceleration in g, shape (N, 3): gravity along the posture, limb motion, sensor noise."""
        return self._blockwise(self._accel_g, t_s)

    def _ecg_mv(self, t: np.ndarray) -> np.ndarray:
        if len(t) == 0:
            return np.zeros(0)
        cols = self.scenario.columns_at(t)
        b = self._beats_in(t.min() - 5.0, t.max() + 5.0)
        rr = np.diff(b, prepend=2 * b[0] - b[1])
        j = np.searchsorted(b, t, side="right") - 1
        breath = np.sin(2 * np.pi * self._breath_phase(t))
        ecg = np.zeros(len(t))
        for o in (0, 1):
            i = np.clip(j + o, 0, len(b) - 1)
            tau, sq = t - b[i], np.sqrt(rr[i])
            for amp, at_s, width_s in _PQRS:
                ecg += amp * np.exp(-0.5 * ((tau - at_s) / width_s) ** 2)
            ecg += 0.27 * np.exp(-0.5 * ((tau - 0.27 * sq) / (0.045 * sq)) ** 2)  # T: QT ~ sqrt(RR)
        # Breathing turns the heart's electrical axis: QRS amplitude and baseline follow it.
        ecg *= self.r_peak_mv * (1 + 0.05 * breath)
        ecg += 0.08 * breath + 0.04 * self._random.smooth("ecg_wander", t, 4.0)[:, 0]
        ecg += 0.008 * self._random.hold("ecg_noise", t)[:, 0] + 0.004 * np.sin(2 * np.pi * 50 * t)
        # Muscle (EMG) and electrode-skin motion artifacts grow with limb motion.
        emg = 0.08 * self._random.hold("emg", t)[:, 0]
        ecg += cols["motion_g"] * (
            emg + 0.3 * self._random.smooth("electrode_motion", t, 0.3)[:, 0]
        )
        return np.where(cols["leads_on"], ecg, LEADS_OFF_MV)

    def _pulse_volume(self, t: np.ndarray) -> np.ndarray:
        """Normalised arterial blood volume under the finger (~1 at the systolic peak)."""
        b = self._beats_in(t.min() - 6.0, t.max() + 6.0)
        arrive = b + _pat_s(self.scenario.columns_at(b))
        arrive += 0.004 * np.sin(2 * np.pi * self._breath_phase(b))
        rr_next = np.diff(b, append=2 * b[-1] - b[-2])
        rr_prev = np.diff(b, prepend=2 * b[0] - b[1])
        # Frank-Starling: a short filling time gives a weak beat, a long pause a strong one.
        strength = np.clip(rr_prev / rr_next, 0.3, 1.3) ** 0.7
        j = np.searchsorted(arrive, t, side="right") - 1
        v = np.zeros(len(t))
        for o in (-1, 0, 1):
            i = np.clip(j + o, 0, len(b) - 1)
            u = (t - arrive[i]) / rr_next[i]
            # The foot (tangent at max upslope meets the baseline) sits at u = 0.14 - 2 * 0.07 = 0.
            systolic = np.exp(-0.5 * ((u - 0.14) / 0.07) ** 2)
            v += strength[i] * (systolic + 0.45 * np.exp(-0.5 * ((u - 0.42) / 0.10) ** 2))
        return v

    def _dynamic_g(self, t: np.ndarray, motion_g: np.ndarray) -> np.ndarray:
        """Limb acceleration without gravity or sensor noise, (N, 3), RMS ~ motion_g."""
        walking = _smoothstep((motion_g - 0.1) / 0.25)[:, None]
        cycles = self.cadence_hz * t + 0.15 * self._random.smooth("cadence", t, 5.0)[:, 0]
        step = 2 * np.pi * cycles[:, None]
        walk = self._swing_amp * np.sin(0.5 * step + self._swing_rad)
        for h in range(4):
            walk += self._walk_amp[:, h] * np.sin((h + 1) * step + self._walk_rad[:, h])
        tremor = self._random.smooth("tremor", t, 0.15, 3)
        dyn = motion_g[:, None] * (walking * walk + (1 - walking) * 0.7 * tremor)
        return dyn + self._jerks(t)

    def _make_jerks(self, rng, k: int) -> dict[str, np.ndarray]:
        def rate(c):  # occasional limb movements while not walking
            m = c["motion_g"]
            return 10 / 60 * np.minimum(m / 0.05, 1) * (1 - _smoothstep((m - 0.1) / 0.25))

        t, cols, n = thinned_onsets(self.scenario, rng, k, 10 / 60, rate)
        direction = rng.normal(0, 1, (n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-12
        return {
            "t": t,
            "amp": cols["motion_g"] * rng.uniform(2.0, 4.0, n),
            "dur": rng.uniform(0.3, _JERK_MAX_S, n),
            "hz": rng.uniform(2.0, 4.0, n),
            "dir": direction,
        }

    def _jerks(self, t: np.ndarray) -> np.ndarray:
        ev = self._random.events("jerk", t.min() - _JERK_MAX_S, t.max(), self._make_jerks)

        def shape(tau, i):
            d = ev["dur"][i]
            envelope = (tau < d) * ev["amp"][i] * np.sin(np.pi * tau / d) ** 2
            return (envelope * np.sin(2 * np.pi * ev["hz"][i] * tau))[:, None] * ev["dir"][i]

        return sum_events(t, ev["t"], _JERK_MAX_S, shape, (len(t), 3))

    def _gravity_g(self, t: np.ndarray) -> np.ndarray:
        g = self._gravity_dir + 0.25 * self._random.smooth("posture", t, 30.0, 3)
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    def _ppg(self, t: np.ndarray) -> dict[str, np.ndarray]:
        if len(t) == 0:
            return {name: np.zeros(0) for name in PPG_DC}
        cols = self.scenario.columns_at(t)
        breath = 2 * np.pi * self._breath_phase(t)
        # Vasoconstriction with arousal halves the pulse; breathing modulates its amplitude
        # (stroke volume) and the baseline (venous return).
        pi = 0.015 * (1 - 0.55 * effective_arousal(cols)) * (1 + 0.12 * np.sin(breath))
        v = self._pulse_volume(t)
        base = 1 + 0.003 * np.sin(breath + 0.6)
        base += 0.006 * self._random.smooth("ppg_drift", t, 20.0)[:, 0]
        dyn = self._dynamic_g(t, cols["motion_g"])
        t_lag = t - 0.04
        dyn_lag = self._dynamic_g(t_lag, self.scenario.columns_at(t_lag)["motion_g"])
        squared = (dyn @ self._artifact_dir) ** 2
        noise = self._random.hold("ppg_noise", t, 3)
        out = {}
        for c, name in enumerate(PPG_DC):
            artifact = dyn @ self._artifact_taps[c, :, 0] + dyn_lag @ self._artifact_taps[c, :, 1]
            artifact += self._artifact_square[c] * squared
            light = PPG_DC[name] * (base + artifact) * (1 - _PI_SCALE[name] * pi * v)
            out[name] = np.where(cols["finger_on"], light, AMBIENT_LIGHT) + 3e-4 * noise[:, c]
        return out

    def _make_scrs(self, rng, k: int) -> dict[str, np.ndarray]:
        def rate(c):  # ~1.5/min at rest, ~10/min fully aroused
            return (1.5 + 8.5 * effective_arousal(c)) / 60

        t, cols, n = thinned_onsets(self.scenario, rng, k, 12 / 60, rate)
        median_us = 0.15 * (1 + 2 * effective_arousal(cols))
        amp = np.clip(median_us * np.exp(0.6 * rng.standard_normal(n)), 0.05, 1.0)
        return {"t": t, "amp": amp, "rise": rng.uniform(1, 3, n), "tau": rng.uniform(5, 10, n)}

    def _scr_us(self, t: np.ndarray) -> np.ndarray:
        ev = self._random.events("scr", t.min() - _SCR_LOOKBACK_S, t.max(), self._make_scrs)

        def shape(tau, i):
            rise, amp = ev["rise"][i], ev["amp"][i]
            up = amp * 0.5 * (1 - np.cos(np.pi * np.minimum(tau / rise, 1.0)))
            return np.where(tau < rise, up, amp * np.exp(-(tau - rise) / ev["tau"][i]))

        return sum_events(t, ev["t"], _SCR_LOOKBACK_S, shape, len(t))

    def _scl_us(self, t: np.ndarray, cols: dict) -> np.ndarray:
        drift = np.exp(0.15 * self._random.smooth("scl_drift", t, 90.0)[:, 0])
        return self.scl_base_us * (1 + 0.8 * effective_arousal(cols)) * drift

    def _eda_us(self, t: np.ndarray) -> np.ndarray:
        if len(t) == 0:
            return np.zeros(0)
        cols = self.scenario.columns_at(t)
        eda = self._scl_us(t, cols) + self._scr_us(t)
        eda += 0.004 * self._random.hold("eda_noise", t)[:, 0]
        return np.where(cols["skin_contact"], np.maximum(eda, 0.0), 0.0)

    def _accel_g(self, t: np.ndarray) -> np.ndarray:
        if len(t) == 0:
            return np.zeros((0, 3))
        motion = self.scenario.columns_at(t)["motion_g"]
        noise = 0.003 * self._random.hold("accel_noise", t, 3)
        return self._gravity_g(t) + self._dynamic_g(t, motion) + noise

    # -- ground truth -----------------------------------------------------------------------
    def scr_onsets(self, t0_s: float, t1_s: float) -> np.ndarray:
        """SCR onset times in [t0_s, t1_s) (physiological; also while the skin has no contact)."""
        on = self._random.events("scr", float(t0_s), float(t1_s), self._make_scrs)["t"]
        self._random.note_request(float(t1_s))
        return on[(on >= t0_s) & (on < t1_s)]

    def truth(self, t_s) -> dict:
        """What the body does at ``t_s`` (scalar -> floats, array -> arrays), before any sensor.

        hr_bpm: instantaneous rate of the beat phase; eda_us = scl_us + SCRs (regardless of
        contact); motion_g: RMS of the dynamic acceleration over the 2 s around t; arousal:
        effective (pain included); pat_s: R-peak to PPG foot; perfusion_index: IR AC/DC.
        """
        scalar = np.ndim(t_s) == 0
        t = _times(t_s)
        cols = self.scenario.columns_at(t)
        d = 1e-3
        hr = 60.0 * (self._phase(t + d) - self._phase(t - d)) / (2 * d)
        scl = self._scl_us(t, cols)
        window = (t[:, None] + np.linspace(-1.0, 1.0, 101)).ravel()
        dyn = self._dynamic_g(window, self.scenario.columns_at(window)["motion_g"])
        motion = np.sqrt(np.mean(np.sum(dyn**2, axis=1).reshape(len(t), -1), axis=1))
        arousal = effective_arousal(cols)
        out = {"hr_bpm": hr, "eda_us": scl + self._scr_us(t), "scl_us": scl, "motion_g": motion}
        out.update({k: cols[k] for k in ("resp_rate_bpm", "pain", *FLAG_FIELDS)})
        out.update(
            arousal=arousal, pat_s=_pat_s(cols), perfusion_index=0.015 * (1 - 0.55 * arousal)
        )
        self._random.note_request(float(t.max()))
        if scalar:
            return {k: (bool(v[0]) if v.dtype == bool else float(v[0])) for k, v in out.items()}
        return out

    @property
    def cached_chunks(self) -> int:
        """How many chunks are held in memory (bounded by the history window)."""
        return len(self._random)
