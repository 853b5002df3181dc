"""Sample buffers: the latest samples of one channel, the pairing of accelerometer axes, and a
channel that filters on arrival into a ring."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from models.dsp import StreamingSos, fill_nonfinite


class SampleRing:
    """The latest ``capacity_s`` seconds of one evenly sampled channel, with their end time.

    ``t_end_ns`` is the time just after the last sample (``SampleBlock.t_end_ns``), or None
    while empty. The ring only ever holds one contiguous run of samples: a block that does
    not continue it - its first sample more than ``1.5 periods + jitter_s`` away from where
    the previous block ended (a gap, or an overlap when time went backwards), or a block at a
    different ``rate_hz`` - empties the ring first (``resets`` counts these), so a window
    never splices two runs together as if they were contiguous. A changed rate also resizes
    the ring. ``duration_s`` is then the length of the current run, up to ``capacity_s``.
    With ``rows`` > 0 each sample is a column of ``rows`` values (time on the last axis), so
    signals sampled together share one ring.
    """

    def __init__(self, rate_hz: float, capacity_s: float, jitter_s: float = 0.002, rows: int = 0) -> None:
        if capacity_s <= 0:
            raise ValueError(f"SampleRing: capacity_s must be > 0, got {capacity_s}")
        if jitter_s < 0:
            raise ValueError(f"SampleRing: jitter_s must be >= 0, got {jitter_s}")
        self.capacity_s = float(capacity_s)
        self.jitter_s = float(jitter_s)
        self.rows = int(rows)
        self.resets = 0
        self._allocate(rate_hz)

    def _allocate(self, rate_hz: float) -> None:
        if not rate_hz > 0:
            raise ValueError(f"SampleRing: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        cap = max(1, math.ceil(self.capacity_s * self.rate_hz))
        self._buf = np.zeros((self.rows, cap) if self.rows else cap)
        self._head = 0  # index the next sample goes to
        self._filled = 0
        self.t_end_ns: int | None = None

    @property
    def capacity(self) -> int:
        return self._buf.shape[-1]

    @property
    def period_ns(self) -> float:
        return 1e9 / self.rate_hz

    @property
    def duration_s(self) -> float:
        return self._filled / self.rate_hz

    def __len__(self) -> int:
        return self._filled

    def clear(self) -> None:
        self._head = 0
        self._filled = 0
        self.t_end_ns = None

    def continues(self, t0_ns: int, rate_hz: float | None = None) -> bool:
        """Whether a block starting at ``t0_ns`` (at ``rate_hz``) extends the current run."""
        if self.t_end_ns is None:
            return False
        if rate_hz is not None and not math.isclose(rate_hz, self.rate_hz, rel_tol=1e-9):
            return False
        tolerance_ns = 1.5 * self.period_ns + self.jitter_s * 1e9
        return abs(t0_ns - self.t_end_ns) <= tolerance_ns

    def extend(self, samples: np.ndarray, t_end_ns: int, rate_hz: float | None = None) -> bool:
        """Append ``samples`` whose last one ends at ``t_end_ns``.

        Returns True when the ring was emptied first (gap, overlap or new rate).
        """
        samples = np.asarray(samples, dtype=float)
        if samples.shape[:-1] != self._buf.shape[:-1] or samples.ndim == 0:
            want = f"({self.rows}, n)" if self.rows else "1-D"
            raise ValueError(f"SampleRing.extend needs {want} samples, got shape {samples.shape}")
        n = samples.shape[-1]
        if n == 0:
            return False
        reset = False
        if rate_hz is not None and not math.isclose(rate_hz, self.rate_hz, rel_tol=1e-9):
            self._allocate(rate_hz)
            reset = True
        t0_ns = int(t_end_ns) - round(n * self.period_ns)
        if self.t_end_ns is not None and not self.continues(t0_ns):
            self.clear()
            reset = True
        self.resets += reset
        cap = self._buf.shape[-1]
        if n >= cap:
            self._buf[...] = samples[..., -cap:]
            self._head = 0
            self._filled = cap
        else:
            first = min(n, cap - self._head)
            self._buf[..., self._head : self._head + first] = samples[..., :first]
            self._buf[..., : n - first] = samples[..., first:]
            self._head = (self._head + n) % cap
            self._filled = min(cap, self._filled + n)
        self.t_end_ns = int(t_end_ns)
        return reset

    def latest(self, seconds: float) -> np.ndarray:
        """A copy of the last ``seconds`` of samples, oldest first (fewer if not yet held)."""
        n = min(self._filled, max(0, round(seconds * self.rate_hz)))
        if n == 0:
            return np.empty(self._buf.shape[:-1] + (0,))
        start = self._head - n
        if start >= 0:
            return self._buf[..., start : self._head].copy()
        return np.concatenate((self._buf[..., start:], self._buf[..., : self._head]), axis=-1)


class TriaxialBuffer:
    """Holds acc_x/acc_y/acc_z samples until all three cover the same times; yields |a|.

    The axes arrive as separate blocks of any size. Samples are paired by time stamp on the
    shared sample grid, so the magnitude stream is the same however the axes were split. As
    in ``SampleRing``, the newest block's time stamp is trusted (a sensor clock that runs 1%
    off its nominal rate does not accumulate into a false gap). A gap in one axis drops the
    others' unpaired samples (the consumer's ring then sees the gap); a new rate drops
    everything held. At most ``max_pending_s`` is held per axis.
    """

    AXES = ("acc_x", "acc_y", "acc_z")

    def __init__(self, max_pending_s: float, jitter_s: float = 0.002) -> None:
        self.max_pending_s = float(max_pending_s)
        self.jitter_s = float(jitter_s)
        self._rate_hz: float | None = None
        self._pending: dict[str, tuple[float, np.ndarray]] = {}  # axis -> (t0_ns, samples)

    def add(
        self, axis: str, t0_ns: int, rate_hz: float, samples: np.ndarray
    ) -> tuple[int, float, np.ndarray] | None:
        """Add one axis's block; returns (t0_ns, rate_hz, magnitude) of newly paired samples."""
        got = self.add_axes(axis, t0_ns, rate_hz, samples)
        if got is None:
            return None
        xyz = got[2]
        return got[0], got[1], np.sqrt(np.einsum("ij,ij->i", xyz, xyz))

    def add_axes(
        self, axis: str, t0_ns: int, rate_hz: float, samples: np.ndarray
    ) -> tuple[int, float, np.ndarray] | None:
        """As ``add``, but returns the paired samples themselves, shape (n, 3) in x, y, z order
        (the PPG's motion reference needs the direction, not only the magnitude)."""
        if axis not in self.AXES:
            raise ValueError(f"TriaxialBuffer: axis must be one of {self.AXES}, got {axis!r}")
        if self._rate_hz is None or not math.isclose(rate_hz, self._rate_hz, rel_tol=1e-9):
            self._rate_hz, self._pending = rate_hz, {}
        period_ns = 1e9 / rate_hz
        held_t0_ns, held = self._pending.get(axis, (float(t0_ns), np.empty(0)))
        expected_ns = held_t0_ns + held.size * period_ns
        if abs(t0_ns - expected_ns) > 1.5 * period_ns + self.jitter_s * 1e9:
            held = np.empty(0)
        held = np.concatenate((held, np.asarray(samples, dtype=float)))
        held = held[-math.ceil(self.max_pending_s * rate_hz) :]
        end_ns = t0_ns + len(samples) * period_ns
        self._pending[axis] = (end_ns - held.size * period_ns, held)
        if len(self._pending) < 3:
            return None
        start_ns = max(t0 for t0, _ in self._pending.values())
        for name, (t0, arr) in self._pending.items():
            skip = min(arr.size, max(0, round((start_ns - t0) / period_ns)))
            self._pending[name] = (t0 + skip * period_ns, arr[skip:])
        n = min(arr.size for _, arr in self._pending.values())
        if n == 0:
            return None
        x, y, z = (self._pending[a][1][:n] for a in self.AXES)
        for name, (t0, arr) in self._pending.items():
            self._pending[name] = (t0 + n * period_ns, arr[n:])
        return round(start_ns), rate_hz, np.column_stack((x, y, z))


