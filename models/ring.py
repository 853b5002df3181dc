"""Sample buffers: the latest samples of one channel, the pairing of accelerometer axes, and a
channel that filters on arrival into a ring."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from models.dsp import StreamingSos, fill_nonfinite


def _same_rate(a_hz: float, b_hz: float) -> bool:
    return a_hz == b_hz or math.isclose(a_hz, b_hz, rel_tol=1e-9)


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
        self.period_ns = 1e9 / self.rate_hz
        self._capacity = max(1, math.ceil(self.capacity_s * self.rate_hz))
        # Twice the capacity, filled front to back: the held run is always one contiguous
        # slice (a window is a view, not a copy), and moving it back to the front once per
        # capacity's worth of samples costs less than splicing two pieces on every read.
        self._buf = np.zeros((self.rows, 2 * self._capacity) if self.rows else 2 * self._capacity)
        self._readable = self._buf.view()  # what ``view`` slices: read-only, so windows are too
        self._readable.flags.writeable = False
        self._end = 0  # index the next sample goes to
        self._filled = 0
        self.t_end_ns: int | None = None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def duration_s(self) -> float:
        return self._filled / self.rate_hz

    def __len__(self) -> int:
        return self._filled

    def clear(self) -> None:
        self._end = 0
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
        if rate_hz is not None and not _same_rate(rate_hz, self.rate_hz):
            self._allocate(rate_hz)
            reset = True
        if self.t_end_ns is not None:
            t0_ns = int(t_end_ns) - round(n * self.period_ns)
            if abs(t0_ns - self.t_end_ns) > 1.5 * self.period_ns + self.jitter_s * 1e9:
                self.clear()
                reset = True
        self.resets += reset
        cap, buf = self._capacity, self._buf
        if n >= cap:
            buf[..., :cap] = samples[..., n - cap :]
            self._end = self._filled = cap
        else:
            end, filled = self._end, self._filled
            if end + n > buf.shape[-1]:
                buf[..., :filled] = buf[..., end - filled : end]
                end = filled
            buf[..., end : end + n] = samples
            self._end = end + n
            self._filled = min(cap, filled + n)
        self.t_end_ns = int(t_end_ns)
        return reset

    def view(self, seconds: float) -> np.ndarray:
        """The last ``seconds`` of samples, oldest first, as a read-only view that stays valid
        until the next ``extend``."""
        n = min(self._filled, max(0, round(seconds * self.rate_hz)))
        return self._readable[..., self._end - n : self._end]

    def latest(self, seconds: float) -> np.ndarray:
        """A copy of the last ``seconds`` of samples, oldest first (fewer if not yet held)."""
        return self.view(seconds).copy()


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
        got = self.pair(axis, t0_ns, rate_hz, samples)
        if got is None:
            return None
        xyz = got[2]
        return got[0], got[1], np.sqrt(np.einsum("ij,ij->j", xyz, xyz))

    def pair(
        self, axis: str, t0_ns: int, rate_hz: float, samples: np.ndarray
    ) -> tuple[int, float, np.ndarray] | None:
        """As ``add_axes`` with the axes as rows, shape (3, n): the layout the filters take."""
        if axis not in self.AXES:
            raise ValueError(f"TriaxialBuffer: axis must be one of {self.AXES}, got {axis!r}")
        if self._rate_hz is None or not _same_rate(rate_hz, self._rate_hz):
            self._rate_hz, self._pending = rate_hz, {}
        period_ns = 1e9 / rate_hz
        pending = self._pending
        samples = np.asarray(samples, dtype=float)
        held_t0_ns, held = pending.get(axis, (float(t0_ns), samples[:0]))
        tolerance_ns = 1.5 * period_ns + self.jitter_s * 1e9
        if held.size and abs(t0_ns - (held_t0_ns + held.size * period_ns)) <= tolerance_ns:
            held = np.concatenate((held, samples))
        else:
            held = samples  # held until paired, then copied out
        limit = math.ceil(self.max_pending_s * rate_hz)
        if held.size > limit:
            held = held[-limit:]
        pending[axis] = (t0_ns + samples.size * period_ns - held.size * period_ns, held)
        if len(pending) < 3:
            return None
        (tx, x), (ty, y), (tz, z) = (pending[a] for a in self.AXES)
        start_ns = max(tx, ty, tz)
        if not tx == ty == tz:
            for name, (t0, arr) in pending.items():
                skip = min(arr.size, max(0, round((start_ns - t0) / period_ns)))
                pending[name] = (t0 + skip * period_ns, arr[skip:])
            (_, x), (_, y), (_, z) = (pending[a] for a in self.AXES)
        n = min(x.size, y.size, z.size)
        if n == 0:
            return None
        for name, (t0, arr) in pending.items():
            pending[name] = (t0 + n * period_ns, arr[n:])
        return round(start_ns), rate_hz, np.array((x[:n], y[:n], z[:n]))


class Window(NamedTuple):
    filtered: np.ndarray
    raw: np.ndarray | None
    rate_hz: float
    completeness: float
    t_end_ns: int


class FilteredChannel:
    """One channel's streaming filter and ring; the filter restarts when the ring does.

    With ``rows`` > 0 it holds that many signals sampled together (samples (rows, n)), all
    through the same filter design in one call. With ``keep_raw`` the unfiltered samples
    share the ring as extra rows: one time base, one gap check and one window for both.
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
        self.ring: SampleRing | None = None
        self._filter: StreamingSos | None = None
        self._last = 0.0
        self.nonfinite = 0

    def feed(self, samples: np.ndarray, t0_ns: int, rate_hz: float) -> None:
        ring = self.ring
        if ring is None or not _same_rate(rate_hz, ring.rate_hz):
            try:
                sos = self._design(rate_hz)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
            self._filter = StreamingSos(sos)
            if ring is None:
                ring_rows = max(1, self._rows) * 2 if self._keep_raw else self._rows
                ring = self.ring = SampleRing(rate_hz, self._capacity_s, rows=ring_rows)
        elif not ring.continues(t0_ns, rate_hz):
            self._filter.reset()
        x = np.asarray(samples, dtype=float)
        # A finite sum means finite samples; only a sum that is not looks sample by sample.
        if not math.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            self.nonfinite += int(np.count_nonzero(bad))
            if x.ndim == 1:
                x = fill_nonfinite(x, self._last)
            else:
                x = np.where(bad, 0.0, x)
        n = x.shape[-1]
        if x.ndim == 1:
            self._last = float(x[-1])
        if self._keep_raw:
            both = np.array((x, x)).reshape(-1, n)  # filtered in place in the first half
            self._filter.process_in_place(both[: len(both) // 2])
        else:
            both = self._filter.process(x)
        ring.extend(both, t0_ns + round(n * 1e9 / rate_hz), rate_hz)

    @property
    def resets(self) -> int:
        return 0 if self.ring is None else self.ring.resets

    def window(self, t_ns: int, window_s: float, stale_s: float) -> Window | None:
        """The latest window, or None when under 80% of a window is held or data is stale.

        Its arrays are read-only views on the ring, valid until the channel is fed again."""
        ring = self.ring
        if ring is None or ring.t_end_ns is None:
            return None
        if t_ns - (ring.t_end_ns - ring.period_ns) > stale_s * 1e9 or ring.duration_s < 0.8 * window_s:
            return None
        held = ring.view(window_s)
        if not self._keep_raw:
            filtered, raw = held, None
        elif self._rows:
            filtered, raw = held[: self._rows], held[self._rows :]
        else:
            filtered, raw = held[0], held[1]
        return Window(filtered, raw, ring.rate_hz, min(1.0, ring.duration_s / window_s), ring.t_end_ns)
