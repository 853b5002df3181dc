"""The physio model: per-second autonomic features, a per-person rest baseline, and a small
LSTM that reads the last minute of them (see MODEL_CARD.md)."""

from models.physio.features import (
    FEATURE_NAMES,
    SEQUENCE_STEPS,
    STEP_S,
    Baseline,
    StepFeatures,
    step_features,
)

__all__ = [
    "FEATURE_NAMES",
    "SEQUENCE_STEPS",
    "STEP_S",
    "Baseline",
    "PhysioEstimator",
    "StepFeatures",
    "step_features",
]


def __getattr__(name):
    # The estimator pulls in the TFLite runtime; features alone must not need it.
    if name == "PhysioEstimator":
        from models.physio.estimator import PhysioEstimator
        return PhysioEstimator
    raise AttributeError(name)
