"""Simulated people in pain, for testing fusion: one latent pain trajectory drives both the
physiology and the face.

What is real and what is synthetic:

- real: the physiology simulator's signals (``PhysiologySimulator``: PPG, EDA, acceleration,
  pain raising the sympathetic arousal), the on-device ``PhysioEstimator`` (features, rest
  baseline, LSTM) reading them second by second, the face action-unit code
  (``frontalise``, ``measure``, ``action_units``, ``pspi``) on landmarks, and the fusion;
- synthetic: the face landmarks. They are a FaceMesh face (468 points; the caller supplies
  them, e.g. FaceMesh run once on the demo photo) reshaped per person, moved by a pain
  expression (AU4 brow lowering, AU6/7 orbital tightening, AU9/10 levator) whose intensity is
  the latent pain times the person's expressiveness, gated into bouts (pain faces come and go:
  Prkachin & Solomon 2008 report PSPI > 0 in a minority of frames even in pain), plus
  landmark jitter; the face confidence/quality is simulated too (no pixels, no detector).

People differ in resting heart rate, HRV, skin conductance (the physiology simulator's seed),
in autonomic reactivity (how much arousal a given pain gives), in expressiveness and in face
shape. Sessions can carry limb motion and face dropouts (out of view).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.face import action_units as au
from models.face.geometry import frontalise
from models.face.pain_context import pain_pspi
from models.face.temporal import FaceHopAggregator
from models.modality import ModalityEstimate
from sensors.emulated.physiology import PhysiologySimulator
from sensors.emulated.scenario import Scenario, State
from sensors.types import SampleBlock

PPG_RATE_HZ, EDA_RATE_HZ, ACC_RATE_HZ = 50.0, 8.0, 25.0
CALIBRATION_S = 60.0

# Where the pain expression moves the landmarks, in inter-ocular distances at full intensity
# (image axes, y down). Magnitudes are those of E-level actions (see action_units.py).
_BROW = sorted({i for side in au.BROW + au.BROW_OUTER for i in side})
_INNER_R, _INNER_L = list(au.INNER_BROW[0]), list(au.INNER_BROW[1])
_CHEEK = sorted({i for side in au.CHEEK for i in side})
_LOWER_LID = sorted({i for side in au.LOWER_LID for i in side})
_UPPER_LID = sorted({i for side in au.UPPER_LID for i in side})
_ALA = sorted({i for side in au.ALA for i in side})
_UPPER_LIP = list(au.UPPER_LIP)


@dataclass(frozen=True)
class Person:
    seed: int
    hr_bpm: float
    hrv_ms: float
    reactivity: float      # arousal per unit of latent pain / 10
    expressiveness: float  # face action intensity per unit of latent pain / 10
    grimace_share: float   # share of time the pain shows on the face
    shape: np.ndarray = field(repr=False)  # per-landmark offset of this person's face (IOD)

    @classmethod
    def draw(cls, seed: int, n_points: int = 468) -> Person:
        rng = np.random.default_rng([seed, 77])
        shape = rng.normal(0, 0.01, (n_points, 3))
        return cls(seed, rng.uniform(55, 82), rng.uniform(30, 70), rng.uniform(0.5, 1.0),
                   rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.8), shape)


@dataclass(frozen=True)
class Session:
    """A timeline: ``episodes`` of (start_s, end_s, pain 0..10), ``motion`` of
    (start_s, end_s, g), ``dropouts`` of face (start_s, end_s)."""

    duration_s: float = 420.0
    episodes: tuple[tuple[float, float, float], ...] = ((150.0, 250.0, 6.0),)
    motion: tuple[tuple[float, float, float], ...] = ()
    dropouts: tuple[tuple[float, float], ...] = ()
    ramp_s: float = 10.0

    def pain_at(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, float)
        out = np.zeros_like(t)
        for a, b, level in self.episodes:
            up = np.clip((t - a) / self.ramp_s, 0, 1)
            down = np.clip((b - t) / self.ramp_s, 0, 1)
            out = np.maximum(out, level * np.minimum(up, down))
        return out

    def scenario(self, person: Person) -> Scenario:
        """Keyframes for the physiology simulator (every second where something changes)."""
        times = sorted({0.0, self.duration_s}
                       | {float(x) for a, b, _ in self.episodes
                          for x in (a, a + self.ramp_s, b - self.ramp_s, b)}
                       | {float(x) for a, b, _ in self.motion for x in (a - 1, a, b, b + 1)})
        times = [t for t in times if 0 <= t <= self.duration_s]
        frames = []
        for t in times:
            pain = float(self.pain_at(np.array([t]))[0])
            motion = max([g for a, b, g in self.motion if a <= t <= b] or [0.0])
            frames.append((t, State(hr_bpm=person.hr_bpm, hrv_ms=person.hrv_ms,
                                    arousal=0.05 + 0.85 * person.reactivity * pain / 10,
                                    pain=pain, motion_g=motion)))
        return Scenario(frames)

    def in_dropout(self, t_s: float) -> bool:
        return any(a <= t_s < b for a, b in self.dropouts)

    def motion_at(self, t_s: float) -> float:
        return max([g for a, b, g in self.motion if a <= t_s < b] or [0.0])


def physio_estimates(person: Person, session: Session, estimator) -> list[ModalityEstimate]:
    """The real physio estimator on the person's simulated signals, one estimate per second;
    the rest baseline is calibrated on the first ``CALIBRATION_S`` seconds."""
    sim = PhysiologySimulator(session.scenario(person), seed=person.seed)
    out = []
    for k in range(int(session.duration_s)):
        t0 = float(k)
        tp = t0 + np.arange(int(PPG_RATE_HZ)) / PPG_RATE_HZ
        te = t0 + np.arange(int(EDA_RATE_HZ)) / EDA_RATE_HZ
        ta = t0 + np.arange(int(ACC_RATE_HZ)) / ACC_RATE_HZ
        acc = sim.accel_g(ta)
        t0_ns = int(t0 * 1e9)
        est = estimator.update(
            ppg=SampleBlock("ppg_ir", PPG_RATE_HZ, t0_ns, sim.ppg(tp)["ir"]),
            eda=SampleBlock("eda", EDA_RATE_HZ, t0_ns, sim.eda_us(te), "uS"),
            accel=[SampleBlock(f"acc_{a}", ACC_RATE_HZ, t0_ns, acc[:, i], "g")
                   for i, a in enumerate("xyz")])
        if k + 1 == int(CALIBRATION_S):
            estimator.calibrate(last_s=CALIBRATION_S)
        out.append(est)
    return out


def _iod(points: np.ndarray) -> float:
    right = points[list(au.EYE_CORNERS[0]), :2].mean(0)
    left = points[list(au.EYE_CORNERS[1]), :2].mean(0)
    return float(np.linalg.norm(left - right))


def pain_face(base: np.ndarray, intensity: float) -> np.ndarray:
    """``base`` landmarks with the pain expression at ``intensity`` 0..1."""
    p = base.copy()
    d = _iod(base) * intensity
    p[_BROW, 1] += 0.08 * d
    p[_INNER_R, 0] += 0.03 * d
    p[_INNER_L, 0] -= 0.03 * d
    p[_CHEEK, 1] -= 0.05 * d
    p[_LOWER_LID, 1] -= 0.025 * d
    p[_UPPER_LID, 1] += 0.02 * d
    p[_ALA, 1] -= 0.04 * d
    p[_UPPER_LIP, 1] -= 0.035 * d
    return p


def face_estimates(person: Person, session: Session, base: np.ndarray,
                   motion_jitter: bool = True) -> list[ModalityEstimate | None]:
    """One face estimate per second from synthetic landmarks through the real AU code; None
    while the face is out of view. The neutral face is the median of the first
    ``CALIBRATION_S`` seconds, as the device's calibration would take it."""
    rng = np.random.default_rng([person.seed, 91])
    n = int(session.duration_s)
    t = np.arange(n, dtype=float)
    pain = session.pain_at(t)
    # Bouts: a smooth random process above its quantile shows the pain on the face.
    raw = np.convolve(rng.normal(0, 1, n + 8), np.ones(8) / 8, mode="same")[4:n + 4]
    showing = raw > np.quantile(raw, 1.0 - person.grimace_share)
    face = base + person.shape * _iod(base)
    # Faces move for other reasons too: a frown of concentration or discomfort lowers the
    # brows (AU4) without pain, about twice a minute for 2-6 s; a blink (15/min, ~0.2 s)
    # catches a frame closed now and then (AU43).
    frown = np.zeros(n)
    for start in np.flatnonzero(rng.random(n) < 2.0 / 60.0):
        frown[start:start + int(rng.integers(2, 7))] = rng.uniform(0.3, 0.7)
    blink = rng.random(n) < 15.0 / 60.0 * 0.2
    neutral_samples, out = [], []
    hop = FaceHopAggregator()
    for k in range(n):
        intensity = person.expressiveness * pain[k] / 10 * (1.0 if showing[k] else 0.15)
        moving = session.motion_at(t[k]) if motion_jitter else 0.0
        # FaceMesh landmark noise on video is ~0.5 % of the face size, more when moving.
        jitter_iod = 0.006 + 0.01 * moving
        points = pain_face(face, min(1.0, intensity))
        if frown[k] > 0:
            points[_BROW, 1] += 0.08 * frown[k] * _iod(base)
        if blink[k]:
            for upper, lower in zip(au.UPPER_LID, au.LOWER_LID):
                points[list(upper), :2] = points[list(lower), :2]
        points = points + rng.normal(0, jitter_iod * _iod(base), points.shape)
        measures = au.measure(frontalise(points)[0])
        if k < CALIBRATION_S:
            neutral_samples.append(measures)
        if session.in_dropout(t[k]):
            out.append(None)
            continue
        quality = float(np.clip(rng.normal(0.8, 0.05) - 0.6 * moving, 0.05, 1.0))
        if k < CALIBRATION_S:
            neutral = au.NeutralBaseline.canonical()
        elif k == CALIBRATION_S or neutral.source == "canonical":
            neutral = au.NeutralBaseline.from_measures(neutral_samples)
        aus = au.action_units(measures, neutral)
        value = pain_pspi(aus, calibrated=k >= CALIBRATION_S)
        flags = () if k >= CALIBRATION_S else ("uncalibrated",)
        features = {"pspi": au.pspi(aus), "pain_pspi": value, **{k2: float(v) for k2, v in aus.items()}}
        # One frame per second here; the device's hop aggregation is applied all the same.
        hop.add(int(t[k] * 1e9), ModalityEstimate("face", au.pspi_to_score(value), quality, quality,
                                                  features, flags))
        out.append(hop.take(int(t[k] * 1e9)))
    return out


def demo_base_landmarks() -> np.ndarray:
    """FaceMesh landmarks of the demo photo (needs ``painmon fetch-models``)."""
    from models.face import FaceEstimator
    from sensors.emulated.photo import astronaut_photo

    from device.config.paths import default_model_dir

    obs = FaceEstimator(default_model_dir(), tracking=False, emotion=False).observe(astronaut_photo())
    if not obs.has_face:
        raise RuntimeError("no face found in the demo photo")
    return obs.landmarks.copy()
