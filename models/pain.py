"""What leaves the device: one pain estimate, its level, and why.

Levels follow the usual reading of the 0-10 numeric rating scale (NRS): 0 none, 1-3 mild,
4-6 moderate, 7-10 severe (Serlin et al. 1995, "When is cancer pain mild, moderate or
severe?", Pain 61:277-284). A continuous score is read as the NRS it rounds to, so the
boundaries sit at 0.5, 3.5 and 6.5; ``LevelHysteresis`` moves the level only once the score
is ``margin`` past a boundary, so a score hovering at 3.5 does not flicker mild/moderate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LEVELS = ("none", "mild", "moderate", "severe")
# Lower edge of mild, moderate, severe on the continuous score (NRS 1, 4, 7 rounded).
LEVEL_EDGES = (0.5, 3.5, 6.5)

FLAGS = (
    "face_missing", "physio_missing", "motion_high", "sensor_off", "uncalibrated",
    "calibrating", "low_confidence", "no_estimate",
)


def level_for(score: float) -> str:
    """The level a score reads as, without hysteresis."""
    if not math.isfinite(score):
        raise ValueError(f"level_for: score must be finite, got {score}")
    return LEVELS[sum(score >= edge for edge in LEVEL_EDGES)]


class LevelHysteresis:
    """The level, moved only when the score is ``margin`` beyond the boundary it crosses."""

    def __init__(self, margin: float = 0.5) -> None:
        if not 0 <= margin < 1.5:
            raise ValueError(f"hysteresis margin must be in [0, 1.5), got {margin}")
        self.margin = float(margin)
        self.level: str | None = None

    def update(self, score: float | None) -> str | None:
        """The held level after ``score``; None (no estimate) leaves it unchanged."""
        if score is None:
            return self.level
        if self.level is None:
            self.level = level_for(score)
            return self.level
        i = LEVELS.index(self.level)
        while i < len(LEVELS) - 1 and score >= LEVEL_EDGES[i] + self.margin:
            i += 1
        while i > 0 and score < LEVEL_EDGES[i - 1] - self.margin:
            i -= 1
        self.level = LEVELS[i]
        return self.level

    def reset(self) -> None:
        self.level = None


@dataclass(frozen=True, slots=True)
class Contribution:
    """One modality's part in the estimate: its share of the weight (0..1, summing to 1 over
    the modalities that spoke), its own score and confidence, and the features that moved it."""

    weight: float
    score: float | None
    confidence: float
    top_features: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "weight": round(float(self.weight), 3),
            "score": None if self.score is None else round(float(self.score), 2),
            "confidence": round(float(self.confidence), 3),
            "top_features": {k: round(float(v), 3) for k, v in self.top_features.items()},
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class PainEstimate:
    """The fused estimate at ``t_ns``. ``score`` and ``level`` are None when no modality had
    anything to say; ``raw_score`` is the fused score before the per-patient mapping."""

    t_ns: int
    score: float | None
    level: str | None
    confidence: float
    contributions: dict[str, Contribution]
    flags: tuple[str, ...] = ()
    raw_score: float | None = None
    personalised: bool = False

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 10.0:
            raise ValueError(f"PainEstimate.score must be in 0..10 or None, got {self.score}")
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"PainEstimate.level must be one of {LEVELS}, got {self.level!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"PainEstimate.confidence must be in 0..1, got {self.confidence}")

    def to_dict(self) -> dict:
        return {
            "score": None if self.score is None else round(float(self.score), 2),
            "raw_score": None if self.raw_score is None else round(float(self.raw_score), 2),
            "level": self.level,
            "confidence": round(float(self.confidence), 3),
            "contributions": {m: c.to_dict() for m, c in self.contributions.items()},
            "flags": list(self.flags),
            "personalised": self.personalised,
        }
