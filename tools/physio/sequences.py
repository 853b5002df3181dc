"""Sequences and metrics shared by the physio training and evaluation tools."""

from __future__ import annotations

import time

import numpy as np

from models.physio.features import SEQUENCE_STEPS
from models.physio.inputs import HISTORY_STEPS, model_inputs
from tools.physio.dataset import SubjectSteps


def subject_sequences(s: SubjectSteps, steps: int = SEQUENCE_STEPS, hop: int = 1,
                      truncate: float = 0.0, rng: np.random.Generator | None = None):
    """(X: n x steps x inputs (``models.physio.inputs``), y: n, end index: n) for one subject.

    A sequence ends at step e and carries the label of that last second: the device scores
    the minute that has just ended, and its label is what is happening now. Sequences whose
    last second has no label are left out.

    ``truncate`` (training only) is the share of sequences whose history starts at a random
    step up to ``HISTORY_STEPS`` before their end instead of at the recording's start, as on a
    device switched on at any time: without it the change inputs' short early history would
    only ever be seen at the start of the protocol, and a model could learn the protocol's
    timing (rest first) from it.
    """
    x = model_inputs(s.baseline, s.values)
    if len(x) < steps:
        return np.empty((0, steps, x.shape[1]), np.float32), np.empty(0, np.int8), np.empty(0, int)
    ends = np.arange(steps - 1, len(x), hop)
    ends = ends[s.labels[ends] >= 0]
    windows = np.lib.stride_tricks.sliding_window_view(x, steps, axis=0)  # n x 6 x steps
    seqs = np.ascontiguousarray(windows[ends - steps + 1].transpose(0, 2, 1), dtype=np.float32)
    if truncate > 0:
        rng = rng or np.random.default_rng(0)
        for i in np.flatnonzero(rng.random(len(ends)) < truncate):
            e = ends[i]
            start = rng.integers(max(e - HISTORY_STEPS + 1, 0), e - steps + 2)
            seqs[i] = model_inputs(s.baseline, s.values[start:e + 1])[-steps:]
    return seqs, s.labels[ends].astype(np.int8), ends


def settled(labels: np.ndarray, ends: np.ndarray, settle_s: int = 20) -> np.ndarray:
    """True for sequence ends at least ``settle_s`` steps after the last label change: the
    restricted protocol leaves out the first seconds of each task and of each recovery,
    where the body has not caught up with the label yet."""
    labels = np.asarray(labels)
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    last = np.concatenate(([0], change))[np.searchsorted(change, ends, side="right")]
    return ends - last >= settle_s


def summary_features(x: np.ndarray) -> np.ndarray:
    """A flat view of a sequence for the logistic-regression peer: last step, mean of the
    last 10 s and mean of the whole minute."""
    return np.concatenate([x[:, -1, :], x[:, -10:, :].mean(axis=1), x.mean(axis=1)], axis=1)


def grouped_folds(subjects: list[str], folds: int) -> list[list[str]]:
    """Subject-grouped folds, each subject in exactly one held-out fold."""
    ordered = sorted(subjects)
    folds = max(1, min(folds, len(ordered)))
    return [ordered[i::folds] for i in range(folds)]


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def balanced_accuracy(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float | None:
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    pred = np.asarray(p) >= threshold
    return float(0.5 * (np.mean(pred[y == 1]) + np.mean(~pred[y == 0])))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over equal-width bins, weighted by count."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf = np.bincount(idx, weights=p, minlength=bins)
    hits = np.bincount(idx, weights=y, minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(hits[used] - conf[used])) / max(len(p), 1))


def predict(model, x: np.ndarray) -> np.ndarray:
    """One output per sequence of ``x`` through a ``models.runtime.TFLiteModel``, one call each
    (batch 1, as on the device)."""
    return np.array([model.run(x[i:i + 1])[0].ravel()[0] for i in range(len(x))], np.float32)


def inference_ms(model, x: np.ndarray, repeats: int = 200, warmup: int = 50) -> tuple[float, float]:
    """(median, 99th percentile) of one call on the first sequence of ``x``, ms, after a
    warm-up."""
    one = x[:1]
    for _ in range(warmup):
        model.run(one)
    times = np.empty(repeats)
    for k in range(repeats):
        t = time.perf_counter()
        model.run(one)
        times[k] = time.perf_counter() - t
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)
