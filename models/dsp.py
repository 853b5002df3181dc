"""Signal-processing primitives shared by the vitals: filter design, streaming filters,
spectral peak picking, clipping and smoothing.

Filters are Butterworth designs returned as second-order sections: a cascade of biquads stays
numerically stable at the low normalised cut-offs physiology needs (0.3 Hz at 250 Hz is
0.0024 of Nyquist), where a single transfer-function polynomial loses precision.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from models import iir
from models.peaks import local_maxima, select_by_distance


def _check_cutoff(name: str, cutoff_hz: float, rate_hz: float) -> None:
    if rate_hz <= 0:
        raise ValueError(f"{name}: rate_hz must be > 0, got {rate_hz}")
    if not 0 < cutoff_hz < rate_hz / 2:
        raise ValueError(
            f"{name}: cut-off {cutoff_hz} Hz must lie between 0 and Nyquist ({rate_hz / 2} Hz)"
        )


def bandpass_sos(low_hz: float, high_hz: float, rate_hz: float, order: int = 2) -> np.ndarray:
    """Butterworth band-pass as SOS; ``order`` per edge (the filter has 2*order poles)."""
    _check_cutoff("bandpass low edge", low_hz, rate_hz)
    _check_cutoff("bandpass high edge", high_hz, rate_hz)
    if low_hz >= high_hz:
        raise ValueError(f"bandpass: low edge {low_hz} Hz must be below high edge {high_hz} Hz")
    return iir.butter(order, (low_hz, high_hz), "bandpass", rate_hz)


def lowpass_sos(cutoff_hz: float, rate_hz: float, order: int = 2) -> np.ndarray:
    _check_cutoff("lowpass", cutoff_hz, rate_hz)
    return iir.butter(order, cutoff_hz, "lowpass", rate_hz)


def highpass_sos(cutoff_hz: float, rate_hz: float, order: int = 2) -> np.ndarray:
    _check_cutoff("highpass", cutoff_hz, rate_hz)
    return iir.butter(order, cutoff_hz, "highpass", rate_hz)


class StreamingSos:
    """An SOS filter applied block by block, its state carried between calls.

    The state starts as the steady state for a constant input equal to the first sample
    (``sosfilt_zi`` scaled), so a signal sitting on a large DC level - PPG counts near 1e5,
    an ECG front-end's mid-rail - does not ring through the first seconds. Filtering a
    signal in any split of blocks gives the same output as ``sosfilt`` on the whole of it
    with that initial state.
    """

    def __init__(self, sos: np.ndarray) -> None:
        sos = np.asarray(sos, dtype=float)
        if sos.ndim != 2 or sos.shape[1] != 6:
            raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
        self.sos = np.ascontiguousarray(sos)
        self._cascade = iir.cascade(self.sos)
        self._zi: np.ndarray | None = None  # (signals, 2 * n_sections)

    def reset(self) -> None:
        """Forget the state: the next sample re-initialises it (after a gap)."""
        self._zi = None

    @property
    def started(self) -> bool:
        return self._zi is not None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter 1-D samples, or rows of a 2-D (signals, n) array each with its own state
        (the accelerometer's three axes go through one call)."""
        x = np.asarray(x, dtype=float)
        if x.ndim not in (1, 2):
            raise ValueError(f"StreamingSos.process needs 1-D or 2-D samples, got shape {x.shape}")
        if x.shape[-1] == 0:
            return x.copy()
        y = np.array(x, dtype=np.float64, order="C", ndmin=2)
        self.process_in_place(y)
        return y if x.ndim == 2 else y[0]

    def process_in_place(self, y: np.ndarray) -> None:
        """Filter the rows of a C-contiguous float64 (signals, n) array in place, each row with
        its own state: no copy for a caller that has its own buffer to fill."""
        if self._zi is None:
            self._zi = self._cascade.zi_unit[None, :] * y[:, :1]
        elif self._zi.shape[0] != y.shape[0]:
            raise ValueError(f"StreamingSos.process: samples of shape {y.shape} do not match the "
                             f"filter's state {self._zi.shape}")
        y[...], self._zi = self._cascade.run(y, self._zi)


def zero_phase(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Forward-backward filtering (no phase shift, so no delay on a fiducial point), each pass
    started in the steady state of its first sample; cheaper than ``sosfiltfilt``'s padding
    for the short windows the vitals use, at the cost of a short edge transient."""
    fwd = StreamingSos(sos)
    y = fwd.process(np.asarray(x, dtype=float))
    fwd.reset()
    return fwd.process(y[::-1])[::-1]


def rfft_padded(x: np.ndarray, nfft: int) -> np.ndarray:
    """``np.fft.rfft(x, nfft, axis=-1)``: real rows zero-padded to ``nfft`` samples."""
    return np.fft.rfft(x, nfft, axis=-1)


def median(x: np.ndarray) -> float:
    """Median of a short 1-D array (NaN when empty): one partition instead of ``np.median``'s
    dozen calls, which dominate at the few-to-hundreds of values the vitals take medians of."""
    s = np.array(x, dtype=float).ravel()  # a copy to partition in place
    n = s.size
    if n == 0:
        return float("nan")
    k = n // 2
    if n % 2:
        s.partition(k)
        return float(s[k])
    s.partition((k - 1, k))
    return 0.5 * float(s[k - 1] + s[k])


def gradient(x: np.ndarray) -> np.ndarray:
    """``np.gradient`` of a 1-D array at unit spacing (central inside, one-sided at the ends)."""
    x = np.asarray(x, dtype=float)
    g = np.empty_like(x)
    if x.size < 2:
        g[:] = 0.0
        return g
    g[1:-1] = x[2:] - x[:-2]
    g[1:-1] *= 0.5
    g[0], g[-1] = x[1] - x[0], x[-1] - x[-2]
    return g


def find_peaks(x: np.ndarray, distance: float = 1.0, height: float | None = None) -> np.ndarray:
    """``scipy.signal.find_peaks(x, height=height, distance=distance)[0]`` (``models.peaks``)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"find_peaks needs a 1-D signal, got shape {x.shape}")
    if distance < 1:
        raise ValueError(f"find_peaks: distance must be >= 1, got {distance}")
    peaks = local_maxima(x)
    if height is not None and peaks.size:
        peaks = peaks[x[peaks] >= height]
    if distance > 1 and peaks.size > 1:
        peaks = peaks[select_by_distance(peaks, x[peaks], distance)]
    return peaks


