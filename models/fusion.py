"""Fusion: the modality estimates (physio, face) and their context (motion, sensors) -> one
``PainEstimate``.

Each modality's weight is its prior times its own confidence times a quality gate; the
physiology is further discounted by limb motion, which corrupts the PPG and adds EDA
artefacts while leaving the face untouched. The score is the weighted mean of the scores of
the modalities that spoke. The confidence is the weight that spoke over the weight that could
have: every factor is at most 1 and grows with the modality's own confidence and quality, so a
missing or degraded modality can only lower it, never raise it (a property the tests check).
Disagreement between modalities is deliberately not part of it: that would let a dropped
modality raise the confidence.

``fuse`` is one instant, pure. ``PainFusion`` adds what needs memory: smoothing over a few
seconds (a grimace lasts 1-3 s, the autonomic response tens of seconds), the per-patient
mapping and the level hysteresis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from models.face.pain_context import explained_actions
from models.modality import ModalityEstimate
from models.pain import Contribution, LevelHysteresis, PainEstimate, level_for
from models.personal import PersonalMapping
from models.physio.features import FEATURE_NAMES, Baseline

MODALITIES = ("physio", "face")
# Face features that carry the pain signal, with their full scale (FACS A-E = 0..5).
_FACE_SCALES = {"au4": 5.0, "au6": 5.0, "au7": 5.0, "au9": 5.0, "au10": 5.0, "au43": 1.0,
                "negative_affect": 1.0}
TOP_FEATURES = 3
_COUNTED = ("au4", "au6", "au7", "au9", "au10", "au43")


@dataclass(frozen=True)
class FusionSettings:
    """How much each modality counts and when it is gated out.

    ``priors``: relative trust in each modality at full confidence and quality.
    ``min_quality``: below it a modality's weight is zero; ``good_quality``: above it the gate
    is fully open (linear between). ``motion_high_g``: motion flagged high from here, the
    physio weight falling linearly to ``motion_floor`` of itself at ``motion_full_g``.
    ``smoothing_s``: time constant of the fused score's exponential smoothing (0: none).
    """

    priors: Mapping[str, float] = field(default_factory=lambda: {"physio": 1.0, "face": 1.0})
    min_quality: float = 0.15
    good_quality: float = 0.5
    motion_high_g: float = 0.15
    motion_full_g: float = 0.5
    motion_floor: float = 0.25
    low_confidence: float = 0.3
    smoothing_s: float = 5.0
    hysteresis: float = 0.5

    def __post_init__(self) -> None:
        if not self.priors or any(not (v >= 0 and math.isfinite(v)) for v in self.priors.values()):
            raise ValueError(f"fusion priors must be finite and >= 0, got {dict(self.priors)}")
        if not 0 <= self.min_quality < self.good_quality <= 1:
            raise ValueError("fusion: need 0 <= min_quality < good_quality <= 1, got "
                             f"{self.min_quality}, {self.good_quality}")
        if not 0 < self.motion_high_g < self.motion_full_g:
            raise ValueError("fusion: need 0 < motion_high_g < motion_full_g, got "
                             f"{self.motion_high_g}, {self.motion_full_g}")
        if not 0 <= self.motion_floor <= 1:
            raise ValueError(f"fusion: motion_floor must be in 0..1, got {self.motion_floor}")
        if self.smoothing_s < 0:
            raise ValueError(f"fusion: smoothing_s must be >= 0, got {self.smoothing_s}")


@dataclass(frozen=True)
class FusionContext:
    """What the device knows besides the estimates: limb motion (g, None when unknown), the
    sensors that are not delivering, and the patient's rest physiology (``Baseline.centers``)
    against which the physio explanation is expressed."""

    motion_g: float | None = None
    sensors_off: tuple[str, ...] = ()
    physio_rest: Mapping[str, float | None] | None = None


def quality_gate(quality: float, settings: FusionSettings) -> float:
    if not math.isfinite(quality) or quality < settings.min_quality:
        return 0.0
    return float(min(1.0, (quality - settings.min_quality)
                     / (settings.good_quality - settings.min_quality)))


def motion_factor(motion_g: float | None, settings: FusionSettings) -> float:
    """Share of the physio weight kept at this motion level (1 when still or unknown)."""
    if motion_g is None or not math.isfinite(motion_g) or motion_g <= settings.motion_high_g:
        return 1.0
    x = min(1.0, (motion_g - settings.motion_high_g) / (settings.motion_full_g - settings.motion_high_g))
    return 1.0 - x * (1.0 - settings.motion_floor)


def _finite(features: Mapping[str, float], name: str) -> float | None:
    value = features.get(name)
    return float(value) if value is not None and math.isfinite(value) else None


def face_top_features(estimate: ModalityEstimate, n: int = TOP_FEATURES) -> dict[str, float]:
    """The pain-related actions most present, by share of their full scale, as the face's
    score counted them (a smile's AU6 is not a reason for a pain score, nor, uncalibrated,
    brows lowered with nothing else)."""
    features = dict(estimate.features)
    if all(_finite(features, k) is not None for k in _COUNTED):
        features.update(explained_actions({k: float(features[k]) for k in (*_COUNTED, "au12", "au26")
                                           if _finite(features, k) is not None},
                                          calibrated="uncalibrated" not in estimate.flags))
    present = {k: v for k in _FACE_SCALES if (v := _finite(features, k)) is not None and v > 0}
    ranked = sorted(present, key=lambda k: present[k] / _FACE_SCALES[k], reverse=True)
    return {k: present[k] for k in ranked[:n]}


def physio_top_features(estimate: ModalityEstimate, rest: Mapping[str, float | None] | None,
                        n: int = TOP_FEATURES) -> dict[str, float]:
    """The model's arousal probability, then the features furthest from the patient's rest,
    as ``<feature>_z``: signed change in the model's own population units (``Baseline``)."""
    out: dict[str, float] = {}
    p = _finite(estimate.features, "arousal_probability")
    if p is not None:
        out["arousal_probability"] = p
    if rest is None:
        return out
    values = [_finite(estimate.features, name) for name in FEATURE_NAMES]
    row = np.array([[np.nan if v is None else v for v in values]])
    z = Baseline(dict(rest), 0).normalise(row)[0]
    measured = [i for i, name in enumerate(FEATURE_NAMES)
                if name != "motion_g" and np.isfinite(row[0, i]) and rest.get(name) is not None]
    for i in sorted(measured, key=lambda i: abs(z[i]), reverse=True)[:n]:
        if abs(z[i]) > 0:
            out[f"{FEATURE_NAMES[i]}_z"] = float(z[i])
    return out


