"""Every frame of a hop into one face estimate: the highest pain held for a moment, blinks left out.

The camera delivers several frames per hop; the hop publishes one face estimate. Taking only
the newest frame misses a grimace that falls between two hops and reads a blink caught mid-way
as closed eyes. Here each frame's action units go in with their time stamps and the hop reads:

- a **sustained peak**: each frame's pain PSPI is replaced by the median over the frames within
  ``sustain_s`` around it (a landmark glitch on one or two frames cannot outvote its neighbours,
  a grimace of 300 ms fills its own window), and the hop's score is the largest of these.
  The window (200 ms) is longer than a single-frame error at camera rates of 10 fps and more,
  and shorter than the brief grimaces a frame-per-hop reading misses.
- **held eye closure**: AU43 counts only for a closure lasting at least ``eye_closure_hold_s``
  (first to last closed frame of an unbroken run). A spontaneous blink lasts 100-400 ms
  (Caffier, Erdmann & Ullsperger 2003, "Experimental evaluation of eye-blink parameters as a
  drowsiness measure", Eur J Appl Physiol 89:319-325), so 0.5 s leaves blinks out and keeps
  eyes squeezed shut. A closure still shorter than that at the hop counts once it is held.

The action units published are those of the peak window (medians), so they explain the score;
emotions and quality terms are medians over the hop's frames. ``frames`` is the number of frames
with a face that went into the estimate, ``frames_seen`` all frames of the hop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from models.face import action_units as au
from models.face.pain_context import pain_pspi
from models.modality import ModalityEstimate

SUSTAIN_S = 0.2
EYE_CLOSURE_HOLD_S = 0.5
#: Frames kept from before the hop: smoothing context at its start and closures crossing it.
HISTORY_S = 2.0


@dataclass(frozen=True, slots=True)
class _Frame:
    t_ns: int
    estimate: ModalityEstimate

    @property
    def has_face(self) -> bool:
        return self.estimate.score is not None and "au43" in self.estimate.features

    @property
    def closed(self) -> bool:
        return self.has_face and self.estimate.features["au43"] >= 1.0


class FaceHopAggregator:
    """``add(t_ns, frame_estimate)`` per frame; ``take(t_ns)`` the hop's estimate.

    ``take`` reads the frames added since the previous ``take`` (up to ``t_ns``); with none new,
    it repeats the previous hop's estimate while that is at most ``max_age_s`` old. Asked again
    for the same ``t_ns`` (the face message and the fusion of one hop) it gives the same answer.
    """

    def __init__(self, sustain_s: float = SUSTAIN_S, eye_closure_hold_s: float = EYE_CLOSURE_HOLD_S,
                 history_s: float = HISTORY_S) -> None:
        if sustain_s < 0 or eye_closure_hold_s < 0:
            raise ValueError("sustain_s and eye_closure_hold_s must be >= 0 s")
        self.sustain_s = float(sustain_s)
        self.eye_closure_hold_s = float(eye_closure_hold_s)
        self.history_s = max(float(history_s), sustain_s, eye_closure_hold_s)
        self._frames: deque[_Frame] = deque()
        self._taken_ns: int | None = None
        self._last: tuple[int, ModalityEstimate] | None = None
        self._answer: tuple[int, ModalityEstimate | None] | None = None

    def add(self, t_ns: int, estimate: ModalityEstimate) -> None:
        if self._frames and t_ns < self._frames[-1].t_ns:
            self.reset()  # the clock went back: a new stream
        self._frames.append(_Frame(int(t_ns), estimate))

    def reset(self) -> None:
        self._frames.clear()
        self._taken_ns = None
        self._last = None
        self._answer = None

    def take(self, t_ns: int, max_age_s: float = float("inf")) -> ModalityEstimate | None:
        if self._answer is not None and self._answer[0] == t_ns and self._answer[1] is not None:
            return self._answer[1]
        hop = [f for f in self._frames if f.t_ns <= t_ns and (self._taken_ns is None or f.t_ns > self._taken_ns)]
        if hop:
            self._taken_ns = hop[-1].t_ns
            self._last = (hop[-1].t_ns, self._aggregate(hop))
        self._forget(t_ns)
        fresh = self._last is not None and (t_ns - self._last[0]) / 1e9 <= max_age_s
        self._answer = (t_ns, self._last[1] if fresh else None)
        return self._answer[1]

    # -- internals ---------------------------------------------------------------------------
    def _forget(self, t_ns: int) -> None:
        keep_from = t_ns - int(self.history_s * 1e9)
        while self._frames and self._frames[0].t_ns < keep_from:
            self._frames.popleft()

    def _held_closure(self) -> dict[int, float]:
        """Per frame time: 1.0 where the eyes are closed in a run held >= the hold time."""
        out: dict[int, float] = {}
        run: list[_Frame] = []
        for frame in [*self._frames, None]:
            if frame is not None and frame.closed:
                run.append(frame)
                continue
            if run:
                held = (run[-1].t_ns - run[0].t_ns) / 1e9 >= self.eye_closure_hold_s
                out.update({f.t_ns: 1.0 if held else 0.0 for f in run})
                run = []
            if frame is not None:
                out[frame.t_ns] = 0.0
        return out

    def _aggregate(self, hop: list[_Frame]) -> ModalityEstimate:
        latest = hop[-1].estimate
        faces = [f for f in self._frames if f.has_face]
        hop_faces = [f for f in hop if f.has_face]
        if not hop_faces:
            features = {"frames": 0.0, "frames_seen": float(len(hop))}
            return ModalityEstimate(latest.modality, None, latest.confidence, 0.0, features,
                                    tuple(dict.fromkeys([*latest.flags, "no_face"])))
        closure = self._held_closure()
        aus_at = {f.t_ns: _frame_aus(f, closure.get(f.t_ns, 0.0)) for f in faces}
        calibrated = {f.t_ns: "uncalibrated" not in f.estimate.flags for f in faces}
        pain_at = {t: pain_pspi(a, calibrated=calibrated[t]) for t, a in aus_at.items()}
        half_ns = int(self.sustain_s / 2 * 1e9)
        times = np.array([f.t_ns for f in faces])

        def window(t: int) -> list[int]:
            return [int(x) for x in times[np.abs(times - t) <= half_ns]]

        sustained = [(float(np.median([pain_at[t] for t in window(f.t_ns)])), f.t_ns) for f in hop_faces]
        peak_value, peak_t = max(sustained)
        peak_window = window(peak_t)
        aus = {k: float(np.median([aus_at[t][k] for t in peak_window])) for k in aus_at[peak_t]}
        features = {"pspi": au.pspi(aus), "pain_pspi": peak_value, **aus}
        for key in hop_faces[-1].estimate.features:
            if key not in features:
                values = [f.estimate.features[key] for f in hop_faces if key in f.estimate.features]
                features[key] = float(np.median(values))
        features["frames"] = float(len(hop_faces))
        features["frames_seen"] = float(len(hop))
        quality = float(np.median([f.estimate.quality for f in hop_faces]))
        flags = [flag for flag in latest.flags if flag not in ("no_face", "eyes_closed")]
        if aus.get("au43", 0.0) >= 1.0:
            flags.append("eyes_closed")
        return ModalityEstimate(latest.modality, au.pspi_to_score(peak_value), latest.confidence,
                                quality, features, tuple(flags))


def _frame_aus(frame: _Frame, held_closure: float) -> dict[str, float]:
    aus = {k: float(frame.estimate.features.get(k, 0.0)) for k in au.ACTION_UNITS}
    aus["au43"] = held_closure
    return aus
