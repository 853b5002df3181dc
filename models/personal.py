"""The per-patient mapping from the fused score to the patient's own ratings (NRS 0-10).

People differ in how their face and autonomic system show pain; their own rating is the
reference standard. With a handful of ratings a free line would chase noise, so the fit is a
ridge regression shrunk towards the identity (the population mapping): the prior counts as
``prior_strength`` ratings lying on the identity, and a few ratings move the line only as far
as they agree with each other. The slope is kept positive (the map stays monotone: more pain
signal never means less pain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_REPORTS = 3
MIN_SLOPE = 0.2
MAX_SLOPE = 5.0


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
        if not MIN_SLOPE <= self.slope <= MAX_SLOPE:
            raise ValueError(f"PersonalMapping: slope must be in [{MIN_SLOPE}, {MAX_SLOPE}], "
                             f"got {self.slope}")

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
        if not MIN_SLOPE <= slope <= MAX_SLOPE:
            # Refit the intercept with the slope held at the bound: still the best line of
            # the allowed ones.
            slope = float(np.clip(slope, MIN_SLOPE, MAX_SLOPE))
            intercept = float(np.sum(w * (t - slope * x)) / np.sum(w))
        return cls(float(intercept), float(slope), int(len(s)), float(prior_strength))

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
