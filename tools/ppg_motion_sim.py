"""Wrist PPG and accelerometer under motion with a known heart rate: the stress cases of
``tools.bench.hr_stress``.

This generator is separate from ``sensors.emulated.physiology`` on purpose: that simulator's
motion artifact is a two-tap linear filter of the acceleration plus one squared term - the same
family as the tracker's motion fit (``models.ppg.remove_motion``), which would remove it almost
exactly. Here the light sees the limb's motion through three paths the fit can only partly
model:

- blood shifted by the acceleration along the forearm, through the tissue's first-order
  response (time constant 80-250 ms, not the fit's 32 ms lag);
- the sensor-skin gap, which follows the *displacement* (the acceleration low-passed twice)
  and changes the light through a saturating (tanh) law;
- tendons and muscles under the sensor, which pull once per movement cycle: a half-wave
  pulse locked to the movement's phase, not a linear function of the wrist's acceleration.

The artifact's size is set against the pulse per case (ratio of RMS during motion); strap
tightness drifts slowly, so the coupling varies along a recording. The pulse has a systolic
and a reflected wave, beat-to-beat variation, respiratory amplitude modulation and baseline
drift; the accelerometer has its own noise and runs at 50 Hz (the device's default) on its
own sample grid, the PPG at 100 Hz.

Everything is a function of the case and a seed; the truth over a window is the beat phase
advanced across it (beats per minute over the window), as SPC 2015's ECG-derived reference is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PPG_RATE_HZ = 100.0
ACC_RATE_HZ = 50.0


@dataclass(frozen=True)
class Motion:
    """One stretch of movement from ``t0_s`` to ``t1_s`` (1 s fade in and out).

    ``kind``: "swing" (walking/running arm swing: strong 2nd harmonic, the step), "exercise"
    (curls, forearm rotation: fundamental-heavy) or "fidget" (aperiodic 0.3-3 Hz gestures).
    ``cycles_per_min``: knots (t_s, cycles/min) of the movement's fundamental, linear in between.
    ``artifact_ratio``: RMS of the motion artifact over the pulse's RMS.
    """

    t0_s: float
    t1_s: float
    kind: str
    cycles_per_min: tuple[tuple[float, float], ...] = ((0.0, 80.0),)
    accel_g: float = 0.5
    artifact_ratio: float = 4.0


@dataclass(frozen=True)
class StressCase:
    name: str
    seconds: float
    hr_bpm: tuple[tuple[float, float], ...]  # knots (t_s, bpm), linear in between
    motion: tuple[Motion, ...] = field(default_factory=tuple)
    why: str = ""


def _knots(t: np.ndarray, knots) -> np.ndarray:
    k = np.asarray(knots, dtype=float)
    return np.interp(t, k[:, 0], k[:, 1])


def _smooth_noise(rng, n: int, rate_hz: float, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Unit-RMS Gaussian noise band-limited to ``lo_hz``..``hi_hz`` (FFT brick wall)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate_hz)
    spec[(f < lo_hz) | (f > hi_hz)] = 0.0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def _lowpass(x: np.ndarray, rate_hz: float, tau_s: float) -> np.ndarray:
    """First-order low-pass (time constant ``tau_s``) along axis 0, causal."""
    a = np.exp(-1.0 / (tau_s * rate_hz))
    y = np.empty_like(x)
    acc = np.zeros(x.shape[1:])
    for i in range(x.shape[0]):  # offline generator: clarity over speed
        acc = a * acc + (1 - a) * x[i]
        y[i] = acc
    return y


def _fade(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    up = np.clip(t - t0, 0.0, 1.0)
    down = np.clip(t1 - t, 0.0, 1.0)
    return np.minimum(up, down) * ((t >= t0) & (t <= t1))


class StressRecording:
    """One realisation of a case: ``ppg`` (counts, 100 Hz), ``acc`` ((n, 3) g, 50 Hz),
    ``truth_bpm(t_end_s, window_s)``."""

    def __init__(self, case: StressCase, seed: int) -> None:
        self.case, self.seed = case, seed
        rng = np.random.default_rng([seed, sum(map(ord, case.name))])
        fs = PPG_RATE_HZ
        n = round(case.seconds * fs)
        t = np.arange(n) / fs
        self.t_s = t
        # Heart: rate knots plus beat-to-beat variation (RR ~2-3 % over a few beats).
        hr = _knots(t, case.hr_bpm) * (1 + 0.025 * _smooth_noise(rng, n, fs, 0.02, 0.4))
        self._beat_phase = np.concatenate(([0.0], np.cumsum(hr[:-1] / 60.0 / fs)))
        u = self._beat_phase % 1.0
        reflect = rng.uniform(0.25, 0.55)
        pulse = np.exp(-0.5 * ((u - 0.15) / 0.07) ** 2) + reflect * np.exp(-0.5 * ((u - 0.45) / 0.10) ** 2)
        breath = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t + rng.uniform(0, 6.3))
        pulse = (pulse - pulse.mean()) * breath
        pulse /= np.sqrt(np.mean(pulse**2))
        # Motion: acceleration (g) on the PPG's grid, and the artifact it makes.
        acc = np.zeros((n, 3))
        artifact = np.zeros(n)
        for seg in case.motion:
            a, art = self._motion(seg, t, rng)
            acc += a
            artifact += art
        strap = 1 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(30, 60) + rng.uniform(0, 6.3))
        drift = 0.5 * _smooth_noise(rng, n, fs, 0.005, 0.1)
        light = pulse + strap * artifact + drift + 0.08 * rng.standard_normal(n)
        # Light falls as blood volume rises; counts like a MAX30102's (AC ~1 % of DC).
        self.ppg = 2.0e5 * (1.0 - 0.004 * light)
        # The accelerometer: its own 50 Hz grid, gravity, sensor noise.
        gravity = np.array([0.1, -0.2, 0.97])
        t_acc = np.arange(round(case.seconds * ACC_RATE_HZ)) / ACC_RATE_HZ
        self.acc = np.column_stack([np.interp(t_acc, t, acc[:, i]) for i in range(3)]) + gravity
        self.acc += 0.004 * rng.standard_normal(self.acc.shape)

    def _motion(self, seg: Motion, t: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        fs = PPG_RATE_HZ
        n = t.size
        env = _fade(t, seg.t0_s, seg.t1_s)
        if seg.kind == "fidget":
            dyn = np.column_stack([_smooth_noise(rng, n, fs, 0.3, 3.0) for _ in range(3)])
            dyn *= rng.uniform(0.5, 1.0, 3)
            tendon = np.zeros(n)
        else:
            rate = _knots(t, seg.cycles_per_min) / 60.0 * (1 + 0.02 * _smooth_noise(rng, n, fs, 0.02, 0.3))
            phase = 2 * np.pi * np.cumsum(rate) / fs
            weights = [1.0, 0.9, 0.35, 0.2] if seg.kind == "swing" else [1.0, 0.35, 0.2, 0.08]
            dyn = np.zeros((n, 3))
            for h, w in enumerate(weights, start=1):
                amp = w * np.abs(rng.normal(1.0, 0.3, 3))
                dyn += amp * np.sin(h * phase[:, None] + rng.uniform(0, 2 * np.pi, 3))
            tendon = np.maximum(0.0, np.sin(phase + rng.uniform(0, 2 * np.pi))) ** 1.5
            tendon -= tendon.mean()
        dyn *= seg.accel_g / np.sqrt(np.mean(np.sum(dyn**2, axis=1)) + 1e-12)
        dyn *= env[:, None]
        # Three paths from motion to light (module docstring).
        forearm = rng.normal(0, 1, 3)
        forearm /= np.linalg.norm(forearm)
        blood = _lowpass((dyn @ forearm)[:, None], fs, rng.uniform(0.08, 0.25))[:, 0]
        disp = _lowpass(_lowpass(dyn, fs, 0.3), fs, 0.3)
        gap_dir = rng.normal(0, 1, 3)
        gap = disp @ (gap_dir / np.linalg.norm(gap_dir))
        on = env > 0.5
        if on.any():
            gap = np.tanh(2.0 * gap / (np.std(gap[on]) + 1e-12))
        mix = rng.dirichlet([2.0, 2.0, 2.0 if seg.kind != "fidget" else 1e-3])
        parts = [blood, gap, tendon * env]
        artifact = np.zeros(n)
        for w, p in zip(mix, parts):
            rms = np.sqrt(np.mean(p[on] ** 2)) if on.any() else 0.0
            if rms > 0:
                artifact += w * p / rms
        rms = np.sqrt(np.mean(artifact[on] ** 2)) if on.any() else 0.0
        if rms > 0:
            artifact *= seg.artifact_ratio / rms * env
        return dyn, artifact

    def truth_bpm(self, t_end_s: float, window_s: float) -> float:
        """Beats per minute over the window ending at ``t_end_s``."""
        fs = PPG_RATE_HZ
        b = min(round(t_end_s * fs), self._beat_phase.size - 1)
        a = max(0, b - round(window_s * fs))
        return 60.0 * (self._beat_phase[b] - self._beat_phase[a]) / ((b - a) / fs)


def _swing(t0, t1, spm, accel_g=0.6, ratio=4.0):
    """Running/walking arm swing at ``spm`` steps/min: the arm's cycle is half the step rate."""
    knots = tuple((t, s / 2.0) for t, s in spm)
    return Motion(t0, t1, "swing", knots, accel_g, ratio)


