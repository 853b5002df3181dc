"""Synthetic wrist/finger signals with known heart rate, variability, pulse amplitude, skin
conductance and motion, for the physio tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ppg(duration_s: float, rate_hz: float, hr_bpm: float, rmssd_ms: float = 40.0,
        amplitude: float = 1.0, seed: int = 0, polarity: int = 1,
        breath_per_min: float | None = None, breath_depth: float = 0.2) -> np.ndarray:
    """Pulse wave: one skewed bump per beat; beat intervals alternate +-rmssd/2 so that
    successive differences equal ``rmssd_ms``. With ``breath_per_min``, breathing modulates
    the beat intervals (sinus arrhythmia, +-5 %) and the pulse amplitude (+-``breath_depth``)."""
    rng = np.random.default_rng(seed)
    n_beats = int(duration_s * hr_bpm / 60) + 4
    mean_ibi = 60.0 / hr_bpm
    alt = np.where(np.arange(n_beats) % 2 == 0, 0.5, -0.5) * rmssd_ms / 1000.0
    beats = np.cumsum(mean_ibi + alt)
    heights = np.ones(n_beats)
    if breath_per_min:
        phase = 2 * np.pi * breath_per_min / 60.0 * beats
        beats = np.cumsum((mean_ibi + alt) * (1 + 0.05 * np.sin(phase)))
        heights = 1 + breath_depth * np.sin(2 * np.pi * breath_per_min / 60.0 * beats)
    n = int(round(duration_s * rate_hz))
    x = np.zeros(n)
    idx = np.round(beats * rate_hz).astype(int)
    np.add.at(x, idx[idx < n], heights[idx < n])
    t = np.arange(int(0.8 * rate_hz)) / rate_hz
    kernel = np.exp(-((t - 0.12) / 0.06) ** 2) + 0.35 * np.exp(-((t - 0.35) / 0.08) ** 2)
    x = np.convolve(x, kernel)[:n] * amplitude
    x += 0.01 * amplitude * rng.standard_normal(n)
    return polarity * x


def eda(duration_s: float, rate_hz: float, tonic_us: float, scr_per_min: float = 0.0,
        scr_us: float = 0.3, drift_us_per_min: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    x = tonic_us + drift_us_per_min * t / 60.0
    if scr_per_min > 0:
        onsets = np.arange(5.0, duration_s, 60.0 / scr_per_min)
        for onset in onsets:
            dt = t - onset
            x = x + np.where(dt > 0, scr_us * (1 - np.exp(-dt / 0.8)) * np.exp(-dt / 4.0), 0.0)
    return x + 0.002 * rng.standard_normal(n)


def accel(duration_s: float, rate_hz: float, motion_g: float = 0.005, seed: int = 0) -> np.ndarray:
    """(N, 3) in g: gravity on z plus noise of ``motion_g``."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    a = motion_g * rng.standard_normal((n, 3))
    a[:, 2] += 1.0
    return a


def ecg(seconds: float, rate_hz: float, hr_bpm: float, rmssd_ms: float, seed: int = 0):
    """mV: narrow R waves and broad T waves, beat intervals alternating +-rmssd/2 (successive
    differences equal ``rmssd_ms``), plus noise."""
    rng = np.random.default_rng(seed)
    ibi = 60.0 / hr_bpm + np.where(np.arange(int(seconds * hr_bpm / 60) + 2) % 2, -0.5, 0.5) * rmssd_ms / 1e3
    beats = 0.3 + np.cumsum(ibi)
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    x = 0.02 * rng.standard_normal(t.size)
    for b in beats[beats < seconds]:
        x += np.exp(-0.5 * ((t - b) / 0.01) ** 2) + 0.3 * np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2)
    return x


def write_e4_subject(folder: Path, t0_s: int, segments: list[tuple[float, bool]],
                     seed: int = 0) -> list[float]:
    """An E4 CSV folder (BVP 64 Hz, EDA 4 Hz, ACC 32 Hz in 1/64 g, tags) made of
    (duration_s, aroused) segments; returns the tag times (each aroused segment's ends)."""
    folder.mkdir(parents=True, exist_ok=True)
    bvp, eda_parts, acc, tags = [], [], [], []
    t = float(t0_s)
    for k, (dur, aroused) in enumerate(segments):
        s = seed * 100 + k
        if aroused:
            bvp.append(ppg(dur, 64, 92, 18, 60.0, seed=s))
            eda_parts.append(eda(dur, 4, 3.0, scr_per_min=6, scr_us=0.4, drift_us_per_min=0.3, seed=s))
            acc.append(accel(dur, 32, 0.02, seed=s))
            tags += [t, t + dur]
        else:
            bvp.append(ppg(dur, 64, 66, 45, 100.0, seed=s))
            eda_parts.append(eda(dur, 4, 2.0, seed=s))
            acc.append(accel(dur, 32, 0.005, seed=s))
        t += dur

    def write(name, data, rate):
        data = np.atleast_2d(data.T).T
        head = ", ".join([f"{t0_s:.6f}"] * data.shape[1]) + "\n"
        head += ", ".join([f"{rate:.6f}"] * data.shape[1]) + "\n"
        fmt = "%d" if name == "ACC.csv" else "%.6f"
        with open(folder / name, "w") as f:
            f.write(head)
            np.savetxt(f, data, fmt=fmt, delimiter=",")

    write("BVP.csv", np.concatenate(bvp), 64)
    write("EDA.csv", np.concatenate(eda_parts), 4)
    write("ACC.csv", np.round(np.concatenate(acc) * 64), 32)
    np.savetxt(folder / f"tags_{folder.name}.csv", np.array(tags), fmt="%.2f")
    return tags
