"""Peak picking as ``scipy.signal.find_peaks`` does it, in numpy alone (see ``models.iir`` for
why the device does not import ``scipy.signal``).

``find_peaks(x, height=, distance=, prominence=)`` returns the same indices as SciPy's for
those three conditions, applied in SciPy's order: local maxima (a flat top counts once, at
its middle, rounded down), then height, then distance (the higher peak wins, ties by SciPy's
sort), then prominence (the drop to the higher of the two bases, each base the lowest point
before the signal rises above the peak again or the signal ends).
"""

from __future__ import annotations

import math

import numpy as np


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of the local maxima of 1-D ``x``; a plateau counts once, at its middle."""
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return np.empty(0, dtype=np.intp)
    dx = x[1:] - x[:-1]
    if np.count_nonzero(dx) == dx.size:  # no plateau (the rule for filtered signals): one pass
        return ((dx[:-1] > 0) & (dx[1:] < 0)).nonzero()[0] + 1
    moves = np.flatnonzero(dx != 0)  # j: x[j + 1] differs from x[j]
    if moves.size < 2:
        return np.empty(0, dtype=np.intp)
    up = dx[moves] > 0
    down = dx[moves] < 0
    turn = np.flatnonzero(up[:-1] & down[1:])
    left = moves[turn] + 1  # first sample of the top
    right = moves[turn + 1]  # last sample of the top
    return ((left + right) // 2).astype(np.intp)


def select_by_distance(peaks: np.ndarray, priority: np.ndarray, distance: float) -> np.ndarray:
    """Keep-mask: from the highest priority down, each kept peak removes the peaks closer
    than ``distance`` samples."""
    n = peaks.size
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    d = math.ceil(distance)
    if np.minimum.reduce(peaks[1:] - peaks[:-1]) >= d:
        return keep  # nothing to remove (beats further apart than the refractory distance)
    # Plain Python on lists: the peaks of a window number tens, where numpy's per-call cost
    # exceeds the work.
    pos = peaks.tolist()
    kept = [True] * n
    for j in priority.argsort()[::-1].tolist():
        if not kept[j]:
            continue
        k = j - 1
        while k >= 0 and pos[j] - pos[k] < d:
            kept[k] = False
            k -= 1
        k = j + 1
        while k < n and pos[k] - pos[j] < d:
            kept[k] = False
            k += 1
    return np.array(kept, dtype=bool)


def prominences(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Each peak's prominence: its height above the higher of its two bases."""
    x = np.asarray(x, dtype=float)
    out = np.empty(peaks.size)
    n = x.size
    for i, p in enumerate(peaks):
        top = x[p]
        out[i] = top - max(_base(x, p, top, -1, n), _base(x, p, top, 1, n))
    return out


def _base(x: np.ndarray, p: int, top: float, step: int, n: int) -> float:
    """Lowest value from ``p`` towards one end until the signal rises above ``top``; looks in
    growing spans, so a peak's cost follows the distance to its base, not the signal's length."""
    span = 64
    lowest = top
    start = p  # the samples before it (step -1) or after it (step 1) are looked at next
    while True:
        if step < 0:
            end = max(0, start - span)
            seg = x[end:start][::-1]
        else:
            end = min(n, start + 1 + span)
            seg = x[start + 1:end]
        if seg.size == 0:
            return lowest
        above = np.flatnonzero(seg > top)
        if above.size:
            seg = seg[: above[0]]
            return min(lowest, float(seg.min())) if seg.size else lowest
        lowest = min(lowest, float(seg.min()))
        start = end if step < 0 else end - 1
        span *= 4


def find_peaks(x: np.ndarray, *, height: float | None = None, distance: float | None = None,
               prominence: float | None = None) -> np.ndarray:
    """Indices of the peaks of 1-D ``x`` meeting the given conditions (SciPy's semantics)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"find_peaks needs a 1-D signal, got shape {x.shape}")
    if distance is not None and distance < 1:
        raise ValueError(f"find_peaks: distance must be >= 1, got {distance}")
    peaks = local_maxima(x)
    if height is not None and peaks.size:
        peaks = peaks[x[peaks] >= height]
    if distance is not None and peaks.size > 1:
        peaks = peaks[select_by_distance(peaks, x[peaks], distance)]
    if prominence is not None and peaks.size:
        peaks = peaks[prominences(x, peaks) >= prominence]
    return peaks
