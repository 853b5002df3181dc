"""Which heart rate: a belief over the whole band carried from window to window, and the
accelerometer's lines that make a spectral peak suspect.

A tracker that keeps one rate and searches near it locks: once it holds a motion harmonic it
never sees the pulse again, however strong, because the pulse is outside its search. Here the
tracker keeps a probability for every rate of the band (a grid Bayes filter, the forward pass
of a hidden Markov model):

- predict: the heart rate moves as a random walk (``WALK_BPM_PER_SQRT_S``), and with a small
  probability per second (``JUMP_PER_S``) it is anywhere in the band: no rate, resting or
  other, is assumed, and a track that went wrong can always be left;
- update: each window's cleaned spectrum multiplies the belief by ``exp(EVIDENCE * power)``
  (power normalised to the band's peak), less where the accelerometer has a line (below).

The start is uniform over 40-220 bpm, so the first window's strongest peak wins; later the
belief weighs each window's peaks against what came before. A wrong mode loses its mass to a
rival that keeps the evidence: with a peak twice the wrong one's, in a few windows.

Motion lines. Limb movement is periodic (arm swing, curls, steps); the light sees it through
paths that are not linear in the wrist's acceleration (tendons, the sensor-skin gap), so its
residual after the motion fit sits on the movement's cycle rate and its integer multiples even
where the accelerometer shows little of those multiples. ``motion_lines`` marks the
accelerometer's clear spectral lines and the multiples of the lowest one; evidence on a line
counts ``1 - LINE_DISCOUNT`` as much, and the tracker does not publish a rate that sits on a
line unless it arrived there from a checked rate (``models.ppg``).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from models.dsp import median

WALK_BPM_PER_SQRT_S = 3.0  # HR random walk: 30 bpm in 20 s is ~1.5 sigma over a 10 s window
JUMP_PER_S = 0.01  # chance per second that the rate is anywhere (re-acquisition)
EVIDENCE = 3.0  # log-likelihood of the band's strongest peak over a bin with no power, per window
LINE_DISCOUNT = 0.7
# An accelerometer line: a local peak with >= 2 % of the strongest one's power and 5x the
# spectrum's median (aperiodic movement has a broad spectrum, no lines); the multiples of the
# lines with >= 10 % are marked too.
LINE_MIN_SHARE, LINE_OVER_MEDIAN, LINE_MAIN_SHARE = 0.02, 5.0, 0.10
MOTION_FLOOR_G, MOTION_FULL_G = 0.01, 0.05  # band-passed RMS: below, no motion lines at all


class RateBelief:
    """Probability of each rate of ``grid_bpm`` (ascending, even step), carried between windows."""

    def __init__(self, grid_bpm: np.ndarray) -> None:
        self.grid_bpm = np.asarray(grid_bpm, dtype=float)
        self.step_bpm = float(self.grid_bpm[1] - self.grid_bpm[0])
        self.p: np.ndarray | None = None

    def reset(self) -> None:
        self.p = None

    def predict(self, dt_s: float) -> np.ndarray:
        """The belief ``dt_s`` after the last update (uniform before any)."""
        n = self.grid_bpm.size
        if self.p is None:
            return np.full(n, 1.0 / n)
        kernel = _walk_kernel(round(WALK_BPM_PER_SQRT_S * math.sqrt(max(dt_s, 0.25)) / self.step_bpm, 1))
        p = np.convolve(self.p, kernel, mode="same") if kernel.size < n else self.p
        jump = min(1.0, JUMP_PER_S * max(dt_s, 0.25))
        p *= (1.0 - jump) / float(np.add.reduce(p))
        p += jump / n
        return p

    def update(self, dt_s: float, log_likelihood: np.ndarray) -> np.ndarray:
        p = self.predict(dt_s)
        p *= np.exp(log_likelihood - np.maximum.reduce(log_likelihood))
        p /= float(np.add.reduce(p))
        self.p = p
        return p


@functools.lru_cache(maxsize=64)
def _walk_kernel(sigma_bins: float) -> np.ndarray:
    half = max(1, math.ceil(4 * sigma_bins))
    x = np.arange(-half, half + 1) / max(sigma_bins, 1e-3)
    k = np.exp(-0.5 * x * x)
    k /= k.sum()
    k.flags.writeable = False
    return k


def motion_lines(acc_power: np.ndarray, grid_bpm: np.ndarray, motion_g: float, halfwidth_bpm: float,
                 out_bpm: np.ndarray) -> np.ndarray:
    """Weight 0..1 per rate of ``out_bpm`` of how much a PPG peak there may be the movement,
    from the accelerometer's summed power spectrum on ``grid_bpm``: its lines and the multiples
    of its main lines, each a triangle ``halfwidth_bpm`` wide; scaled down to 0 as the limb
    comes to rest.

    The lines are looked for in the acceleration's spectrum and in the displacement's (power
    over rate^4; its lines only, as its low end, steepened, would make any bump a comb of
    multiples): the sensor-skin gap follows the displacement, and where the movement's rate
    wanders within the window its line is broad and the displacement's peak sits lower."""
    presence = min(1.0, max(0.0, (motion_g - MOTION_FLOOR_G) / (MOTION_FULL_G - MOTION_FLOOR_G)))
    if presence <= 0 or not acc_power.size or float(np.maximum.reduce(acc_power)) <= 0:
        return np.zeros(out_bpm.size)
    top_bpm = float(np.maximum.reduce(out_bpm))
    squared = grid_bpm * grid_bpm
    rates = np.sort(np.concatenate((_line_rates(acc_power, grid_bpm, top_bpm),
                                    _line_rates(acc_power / (squared * squared), grid_bpm, 0.0))))
    if rates.size == 0:
        return np.zeros(out_bpm.size)
    # Distance from each rate to the nearest line: the lines either side of it.
    i = np.minimum(rates.searchsorted(out_bpm), rates.size - 1)
    gap = np.minimum(np.abs(out_bpm - rates[i]), np.abs(out_bpm - rates[np.maximum(i - 1, 0)]))
    return np.maximum(1.0 - gap / halfwidth_bpm, 0.0) * presence


def _line_rates(power: np.ndarray, grid_bpm: np.ndarray, top_bpm: float) -> np.ndarray:
    """The spectrum's lines and the multiples (up to ``top_bpm``) of its main ones."""
    top = float(np.maximum.reduce(power))
    mid = power[1:-1]
    floor = max(LINE_MIN_SHARE * top, LINE_OVER_MEDIAN * median(power))
    is_line = (mid >= power[:-2]) & (mid > power[2:]) & (mid >= floor)
    lines = grid_bpm[1:-1][is_line]
    rates = [lines]
    for r in lines[mid[is_line] >= LINE_MAIN_SHARE * top]:
        rates.append(r * np.arange(2, int(top_bpm // r) + 2))
    return np.concatenate(rates)
