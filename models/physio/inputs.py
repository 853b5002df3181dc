"""What the physio model reads each step: the features against the person's rest, and their
change against the minutes just before.

Rest-relative values alone leave every recovery looking aroused: heart rate and conductance
take minutes to settle after a task, while the label (and the person) are back at rest. The
change against the trailing minutes tells a settling body from a rising one. Two trailing
windows are used, the last 10 and the last 20 minutes (``CONTEXTS``), each stopping
``CONTEXT_TO_S`` before the step so that a change inside the model's own last minute stays
visible against it: the shorter one follows the last task or episode, the longer one is a
steadier "recent normal" when they come every few minutes.
"""

from __future__ import annotations

import numpy as np

from models.physio.features import FEATURE_NAMES, NORMALISED_CLIP, SEQUENCE_STEPS, Baseline

#: (trailing window start in seconds before the step, input name suffix)
CONTEXTS = ((600, "change_10min"), (1200, "change_20min"))
CONTEXT_FROM_S = max(start for start, _ in CONTEXTS)
CONTEXT_TO_S = 60
INPUT_NAMES = FEATURE_NAMES + tuple(f"{name}_{suffix}" for _, suffix in CONTEXTS
                                    for name in FEATURE_NAMES)
# The device keeps this many steps of features: one model sequence of 60 steps whose first
# step still sees its full trailing context.
HISTORY_STEPS = SEQUENCE_STEPS + CONTEXT_FROM_S


def model_inputs(baseline: Baseline, values: np.ndarray) -> np.ndarray:
    """Steps x features (physical units, consecutive 1 s steps, oldest first) -> steps x
    ``len(INPUT_NAMES)`` float32: the rest-normalised features, then for each window of
    ``CONTEXTS`` each feature minus its mean over the steps from that window's start to
    ``CONTEXT_TO_S`` before (over what exists of it; 0 where none of those steps exist yet)."""
    values = np.asarray(values, float)
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"model_inputs: values must be (steps, {len(FEATURE_NAMES)}), "
                         f"got {values.shape}")
    z = baseline.normalise(values).astype(float)
    n = len(z)
    csum = np.concatenate([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    t = np.arange(n)
    hi = np.clip(t - CONTEXT_TO_S, 0, n)
    columns = [z]
    for from_s, _ in CONTEXTS:
        lo = np.clip(t - from_s, 0, n)
        count = hi - lo
        trailing = (csum[hi] - csum[lo]) / np.maximum(count, 1)[:, None]
        change = np.where(count[:, None] > 0, z - trailing, 0.0)
        columns.append(np.clip(change, -NORMALISED_CLIP, NORMALISED_CLIP))
    return np.concatenate(columns, axis=1).astype(np.float32)
