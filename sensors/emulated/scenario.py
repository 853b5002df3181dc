"""What the physiology simulator plays: the subject's state over time, and its random timeline.

A ``Scenario`` is a list of keyframes ``(t_s, State or dict of changes)``. Numbers are
interpolated linearly between keyframes, the contact flags (``finger_on``, ``leads_on``,
``skin_contact``) step at their keyframe. With ``loop_s`` the timeline repeats every
``loop_s`` seconds: after the last keyframe the state moves linearly back towards the first
keyframe, reached again at ``loop_s + t_first``, so a looping demo has no jump.

    Scenario([(0, State(hr_bpm=62)), (30, {"arousal": 0.8}), (60, {"arousal": 0.1})], loop_s=90)

``care`` lists what the staff do at the bedside during the first loop, as
``(t_s, command, payload)``: the demo sends each to the device's command router when its time
comes (an admission, a calibration at rest, a dose and its reassessment).

``SeededTimeline`` holds the random side of the timeline (noise, onset schedules) as pure
functions of (seed, time), made lazily in ``CHUNK_S`` chunks.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

import numpy as np

CHUNK_S = 10.0
NOISE_RATE_HZ = 1000.0
NUMERIC_FIELDS = ("hr_bpm", "hrv_ms", "resp_rate_bpm", "arousal", "motion_g", "pain")
FLAG_FIELDS = ("finger_on", "leads_on", "skin_contact")

# Plausible physiological ranges; anything outside is a typo, not a subject.
_LIMITS = {
    "hr_bpm": (25.0, 220.0),
    "hrv_ms": (0.0, 300.0),
    "resp_rate_bpm": (3.0, 60.0),
    "arousal": (0.0, 1.0),
    "motion_g": (0.0, 2.0),
    "pain": (0.0, 10.0),
}


@dataclass(frozen=True)
class State:
    """The subject at one instant.

    ``hr_bpm`` is the heart rate at zero arousal; ``arousal`` (sympathetic activation, 0..1)
    raises it, lowers HRV, raises skin conductance and the SCR rate, constricts the finger's
    vessels (smaller PPG pulse) and shortens the pulse arrival time. ``pain`` (0..10) is a
    latent that raises the effective arousal. ``hrv_ms`` is the SDNN of beat-to-beat intervals
    at zero arousal. ``motion_g`` is the RMS dynamic acceleration of the limb.
    """

    hr_bpm: float = 65.0
    hrv_ms: float = 45.0
    resp_rate_bpm: float = 14.0
    arousal: float = 0.0
    motion_g: float = 0.0
    finger_on: bool = True
    leads_on: bool = True
    skin_contact: bool = True
    pain: float = 0.0

    def __post_init__(self) -> None:
        for name in NUMERIC_FIELDS:
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"State.{name} must be a number, got {value!r}") from None
            lo, hi = _LIMITS[name]
            if not lo <= value <= hi:
                raise ValueError(f"State.{name} must be in [{lo:g}, {hi:g}], got {value!r}")
            object.__setattr__(self, name, value)
        for name in FLAG_FIELDS:
            object.__setattr__(self, name, bool(getattr(self, name)))


def effective_arousal(cols: dict) -> np.ndarray:
    """Sympathetic activation the body acts on: pain pushes arousal half-way to 1 at pain 10."""
    return cols["arousal"] + (1.0 - cols["arousal"]) * 0.05 * cols["pain"]


def effective_hr_bpm(cols: dict) -> np.ndarray:
    """Heart rate: the scenario's resting rate plus up to 25 bpm of sympathetic drive."""
    return cols["hr_bpm"] + 25.0 * effective_arousal(cols)


_FIELD_NAMES = frozenset(f.name for f in fields(State))


