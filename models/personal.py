"""The per-patient mapping from the fused score to the patient's own ratings (NRS 0-10).

People differ in how their face and autonomic system show pain; their own rating is the
reference standard. With a handful of ratings a free line would chase noise, so the fit is a
ridge regression shrunk towards the identity (the population mapping): the prior counts as
``prior_strength`` ratings lying on the identity, and a few ratings move the line only as far
as they agree with each other.

Ratings may shift and scale the device's reading, never flatten or pin it: the mapped value
stays within ``MAX_SHIFT`` of the raw score over the whole 0..10 range (so the slope stays in
[``MIN_SLOPE``, ``MAX_SLOPE``]), and how much of that room the ratings get grows with their
number (n / (n + prior_strength)) and, for the slope, with the spread of the scores they were
given at (a slope from ratings all taken at rest is a guess). Three ratings of 10 at rest can
no longer make every reading an alarm, nor ten ratings of 0 during pain silence one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_REPORTS = 3
#: The furthest the mapped value may be from the raw score, anywhere on 0..10 (NRS points).
MAX_SHIFT = 2.0
SCALE_MAX = 10.0
#: What MAX_SHIFT allows at both ends of the scale: 1 -/+ 2 x MAX_SHIFT / 10.
MIN_SLOPE = 1.0 - 2 * MAX_SHIFT / SCALE_MAX
MAX_SLOPE = 1.0 + 2 * MAX_SHIFT / SCALE_MAX
#: Spread (standard deviation) of the scores at which the ratings get the whole slope room.
SPREAD_FULL = 2.0
_EPS = 1e-9


@dataclass(frozen=True)
class PersonalMapping:
    """``rating = intercept + slope * score``, clipped to 0..10."""

    intercept: float
    slope: float
    n_reports: int
    prior_strength: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.intercept) and math.isfinite(self.slope)):
            raise ValueError(f"PersonalMapping: intercept and slope must be finite, got "
                             f"{self.intercept}, {self.slope}")
        if not MIN_SLOPE - _EPS <= self.slope <= MAX_SLOPE + _EPS:
            raise ValueError(f"PersonalMapping: slope must be in [{MIN_SLOPE:g}, "
                             f"{MAX_SLOPE:g}], got {self.slope}")
        if max(abs(self.deviation(0.0)), abs(self.deviation(SCALE_MAX))) > MAX_SHIFT + _EPS:
            raise ValueError(f"PersonalMapping: the mapping moves a score by more than "
                             f"{MAX_SHIFT:g} (intercept {self.intercept}, slope {self.slope})")

    def deviation(self, score: float) -> float:
        """How far the mapping moves ``score`` (before clipping to 0..10)."""
        return self.intercept + (self.slope - 1.0) * score

    @classmethod
    def fit(cls, scores: Sequence[float], ratings: Sequence[float],
            prior_strength: float = 3.0, min_reports: int = MIN_REPORTS) -> PersonalMapping:
        """Fit on paired fused scores and ratings (both 0..10)."""
        s = np.asarray(scores, float)
        y = np.asarray(ratings, float)
        if s.shape != y.shape or s.ndim != 1:
            raise ValueError(f"PersonalMapping.fit: scores and ratings must be equal-length "
                             f"lists, got {s.shape} and {y.shape}")
        keep = np.isfinite(s) & np.isfinite(y)
        s, y = s[keep], y[keep]
        if len(s) < min_reports:
            raise ValueError(f"PersonalMapping.fit: {len(s)} usable report(s), need {min_reports}")
        if np.any((y < 0) | (y > 10)) or np.any((s < 0) | (s > 10)):
            raise ValueError("PersonalMapping.fit: scores and ratings must lie in 0..10")
        if prior_strength < 0:
            raise ValueError(f"prior_strength must be >= 0, got {prior_strength}")
        # Prior pseudo-ratings on the identity at the ends and middle of the scale, so that the
        # prior constrains both intercept and slope.
        anchors = np.linspace(0.0, 10.0, 3)
        w_prior = np.full(3, prior_strength / 3.0)
        x = np.concatenate([s, anchors])
        t = np.concatenate([y, anchors])
        w = np.concatenate([np.ones(len(s)), w_prior])
        design = np.stack([np.ones_like(x), x], axis=1)
        lhs = design.T @ (w[:, None] * design)
        rhs = design.T @ (w * t)
        intercept, slope = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        shift, slope_room = allowance(s, prior_strength)
        if abs(slope - 1.0) > slope_room:
            # Hold the slope at the bound and refit the intercept: still the best line of the
            # allowed ones.
            slope = 1.0 + float(np.clip(slope - 1.0, -slope_room, slope_room))
            intercept = float(np.sum(w * (t - slope * x)) / np.sum(w))
        # The intercept keeps the whole line within ``shift`` of the identity on 0..10.
        tilt = (slope - 1.0) * SCALE_MAX
        intercept = float(np.clip(intercept, max(-shift, -shift - tilt), min(shift, shift - tilt)))
        return cls(intercept, float(slope), int(len(s)), float(prior_strength))

    def apply(self, score: float) -> float:
        return float(min(10.0, max(0.0, self.intercept + self.slope * score)))

    def to_dict(self) -> dict:
        return {"intercept": self.intercept, "slope": self.slope, "n_reports": self.n_reports,
                "prior_strength": self.prior_strength}

    @classmethod
    def from_dict(cls, data: dict) -> PersonalMapping:
        try:
            return cls(float(data["intercept"]), float(data["slope"]), int(data["n_reports"]),
                       float(data.get("prior_strength", 3.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"PersonalMapping.from_dict: {exc}") from None


def allowance(scores: np.ndarray, prior_strength: float) -> tuple[float, float]:
    """(largest shift, largest |slope - 1|) the ratings have earned: the shift grows with their
    number, the slope room also with the spread of the scores they were given at."""
    n = len(scores)
    share = n / (n + prior_strength) if n + prior_strength > 0 else 1.0
    shift = MAX_SHIFT * share
    spread = float(np.std(scores)) if n > 1 else 0.0
    slope_room = min(2 * shift / SCALE_MAX,
                     (MAX_SLOPE - 1.0) * share * min(1.0, spread / SPREAD_FULL))
    return shift, slope_room