STRESS_CASES: tuple[StressCase, ...] = (
    StressCase("rest_45", 150, ((0, 45), (150, 47)),
               (Motion(40, 55, "fidget", accel_g=0.2, artifact_ratio=2.0),
                Motion(100, 110, "fidget", accel_g=0.3, artifact_ratio=3.0)),
               "bradycardia at rest, two short gestures"),
    StressCase("run_200", 150, ((0, 185), (60, 200), (150, 200)),
               (_swing(0, 150, ((0, 180), (150, 184)), 0.8, 4.0),),
               "near-maximal rate while running; the step line sits 15-20 bpm below"),
    StressCase("steps_up_down", 240, ((0, 60), (30, 60), (45, 90), (75, 90), (95, 120), (125, 120),
                                      (145, 150), (175, 150), (190, 180), (205, 180), (225, 150), (240, 150)),
               (_swing(20, 240, ((20, 110), (100, 140), (170, 165), (240, 165)), 0.6, 4.0),),
               "30 bpm steps within 15-20 s, up to 180 and down again, while walking then running"),
    StressCase("fast_steps", 180, ((0, 70), (40, 70), (50, 100), (90, 100), (100, 130), (140, 130),
                                   (150, 100), (180, 100)),
               (Motion(30, 180, "exercise", ((30, 50), (180, 60)), 0.5, 3.0),),
               "30 bpm steps within 10 s during arm exercise"),
    StressCase("cadence_sweeps_hr", 200, ((0, 128), (200, 134)),
               (_swing(0, 200, ((0, 100), (200, 170)), 0.6, 4.0),),
               "the step line sweeps 100-170 /min across a steady 130 bpm"),
    StressCase("hr_crosses_cadence", 200, ((0, 100), (200, 175)),
               (_swing(0, 200, ((0, 160), (200, 162)), 0.7, 5.0),),
               "heart rate rises 100-175 across a steady 160 /min step line"),
    StressCase("intermittent", 200, ((0, 80), (40, 80), (60, 115), (90, 110), (120, 90), (150, 130), (200, 100)),
               (Motion(20, 40, "exercise", ((0, 40),), 0.5, 5.0),
                Motion(60, 75, "fidget", accel_g=0.5, artifact_ratio=4.0),
                Motion(95, 125, "exercise", ((0, 65),), 0.6, 5.0), Motion(150, 165, "swing", ((0, 70),), 0.6, 4.0)),
               "still and moving in turns: curls, gestures, a short walk"),
    StressCase("start_on_cadence", 150, ((0, 160), (150, 172)),
               (_swing(0, 150, ((0, 160), (150, 162)), 0.7, 4.0),),
               "the tracker starts while running, the heart rate on the step line"),
    StressCase("forearm_climb", 240, ((0, 108), (200, 173), (240, 170)),
               (Motion(0, 240, "exercise", ((0, 55), (120, 75), (240, 90)), 0.7, 6.0),),
               "forearm exercise with the rate climbing 108-173 (the failure seen on another protocol)"),
)