class Scenario:
    """Keyframed states, linearly interpolated (flags step), optionally looping."""

    def __init__(self, keyframes, loop_s: float | None = None,
                 care: tuple[tuple[float, str, dict], ...] = ()) -> None:
        for i, event in enumerate(care):
            if not (len(event) == 3 and math.isfinite(float(event[0])) and isinstance(event[1], str)
                    and isinstance(event[2], Mapping)):
                raise ValueError(f"care event {i} must be (t_s, command, payload dict), got {event!r}")
        self.care = tuple(sorted(care, key=lambda e: float(e[0])))
        keyframes = list(keyframes)
        if not keyframes:
            raise ValueError("Scenario needs at least one keyframe")
        times: list[float] = []
        states: list[State] = []
        previous = State()
        for i, item in enumerate(keyframes):
            try:
                t_s, spec = item
                t_s = float(t_s)
            except (TypeError, ValueError):
                raise ValueError(
                    f"keyframe {i} must be (t_s, State or dict), got {item!r}"
                ) from None
            if not math.isfinite(t_s):
                raise ValueError(f"keyframe {i}: time must be finite, got {t_s}")
            if times and t_s <= times[-1]:
                raise ValueError(f"keyframe {i}: times must increase, {t_s} after {times[-1]}")
            if isinstance(spec, State):
                state = spec
            elif isinstance(spec, Mapping):
                unknown = set(spec) - _FIELD_NAMES
                if unknown:
                    raise ValueError(f"keyframe {i}: unknown State field(s) {sorted(unknown)}")
                state = replace(previous, **spec)
            else:
                raise TypeError(
                    f"keyframe {i}: expected a State or a dict, got {type(spec).__name__}"
                )
            times.append(t_s)
            states.append(state)
            previous = state
        self.keyframes: tuple[tuple[float, State], ...] = tuple(zip(times, states))
        self.loop_s = None if loop_s is None else float(loop_s)
        if self.loop_s is not None:
            if not (self.loop_s > 0 and math.isfinite(self.loop_s)):
                raise ValueError(f"loop_s must be a positive number, got {loop_s!r}")
            if times[0] < 0 or times[-1] > self.loop_s:
                raise ValueError(
                    f"with loop_s={self.loop_s:g} keyframe times must lie in [0, loop_s]"
                )
            # Wrap nodes: the last state before the first keyframe, the first after the last.
            node_t = [times[-1] - self.loop_s, *times, self.loop_s + times[0]]
            node_states = [states[-1], *states, states[0]]
            keep = [
                i for i in range(len(node_t)) if i == len(node_t) - 1 or node_t[i] < node_t[i + 1]
            ]
            node_t = [node_t[i] for i in keep]
            node_states = [node_states[i] for i in keep]
        else:
            node_t, node_states = times, states
        self._node_t = np.asarray(node_t, dtype=np.float64)
        self._node_values = {
            name: np.asarray([getattr(s, name) for s in node_states], dtype=np.float64)
            for name in (*NUMERIC_FIELDS, *FLAG_FIELDS)
        }

    @property
    def span_s(self) -> tuple[float, float]:
        """The interval over which the state changes (one loop when looping)."""
        if self.loop_s is not None:
            return 0.0, self.loop_s
        return self.keyframes[0][0], self.keyframes[-1][0]

    def columns_at(self, t_s) -> dict[str, np.ndarray]:
        """Every State field at each time of ``t_s``, as arrays (flags as bool arrays)."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.loop_s is not None:
            t = np.mod(t, self.loop_s)
        out: dict[str, np.ndarray] = {}
        for name in NUMERIC_FIELDS:
            out[name] = np.interp(t, self._node_t, self._node_values[name])
        step = np.clip(np.searchsorted(self._node_t, t, side="right") - 1, 0, len(self._node_t) - 1)
        for name in FLAG_FIELDS:
            out[name] = self._node_values[name][step] > 0.5
        return out

    def state_at(self, t_s: float) -> State:
        cols = self.columns_at(float(t_s))
        return State(**{k: (bool(v) if k in FLAG_FIELDS else float(v)) for k, v in cols.items()})

    @classmethod
    def rest(cls, **changes) -> Scenario:
        """A subject sitting still, fingers and electrodes on; ``changes`` override State fields."""
        return cls([(0.0, State(**changes))])

    @classmethod
    def demo(cls) -> Scenario:
        """Three minutes, looping: rest, a walk, an arousal (pain) episode with SCRs, rest.
        At the bedside: an admission at once, a calibration at rest after the walk, an opioid
        dose at the height of the pain and a nurse's PAINAD reassessment once it has eased."""
        rest = State(hr_bpm=66, hrv_ms=50, resp_rate_bpm=13, arousal=0.05)
        return cls(
            [
                (0.0, rest),
                (20.0, {}),
                (25.0, {"motion_g": 0.45, "hr_bpm": 84, "resp_rate_bpm": 18}),
                (55.0, {"motion_g": 0.5, "hr_bpm": 90}),
                (60.0, {"motion_g": 0.0, "hr_bpm": 75, "resp_rate_bpm": 15}),
                (80.0, {"hr_bpm": 68, "resp_rate_bpm": 13}),
                (90.0, {"arousal": 0.8, "pain": 6.0, "resp_rate_bpm": 18}),
                (130.0, {"arousal": 0.75, "pain": 5.0}),
                (150.0, {"arousal": 0.1, "pain": 0.0, "resp_rate_bpm": 13}),
            ],
            loop_s=180.0,
            care=(
                (0.0, "admit", {"reference": "demo-0001", "bed": "demo"}),
                (60.0, "calibrate", {"duration_s": 30}),
                (100.0, "analgesia", {"route": "iv", "drug_class": "opioid"}),
                (165.0, "painad", {"breathing": 0, "negative_vocalization": 0,
                                   "facial_expression": 1, "body_language": 0,
                                   "consolability": 0}),
            ),
        )