def _top_features(estimate: ModalityEstimate, context: FusionContext) -> dict[str, float]:
    if estimate.modality == "face":
        return face_top_features(estimate)
    if estimate.modality == "physio":
        return physio_top_features(estimate, context.physio_rest)
    finite = {k: float(v) for k, v in estimate.features.items() if math.isfinite(v)}
    return dict(sorted(finite.items(), key=lambda kv: abs(kv[1]), reverse=True)[:TOP_FEATURES])


def _motion(estimates: Mapping[str, ModalityEstimate | None], context: FusionContext) -> float | None:
    if context.motion_g is not None and math.isfinite(context.motion_g):
        return float(context.motion_g)
    physio = estimates.get("physio")
    return None if physio is None else _finite(physio.features, "motion_g")


def fuse(estimates: Mapping[str, ModalityEstimate | None], context: FusionContext | None = None,
         settings: FusionSettings | None = None, t_ns: int = 0) -> PainEstimate:
    """One instant's fused estimate (level without hysteresis, no smoothing, no mapping).

    ``estimates`` maps modality name -> its estimate, or None when the modality is absent;
    every modality in ``settings.priors`` is expected, one not given counts as missing.
    """
    context = context or FusionContext()
    settings = settings or FusionSettings()
    for name, est in estimates.items():
        if est is not None and not isinstance(est, ModalityEstimate):
            raise TypeError(f"fuse: estimate for {name!r} must be a ModalityEstimate or None, "
                            f"got {type(est).__name__}")
    motion_g = _motion(estimates, context)
    weights: dict[str, float] = {}
    for name, prior in settings.priors.items():
        est = estimates.get(name)
        # While a modality records the patient's neutral baseline its reading is measured
        # against a population template, not the patient: it must not move the estimate.
        if (est is None or est.score is None or not math.isfinite(est.score)
                or "calibrating" in est.flags):
            weights[name] = 0.0
            continue
        w = prior * est.confidence * quality_gate(est.quality, settings)
        if name == "physio":
            w *= motion_factor(motion_g, settings)
        weights[name] = w
    total_prior = sum(settings.priors.values())
    spoke = sum(weights.values())
    confidence = 0.0 if total_prior <= 0 else min(1.0, spoke / total_prior)
    score = None
    if spoke > 0:
        score = sum(w * estimates[n].score for n, w in weights.items() if w > 0) / spoke
        score = min(10.0, max(0.0, score))

    contributions: dict[str, Contribution] = {}
    for name, est in estimates.items():
        if est is None:
            continue
        contributions[name] = Contribution(
            weight=(weights.get(name, 0.0) / spoke) if spoke > 0 else 0.0,
            score=est.score, confidence=est.confidence,
            top_features=_top_features(est, context) if est.score is not None else {},
            flags=est.flags)

    flags: list[str] = []
    for name in settings.priors:
        if weights.get(name, 0.0) <= 0:
            flags.append(f"{name}_missing")
    if motion_g is not None and motion_g > settings.motion_high_g:
        flags.append("motion_high")
    if context.sensors_off:
        flags.append("sensor_off")
    present = [e for e in estimates.values() if e is not None]
    if any("uncalibrated" in e.flags for e in present):
        flags.append("uncalibrated")
    if any("calibrating" in e.flags for e in present):
        flags.append("calibrating")
    if confidence < settings.low_confidence:
        flags.append("low_confidence")
    if score is None:
        flags.append("no_estimate")
    return PainEstimate(int(t_ns), score, None if score is None else level_for(score),
                        float(confidence), contributions, tuple(flags), raw_score=score)


