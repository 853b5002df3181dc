"""Butterworth design and IIR filtering in second-order sections, in numpy alone.

The device cannot afford ``scipy.signal`` at run time: importing it pulls in scipy.stats,
scipy.optimize, scipy.interpolate and scipy.spatial, about 40 MB of resident memory and
0.7 s of start-up on a 150 MB, 3 s budget, for the four functions the signal path uses.
This module gives those four with the same conventions and results (the tests hold them to
``scipy.signal`` within 1e-9):

- ``butter(order, cutoff, btype, fs)``: the digital Butterworth filter as SOS, designed the
  way ``scipy.signal.butter(..., output="sos")`` does (analog prototype, frequency
  transform, bilinear transform with pre-warping, conjugate poles paired with the nearest
  zeros, sections ordered with the poles nearest the unit circle last);
- ``sosfilt(sos, x, zi)`` along the last axis with the state ``zi`` of shape
  (..., n_sections, 2) in transposed direct form II, as ``scipy.signal.sosfilt`` keeps it;
- ``sosfilt_zi(sos)``: the state of the cascade in steady state for a unit step;
- ``sosfiltfilt(sos, x, padlen)``: forward-backward filtering with odd extension;
- ``group_delay(sos, f_hz, fs)``: the cascade's group delay at one frequency, in samples.

Filtering works on blocks as a state-space system: the cascade's 2K-sample state s and a
block x of N samples give y = T x + O s and s' = A^N s + C x, where T is the N x N Toeplitz
matrix of the impulse response. The matrices are exact (built from the recursion itself) and
cached per power-of-two block length, so a block costs a few small matrix products instead of
a Python loop over samples.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Blocks are cut into pieces whose lengths are powers of two up to this (a 128 x 128
#: float64 matrix is 128 KB).
MAX_BLOCK = 128
#: A block up to this long (one second of ECG at 250 Hz) may get a matrix of its own.
MAX_EXACT = 256
_BTYPES = ("lowpass", "highpass", "bandpass")


# -- design ----------------------------------------------------------------------------------
def butter(order: int, cutoff, btype: str = "lowpass", fs: float = 2.0) -> np.ndarray:
    """Digital Butterworth filter as second-order sections, shape (n_sections, 6).

    ``cutoff`` is one frequency (lowpass, highpass) or a (low, high) pair (bandpass), in the
    units of ``fs``; a band-pass of ``order`` has 2 * ``order`` poles.
    """
    if btype not in _BTYPES:
        raise ValueError(f"butter: btype must be one of {_BTYPES}, got {btype!r}")
    if int(order) != order or order < 1:
        raise ValueError(f"butter: order must be a positive integer, got {order}")
    order = int(order)
    edges = np.atleast_1d(np.asarray(cutoff, dtype=float))
    if edges.size != (2 if btype == "bandpass" else 1):
        raise ValueError(f"butter: a {btype} takes {'two edges' if btype == 'bandpass' else 'one cut-off'}, "
                         f"got {cutoff!r}")
    nyquist = fs / 2.0
    if not np.all((edges > 0) & (edges < nyquist)):
        raise ValueError(f"butter: cut-off {cutoff!r} must lie between 0 and Nyquist ({nyquist})")
    # Pre-warp: the bilinear transform (with 2 * fs' = 4 at fs' = 2) maps analog w to
    # digital 2 * atan(w / 4) * fs' / 2 ... so ask the analog filter for 4 * tan(pi * f / fs).
    warped = 4.0 * np.tan(np.pi * edges / fs)
    # Analog prototype: poles on the left half of the unit circle, no zeros, gain 1.
    m = np.arange(-order + 1, order, 2)
    poles = -np.exp(1j * np.pi * m / (2 * order))
    zeros = np.empty(0, dtype=complex)
    gain = 1.0
    if btype == "lowpass":
        zeros, poles, gain = zeros, warped[0] * poles, gain * warped[0] ** order
    elif btype == "highpass":
        gain = gain * np.real(np.prod(-zeros) / np.prod(-poles))
        zeros, poles = np.zeros(order, dtype=complex), warped[0] / poles
    else:
        bw, w0 = warped[1] - warped[0], math.sqrt(warped[0] * warped[1])
        lp = poles * bw / 2.0
        root = np.sqrt(lp**2 - w0**2 + 0j)
        poles = np.concatenate((lp + root, lp - root))
        zeros = np.zeros(order, dtype=complex)
        gain = gain * bw**order
    # Bilinear transform at fs' = 2 (the frequencies were pre-warped for it).
    fs2 = 4.0
    degree = len(poles) - len(zeros)
    z_d = (fs2 + zeros) / (fs2 - zeros)
    p_d = (fs2 + poles) / (fs2 - poles)
    z_d = np.append(z_d, -np.ones(degree))
    k_d = gain * np.real(np.prod(fs2 - zeros) / np.prod(fs2 - poles))
    return _zpk2sos(z_d, p_d, k_d)


def _zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """Pair poles and zeros into sections as ``scipy.signal.zpk2sos(pairing="nearest")``
    does for these filters: the pole nearest the unit circle first takes the zeros nearest to
    it, and ends up in the last section."""
    n_sections = (max(len(z), len(p)) + 1) // 2
    z = list(np.asarray(z, dtype=complex))
    p = list(np.asarray(p, dtype=complex))
    if len(p) % 2:
        p.append(0.0)
        z.append(0.0)
    while len(z) < len(p):
        z.append(0.0)
    z_arr, p_arr = np.array(z), np.array(p)
    sections = []
    p_left, z_left = list(p_arr), list(z_arr)
    for _ in range(n_sections):
        # The remaining pole closest to the unit circle (one of a conjugate pair, or real).
        i = int(np.argmin([abs(1 - abs(x)) for x in p_left]))
        p1 = p_left.pop(i)
        if abs(p1.imag) > 1e-12:
            j = int(np.argmin([abs(x - np.conj(p1)) for x in p_left]))
            p2 = p_left.pop(j)
        else:
            real = [x for x in p_left if abs(x.imag) <= 1e-12]
            if real:  # the other real pole nearest the unit circle
                j = int(np.argmin([abs(1 - abs(x)) if abs(x.imag) <= 1e-12 else np.inf for x in p_left]))
                p2 = p_left.pop(j)
            else:
                p2 = 0.0
        zs = []
        for _ in range(2):
            if not z_left:
                zs.append(0.0)
                continue
            j = int(np.argmin([abs(x - p1) for x in z_left]))
            zs.append(z_left.pop(j))
        b = np.real(np.poly(zs))
        a = np.real(np.poly([p1, p2]))
        sections.append(np.concatenate((b, a)))
    sos = np.array(sections[::-1], dtype=float)
    sos[0, :3] *= k
    return sos


# -- the cascade as a state-space system --------------------------------------------------------
def _check_sos(sos) -> np.ndarray:
    sos = np.ascontiguousarray(sos, dtype=float)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
    if np.any(sos[:, 3] == 0):
        raise ValueError("sos: the leading denominator coefficient (a0) of a section is 0")
    return sos / sos[:, 3:4]


def _one_step(sos: np.ndarray, state: np.ndarray, x: float) -> tuple[float, np.ndarray]:
    """One sample through the cascade in transposed direct form II; ``state`` is (K, 2)."""
    new = np.empty_like(state)
    for k, (b0, b1, b2, _, a1, a2) in enumerate(sos):
        y = b0 * x + state[k, 0]
        new[k, 0] = b1 * x - a1 * y + state[k, 1]
        new[k, 1] = b2 * x - a2 * y
        x = y
    return x, new


@functools.lru_cache(maxsize=64)
def _state_space(sos_bytes: bytes, n_sections: int):
    """(A, B, C, D) of the cascade: s' = A s + B x, y = C s + D x, s = the (K, 2) states."""
    sos = np.frombuffer(sos_bytes).reshape(n_sections, 6)
    n = 2 * n_sections
    a, b, c = np.empty((n, n)), np.empty(n), np.empty(n)
    d, s1 = _one_step(sos, np.zeros((n_sections, 2)), 1.0)
    b[:] = s1.ravel()
    for j in range(n):
        unit = np.zeros(n)
        unit[j] = 1.0
        y, s1 = _one_step(sos, unit.reshape(n_sections, 2), 0.0)
        a[:, j] = s1.ravel()
        c[j] = y
    return a, b, c, float(d)


