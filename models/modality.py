"""What each modality (face, physiology) tells fusion: one estimate per window or frame."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModalityEstimate:
    """One modality's pain reading.

    ``score`` is 0..10 (None when the modality has nothing to say, e.g. no face in view);
    ``confidence`` 0..1 is how much fusion should trust it (quality smoothed over time);
    ``quality`` 0..1 is the instantaneous signal quality; ``features`` are the named numbers
    behind the score; ``flags`` name conditions such as "no_face" or "uncalibrated".
    """

    modality: str
    score: float | None
    confidence: float
    quality: float
    features: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.modality:
            raise ValueError("modality must be a non-empty name")
        if self.score is not None and not (0.0 <= self.score <= 10.0):
            raise ValueError(f"{self.modality}: score must be in 0..10 or None, got {self.score}")
        for name in ("confidence", "quality"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{self.modality}: {name} must be in 0..1, got {value}")
        for key, value in self.features.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{self.modality}: feature {key!r} must be a number, got {type(value).__name__}")

    def to_dict(self) -> dict:
        """JSON-ready: NaN/inf features become None, since JSON has no such numbers."""
        return {
            "modality": self.modality,
            "score": None if self.score is None else float(self.score),
            "confidence": float(self.confidence),
            "quality": float(self.quality),
            "features": {k: (float(v) if math.isfinite(v) else None) for k, v in self.features.items()},
            "flags": list(self.flags),
        }