class PainFusion:
    """``fuse`` over time: smoothing, the per-patient mapping, level hysteresis.

    Not thread-safe by itself; the device calls it from the processing loop only.
    """

    def __init__(self, settings: FusionSettings | None = None,
                 mapping: PersonalMapping | None = None) -> None:
        self.settings = settings or FusionSettings()
        self.mapping = mapping
        self.hysteresis = LevelHysteresis(self.settings.hysteresis)
        self._smoothed: float | None = None
        self._t_ns: int | None = None

    def _smooth(self, score: float | None, t_ns: int) -> float | None:
        tau = self.settings.smoothing_s
        if score is None:
            # A long silence: start afresh rather than resume an old level.
            if self._t_ns is not None and tau > 0 and (t_ns - self._t_ns) / 1e9 > 3 * tau:
                self._smoothed = None
            return self._smoothed
        if self._smoothed is None or tau <= 0 or self._t_ns is None:
            self._smoothed = score
        else:
            dt_s = max(0.0, (t_ns - self._t_ns) / 1e9)
            alpha = 1.0 - math.exp(-dt_s / tau)
            self._smoothed += alpha * (score - self._smoothed)
        self._t_ns = t_ns
        return self._smoothed

    def update(self, t_ns: int, estimates: Mapping[str, ModalityEstimate | None],
               context: FusionContext | None = None) -> PainEstimate:
        instant = fuse(estimates, context, self.settings, t_ns)
        raw = self._smooth(instant.score, t_ns)
        if instant.score is None:
            # Nothing spoke now: report no score, but keep the held level for when it returns.
            return instant
        personalised = self.mapping is not None
        score = self.mapping.apply(raw) if personalised else raw
        return PainEstimate(int(t_ns), score, self.hysteresis.update(score), instant.confidence,
                            instant.contributions, instant.flags, raw_score=raw,
                            personalised=personalised)