@functools.lru_cache(maxsize=32)
def _block(sos_bytes: bytes, n_sections: int, length: int) -> np.ndarray:
    """The block matrix M for ``length`` samples: [y, s'] = [x, s] @ M for row vectors, with
    M = [[T', C'], [O', (A^N)']] (T: impulse-response Toeplitz, O: state to output, C: input
    to final state)."""
    a, b, c, d = _state_space(sos_bytes, n_sections)
    n = a.shape[0]
    powers = np.empty((length + 1, n, n))  # A^0 .. A^length
    powers[0] = np.eye(n)
    for i in range(1, length + 1):
        powers[i] = a @ powers[i - 1]
    h = np.empty(length)  # impulse response: D, C B, C A B, ...
    h[0] = d
    if length > 1:
        h[1:] = np.einsum("j,ijk,k->i", c, powers[: length - 1], b)
    idx = np.arange(length)
    lag = idx[:, None] - idx[None, :]
    t = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)  # y[i] = sum_j t[i, j] x[j]
    o = np.einsum("j,ijk->ik", c, powers[:length])  # y[i] += C A^i s
    cx = np.einsum("ijk,k->ji", powers[length - 1::-1], b)  # s' += sum_j A^(N-1-j) B x[j]
    m = np.empty((length + n, length + n))
    m[:length, :length] = t.T
    m[:length, length:] = cx.T
    m[length:, :length] = o.T
    m[length:, length:] = powers[length].T
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=512)
def _pieces(length: int) -> tuple[int, ...]:
    """``length`` as MAX_BLOCK-sample pieces and then its binary digits, largest first."""
    out = [MAX_BLOCK] * (length // MAX_BLOCK)
    rest, bit = length % MAX_BLOCK, MAX_BLOCK
    while rest:
        bit //= 2
        if rest >= bit:
            out.append(bit)
            rest -= bit
    return tuple(out)


class Cascade:
    """An SOS cascade ready to filter blocks with little per-call overhead: the streaming
    filters of the signal path call ``run`` once per block and channel group.

    Up to ``EXACT_LENGTHS`` block lengths of at most MAX_EXACT samples get a matrix of their
    own (one product per block; at most ~2 MB per filter); other lengths go in power-of-two
    pieces.
    """

    EXACT_LENGTHS = 4

    def __init__(self, sos) -> None:
        self.sos = _check_sos(sos)
        self.n_sections = self.sos.shape[0]
        self.n_states = 2 * self.n_sections
        self._key = self.sos.tobytes()
        self._plans: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        self._matrices: dict[int, np.ndarray] = {}  # block length -> its matrix
        self._exact = 0

    @functools.cached_property
    def zi_unit(self) -> np.ndarray:
        """``sosfilt_zi`` in the state layout of ``run`` (2K,): the steady state for a unit step."""
        a, b, _, _ = _state_space(self._key, self.n_sections)
        zi = np.linalg.solve(np.eye(self.n_states) - a, b)
        zi.setflags(write=False)
        return zi

    def _matrix(self, length: int) -> np.ndarray:
        m = self._matrices.get(length)
        if m is None:
            m = self._matrices[length] = _block.__wrapped__(self._key, self.n_sections, length)
        return m

    def _plan(self, length: int) -> list[tuple[int, int, np.ndarray]]:
        if length <= MAX_EXACT and (length in self._matrices or self._exact < self.EXACT_LENGTHS):
            self._exact += length not in self._matrices
            pieces: tuple[int, ...] = (length,)
        else:
            pieces = _pieces(length)
        plan, start = [], 0
        for piece in pieces:
            plan.append((start, start + piece, self._matrix(piece)))
            start += piece
        if len(self._plans) < 4 * self.EXACT_LENGTHS:
            self._plans[length] = plan
        return plan

    def run(self, rows: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``rows`` (signals, n) from ``state`` (signals, 2K); return (y, new state)."""
        n = rows.shape[1]
        if n > MAX_EXACT and n not in self._plans:
            return self._run_long(rows, state)
        plan = self._plans.get(n) or self._plan(n)
        if len(plan) == 1:
            z = np.concatenate((rows, state), axis=1) @ plan[0][2]
            return z[:, :n], z[:, n:]
        y = np.empty_like(rows)
        for a, b, m in plan:
            z = np.concatenate((rows[:, a:b], state), axis=1) @ m
            y[:, a:b] = z[:, : b - a]
            state = z[:, b - a:]
        return y, state

    def _run_long(self, rows: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A long block as MAX_BLOCK-sample chunks filtered side by side from rest (one matrix
        product), then each chunk's start state carried forward (tiny products) and its
        response added (one more product): the same result as chunk after chunk."""
        n, size = rows.shape[1], MAX_BLOCK
        chunks = n // size
        m = self._matrix(size)
        t_c, o_t, a_t = m[:size], m[size:, :size], m[size:, size:]
        y = np.empty_like(rows)
        new_state = np.empty_like(state)
        for r in range(rows.shape[0]):
            z = rows[r, : chunks * size].reshape(chunks, size) @ t_c
            starts = np.empty((chunks, self.n_states))
            s = state[r]
            for c in range(chunks):
                starts[c] = s
                s = s @ a_t + z[c, size:]
            y[r, : chunks * size] = (z[:, :size] + starts @ o_t).ravel()
            rest = n - chunks * size
            if rest:
                tail, s = self.run(rows[r:r + 1, chunks * size:], s[None, :])
                y[r, chunks * size:] = tail[0]
                s = s[0]
            new_state[r] = s
        return y, new_state


@functools.lru_cache(maxsize=32)
def _cascade(sos_bytes: bytes, n_sections: int) -> Cascade:
    return Cascade(np.frombuffer(sos_bytes).reshape(n_sections, 6))


def cascade(sos: np.ndarray) -> Cascade:
    """One ``Cascade`` (and its block matrices) per filter design, shared by every user."""
    sos = np.ascontiguousarray(sos, dtype=float)
    return _cascade(sos.tobytes(), sos.shape[0])


def sosfilt(sos, x, zi=None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` along its last axis; with ``zi`` (shape x.shape[:-1] + (K, 2)) return
    ``(y, zf)`` as ``scipy.signal.sosfilt`` does with its state moved to the end."""
    sos = _check_sos(sos)
    x = np.asarray(x, dtype=float)
    k = sos.shape[0]
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    if zi is None:
        state = np.zeros((rows.shape[0], 2 * k))
    else:
        zi = np.asarray(zi, dtype=float)
        if zi.shape != lead + (k, 2):
            raise ValueError(f"sosfilt: zi must have shape {lead + (k, 2)}, got {zi.shape}")
        state = zi.reshape(rows.shape[0], 2 * k)
    y, state = _cascade(sos.tobytes(), k).run(rows, state)
    y = y.reshape(x.shape)
    if zi is None:
        return y
    return y, state.reshape(lead + (k, 2))


def sosfilt_zi(sos) -> np.ndarray:
    """The (K, 2) state in which the cascade's output equals a constant input of 1."""
    sos = _check_sos(sos)
    return _cascade(sos.tobytes(), sos.shape[0]).zi_unit.reshape(sos.shape[0], 2).copy()


def sosfiltfilt(sos, x, padlen: int | None = None) -> np.ndarray:
    """Zero-phase filtering along the last axis: forward then backward, each pass started in
    the steady state of its first sample, on ``x`` extended by ``padlen`` samples of odd
    reflection at both ends (default ``3 * (2K + 1)``, as SciPy's)."""
    sos = _check_sos(sos)
    x = np.asarray(x, dtype=float)
    k = sos.shape[0]
    if padlen is None:
        padlen = 3 * (2 * k + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    n = x.shape[-1]
    if padlen >= n:
        raise ValueError(f"sosfiltfilt: the signal ({n} samples) must be longer than padlen ({padlen})")
    if padlen > 0:
        left = 2 * x[..., :1] - x[..., padlen:0:-1]
        right = 2 * x[..., -1:] - x[..., -2:-padlen - 2:-1]
        ext = np.concatenate((left, x, right), axis=-1)
    else:
        ext = x
    zi = sosfilt_zi(sos)
    y, _ = sosfilt(sos, ext, zi * ext[..., :1, None])
    y = y[..., ::-1]
    y, _ = sosfilt(sos, y, zi * y[..., :1, None])
    y = y[..., ::-1]
    return np.ascontiguousarray(y[..., padlen:n + padlen] if padlen > 0 else y)


def group_delay(sos, f_hz: float, fs: float) -> float:
    """Group delay of the cascade at ``f_hz``, in samples: -d(phase)/d(omega), summed over
    the sections (each b(z)/a(z) contributes its numerator's and denominator's terms)."""
    sos = _check_sos(sos)
    w = 2 * np.pi * f_hz / fs
    total = 0.0
    for sign, coeffs in ((1.0, sos[:, :3]), (-1.0, sos[:, 3:])):
        for poly in coeffs:
            n = np.arange(3)
            e = np.exp(-1j * w * n)
            num = np.sum(n * poly * e)
            den = np.sum(poly * e)
            if abs(den) < 1e-300:
                continue
            total += sign * float(np.real(num / den))
    return total