class RateIntegral:
    """``∫ rate(state(t)) dt`` from t = 0 for any t, without walking the timeline.

    Heart beats and breaths are where these phase integrals cross integers. Tabulating one
    loop (or the keyframe span, constant outside it) once lets every chunk of every signal
    evaluate the phase at any time independently, which is what makes the signals a pure
    function of time.
    """

    def __init__(
        self, scenario: Scenario, rate: Callable[[dict], np.ndarray], dt_s: float = 0.05
    ) -> None:
        a, b = scenario.span_s
        b = max(b, a + 1.0)
        n = max(1, math.ceil((b - a) / dt_s))
        self._grid = a + (b - a) * np.arange(n + 1) / n
        r = np.asarray(rate(scenario.columns_at(self._grid)), dtype=np.float64)
        self._cum = np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]) * np.diff(self._grid))])
        self._a, self._b = a, b
        self._rate_a, self._rate_b = r[0], r[-1]
        self._loop_s = scenario.loop_s

    def __call__(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        if self._loop_s is not None:
            laps = np.floor(t / self._loop_s)
            return laps * self._cum[-1] + np.interp(t - laps * self._loop_s, self._grid, self._cum)
        inside = np.interp(np.clip(t, self._a, self._b), self._grid, self._cum)
        return (
            inside
            + self._rate_a * np.minimum(t - self._a, 0.0)
            + self._rate_b * np.maximum(t - self._b, 0.0)
        )


class SeededTimeline:
    """Random values as pure functions of (seed, time).

    Each stream is cut into fixed chunks; chunk k of a stream is made on first use by
    ``make(rng, k)`` with a generator seeded by (seed, stream, k), and cached. So a value never
    depends on which chunks were made before or by whom, and chunks that end more than
    ``history_s`` before the latest request can be dropped (and rebuilt identically later).
    """

    def __init__(self, seed: int, history_s: float) -> None:
        self.seed = seed
        self.history_s = history_s
        self._cache: dict[tuple[str, int], tuple[float, object]] = {}
        self._lock = threading.RLock()  # making a chunk may need chunks of another stream
        self._latest_s = -math.inf
        self._pruned_at_s = -math.inf
        self._size_after_prune = 0

    def chunk(self, stream: str, k: int, t_end_s: float, make):
        key = (stream, k)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                rng = np.random.default_rng([self.seed, zlib.crc32(stream.encode()), k + (1 << 40)])
                hit = (t_end_s, make(rng, k))
                self._cache[key] = hit
            return hit[1]

    def note_request(self, t_max_s: float) -> None:
        with self._lock:
            self._latest_s = max(self._latest_s, t_max_s)
            horizon = self._latest_s - self.history_s
            # Sweep when the horizon moved or the cache grew (a request far behind the latest).
            if (
                horizon - self._pruned_at_s < CHUNK_S / 2
                and len(self._cache) < self._size_after_prune + 32
            ):
                return
            self._pruned_at_s = horizon
            for key in [k for k, (t_end, _) in self._cache.items() if t_end < horizon]:
                del self._cache[key]
            self._size_after_prune = len(self._cache)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def nodes(self, stream: str, idx: np.ndarray, rate_hz: float, width: int) -> np.ndarray:
        """Unit normal values of a grid with ``rate_hz`` nodes per second, at integer ``idx``."""
        per = max(1, round(CHUNK_S * rate_hz))
        flat = idx.ravel()
        kc = flat // per

        def make(rng, k):
            return rng.standard_normal((per, width))

        def block(k):
            return self.chunk(stream, int(k), (int(k) + 1) * per / rate_hz, make)

        k0, k1 = int(kc.min()), int(kc.max())
        if k0 == k1:
            out = block(k0)[flat - k0 * per]
        elif k1 - k0 < len(flat) + 8:
            out = np.concatenate([block(k) for k in range(k0, k1 + 1)])[flat - k0 * per]
        else:  # a few times far apart: only the chunks they touch
            uniq, inv = np.unique(kc, return_inverse=True)
            out = np.stack([block(k) for k in uniq])[inv.ravel(), flat - kc * per]
        return out.reshape(*idx.shape, width)

    def hold(self, stream: str, t: np.ndarray, width: int = 1) -> np.ndarray:
        """White noise at any sampling rate up to ``NOISE_RATE_HZ``: a fine grid, held."""
        return self.nodes(
            stream, np.floor(t * NOISE_RATE_HZ).astype(np.int64), NOISE_RATE_HZ, width
        )

    def smooth(self, stream: str, t: np.ndarray, spacing_s: float, width: int = 1) -> np.ndarray:
        """Smooth unit noise, (N, width): Catmull-Rom through normal values every ``spacing_s``."""
        x = t / spacing_s
        i = np.floor(x).astype(np.int64)
        f = (x - i)[:, None]
        p = self.nodes(stream, i[:, None] + np.arange(-1, 3), 1.0 / spacing_s, width)
        p0, p1, p2, p3 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        return 0.5 * (
            2 * p1
            + (p2 - p0) * f
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f**2
            + (3 * (p1 - p2) + p3 - p0) * f**3
        )

    def events(self, stream: str, t0_s: float, t1_s: float, make) -> dict[str, np.ndarray]:
        """The event table (dict of equal-length arrays) of every chunk touching [t0_s, t1_s]."""
        ks = range(math.floor(t0_s / CHUNK_S), math.floor(t1_s / CHUNK_S) + 1)
        parts = [self.chunk(stream, k, (k + 1) * CHUNK_S, make) for k in ks]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def thinned_onsets(scenario: Scenario, rng, k: int, max_per_s: float, rate_per_s):
    """Onsets in chunk k of a Poisson process whose rate follows the state (Lewis-Shedler
    thinning): returns the onset times, the state columns at them, and their count."""
    n = rng.poisson(max_per_s * CHUNK_S)
    t = np.sort(k * CHUNK_S + CHUNK_S * rng.random(n))
    cols = scenario.columns_at(t)
    keep = rng.random(n) * max_per_s < rate_per_s(cols)
    return t[keep], {name: v[keep] for name, v in cols.items()}, int(keep.sum())


def sum_events(t: np.ndarray, onsets: np.ndarray, max_s: float, shape, out_shape) -> np.ndarray:
    """Sum over sorted ``onsets`` within ``max_s`` before each time of ``shape(tau, index)``.

    Loops over "the j-th onset back", not over samples: as many passes as events overlap.
    """
    out = np.zeros(out_shape)
    last = np.searchsorted(onsets, t, side="right") - 1
    for back in range(len(onsets) + 1):
        i = last - back
        ok = i >= 0
        ok[ok] &= (t[ok] - onsets[i[ok]]) < max_s
        if not ok.any():
            break
        out[ok] += shape(t[ok] - onsets[i[ok]], i[ok])
    return out