class Window(NamedTuple):
    filtered: np.ndarray
    raw: np.ndarray | None
    rate_hz: float
    completeness: float
    t_end_ns: int


class FilteredChannel:
    """One channel's streaming filter and rings; the filter restarts when the ring does.

    With ``rows`` > 0 it holds that many signals sampled together (samples (rows, n)), all
    through the same filter design in one call.
    """

    def __init__(
        self, name: str, design: Callable[[float], np.ndarray], capacity_s: float, keep_raw: bool,
        rows: int = 0,
    ) -> None:
        self.name = name
        self._design = design
        self._capacity_s = capacity_s
        self._keep_raw = keep_raw
        self._rows = rows
        self.filtered: SampleRing | None = None
        self.raw: SampleRing | None = None
        self._filter: StreamingSos | None = None
        self._last = 0.0
        self.nonfinite = 0

    def feed(self, samples: np.ndarray, t0_ns: int, rate_hz: float) -> None:
        if self.filtered is None or not math.isclose(rate_hz, self.filtered.rate_hz, rel_tol=1e-9):
            try:
                sos = self._design(rate_hz)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
            self._filter = StreamingSos(sos)
            if self.filtered is None:
                self.filtered = SampleRing(rate_hz, self._capacity_s, rows=self._rows)
                self.raw = SampleRing(rate_hz, self._capacity_s, rows=self._rows) if self._keep_raw else None
        elif not self.filtered.continues(t0_ns, rate_hz):
            self._filter.reset()
        x = np.asarray(samples, dtype=float)
        if not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            self.nonfinite += int(np.count_nonzero(bad))
            if x.ndim == 1:
                x = fill_nonfinite(x, self._last)
            else:
                x = np.where(bad, 0.0, x)
        if x.ndim == 1:
            self._last = float(x[-1])
        y = self._filter.process(x)
        t_end_ns = t0_ns + round(x.shape[-1] * 1e9 / rate_hz)
        self.filtered.extend(y, t_end_ns, rate_hz)
        if self.raw is not None:
            self.raw.extend(x, t_end_ns, rate_hz)

    @property
    def resets(self) -> int:
        return 0 if self.filtered is None else self.filtered.resets

    def window(self, t_ns: int, window_s: float, stale_s: float) -> Window | None:
        """The latest window, or None when under 80% of a window is held or data is stale."""
        ring = self.filtered
        if ring is None or ring.t_end_ns is None:
            return None
        last_sample_ns = ring.t_end_ns - ring.period_ns
        if t_ns - last_sample_ns > stale_s * 1e9 or ring.duration_s < 0.8 * window_s:
            return None
        raw = None if self.raw is None else self.raw.latest(window_s)
        return Window(ring.latest(window_s), raw, ring.rate_hz,
                      min(1.0, ring.duration_s / window_s), ring.t_end_ns)