def parabolic_vertex(left: float, centre: float, right: float) -> float:
    """Scalar ``parabolic_offset``, for one peak (plain floats: no array overhead)."""
    denom = left - 2.0 * centre + right
    if denom == 0 or not math.isfinite(denom):
        return 0.0
    return min(0.5, max(-0.5, 0.5 * (left - right) / denom))


def parabolic_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-sample offset (-0.5..0.5) of the vertex of the parabola through three points.

    Vectorised over peaks; a flat top gives offset 0.
    """
    left, centre, right = (np.asarray(a, dtype=float) for a in (left, centre, right))
    denom = left - 2.0 * centre + right
    flat = denom == 0
    offset = np.where(flat, 0.0, 0.5 * (left - right) / np.where(flat, 1.0, denom))
    return np.minimum(np.maximum(offset, -0.5), 0.5)


@functools.lru_cache(maxsize=8)
def hann(n: int) -> np.ndarray:
    """A read-only Hann window of ``n`` samples, made once per length."""
    window = np.hanning(n)
    window.flags.writeable = False
    return window


def refined_peak_times_s(x: np.ndarray, peaks: np.ndarray, rate_hz: float) -> np.ndarray:
    """Times (s from the first sample) of peak indices refined to sub-sample precision.

    At 160 bpm and 250 Hz one sample is 1% of an RR interval: without refinement the
    quantisation alone moves a heart rate by over 1 bpm.
    """
    peaks = np.asarray(peaks, dtype=int)
    inner = peaks[(peaks > 0) & (peaks < x.size - 1)]
    return (inner + parabolic_offset(x[inner - 1], x[inner], x[inner + 1])) / rate_hz


def clipped_fraction(raw: np.ndarray) -> float:
    """Fraction of samples pinned at the window's extreme value (ADC or front-end saturation).

    A saturated converter repeats its full-scale code; a live signal touches its extreme on
    a handful of samples. A flat window counts as fully clipped.
    """
    raw = np.asarray(raw, dtype=float)
    if raw.size == 0:
        return 0.0
    hi, lo = raw.max(), raw.min()
    if hi == lo:
        return 1.0
    return float(max(np.count_nonzero(raw == hi), np.count_nonzero(raw == lo)) / raw.size)


@functools.lru_cache(maxsize=16)
def box_kernel(width: int) -> np.ndarray:
    """``width`` taps of 1/width: a moving average's kernel, built once per width."""
    kernel = np.full(max(1, int(width)), 1.0 / max(1, int(width)))
    kernel.flags.writeable = False
    return kernel


def _nearest_padded(x: np.ndarray, size: int, origin: int) -> tuple[np.ndarray, int]:
    """``x`` with its end samples repeated, and where sample i's window starts in it: scipy.ndimage's
    1-D filters see x[i - size // 2 - origin ...] (origin 0: centred; (size - 1) // 2: the last
    ``size`` samples up to i)."""
    if size < 1 or not -(size // 2) <= origin <= (size - 1) // 2:
        raise ValueError(f"filter size {size} / origin {origin} out of range")
    start = -(size // 2) - origin
    left, right = max(0, -start), max(0, start + size - 1)
    return np.concatenate((np.full(left, x[0]), x, np.full(right, x[-1]))), start + left


def _nearest_windows(x: np.ndarray, size: int, origin: int) -> np.ndarray:
    """Row i: the ``size`` samples scipy.ndimage's 1-D filters see at i, the ends repeated."""
    padded, first = _nearest_padded(x, size, origin)
    return np.lib.stride_tricks.sliding_window_view(padded, size)[first:first + x.size]


def uniform_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """Centred moving mean of ``size`` samples, ends repeated (``scipy.ndimage.uniform_filter1d``
    with mode="nearest", to rounding)."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x.copy()
    padded, first = _nearest_padded(x, size, 0)
    c = np.concatenate(([0.0], np.cumsum(padded[first:first + x.size + size - 1])))
    return (c[size:] - c[:x.size]) / size


def minimum_filter1d(x: np.ndarray, size: int, origin: int = 0) -> np.ndarray:
    """Running minimum (``scipy.ndimage.minimum_filter1d`` with mode="nearest")."""
    x = np.asarray(x, dtype=float)
    return x.copy() if x.size == 0 else _nearest_windows(x, size, origin).min(axis=1)


def median_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """Centred running median (``scipy.ndimage.median_filter`` on 1-D, mode="nearest")."""
    x = np.asarray(x, dtype=float)
    return x.copy() if x.size == 0 else np.median(_nearest_windows(x, size, 0), axis=1)


def fill_nonfinite(x: np.ndarray, previous: float) -> np.ndarray:
    """Replace NaN/inf by the last finite value before it (``previous`` at the start).

    A single NaN inside an IIR filter's state would poison every later output.
    """
    x = np.asarray(x, dtype=float)
    if math.isfinite(np.add.reduce(x, axis=None)):  # the common case, in one pass
        return x
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    idx = np.where(bad, -1, np.arange(x.size))
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, x[np.maximum(idx, 0)], previous)
