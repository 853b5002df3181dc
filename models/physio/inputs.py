"""What the physio model reads each step: the features against the person's rest, and their
change against the minutes just before.

Rest-relative values alone leave every recovery looking aroused: heart rate and conductance
take minutes to settle after a task, while the label (and the person) are back at rest. The
change against the trailing minutes tells a settling body from a rising one. The window
(``CONTEXT_FROM_S`` to ``CONTEXT_TO_S`` before the step) stops short of the model's own last
minute so that a change inside it stays visible against it.
"""

from __future__ import annotations

import numpy as np

from models.physio.features import FEATURE_NAMES, NORMALISED_CLIP, SEQUENCE_STEPS, Baseline

CONTEXT_FROM_S = 600
CONTEXT_TO_S = 60
INPUT_NAMES = FEATURE_NAMES + tuple(f"{name}_change" for name in FEATURE_NAMES)
# The device keeps this many steps of features: one model sequence of 60 steps whose first
# step still sees its full trailing context.
HISTORY_STEPS = SEQUENCE_STEPS + CONTEXT_FROM_S


def model_inputs(baseline: Baseline, values: np.ndarray) -> np.ndarray:
    """Steps x features (physical units, consecutive 1 s steps, oldest first) -> steps x
    ``len(INPUT_NAMES)`` float32: the rest-normalised features, then each one minus its mean
    over the steps ``CONTEXT_FROM_S``..``CONTEXT_TO_S`` before (0 where none of those steps
    exist yet)."""
    values = np.asarray(values, float)
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"model_inputs: values must be (steps, {len(FEATURE_NAMES)}), "
                         f"got {values.shape}")
    z = baseline.normalise(values).astype(float)
    n = len(z)
    csum = np.concatenate([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    t = np.arange(n)
    lo = np.clip(t - CONTEXT_FROM_S, 0, n)
    hi = np.clip(t - CONTEXT_TO_S, 0, n)
    count = hi - lo
    trailing = (csum[hi] - csum[lo]) / np.maximum(count, 1)[:, None]
    change = np.where(count[:, None] > 0, z - trailing, 0.0)
    change = np.clip(change, -NORMALISED_CLIP, NORMALISED_CLIP)
    return np.concatenate([z, change], axis=1).astype(np.float32)
