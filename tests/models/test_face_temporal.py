"""The hop's face estimate from all its frames: frame sequences built from real FaceMesh
landmarks (the astronaut photo) moved as a blink, a held closure or a grimace, through the real
action-unit code."""

import numpy as np
import pytest

from models.face import FaceEstimator
from models.face import action_units as au
from models.face.geometry import frontalise
from models.face.pain_context import pain_pspi
from models.face.temporal import FaceHopAggregator
from models.modality import ModalityEstimate
from tools.fusion_sim import pain_face

S = 1_000_000_000


@pytest.fixture(scope="module")
def face(face_model_dir, astronaut):
    obs = FaceEstimator(face_model_dir, tracking=False, emotion=False).observe(astronaut)
    assert obs.has_face
    points = obs.landmarks.copy()
    neutral = au.NeutralBaseline(au.measure(frontalise(points)[0]))
    return points, neutral


def _closed(points):
    out = points.copy()
    for upper, lower in zip(au.UPPER_LID, au.LOWER_LID):
        out[list(upper), :2] = out[list(lower), :2]
    return out


def _estimate(points, neutral, rng):
    iod = float(np.linalg.norm(points[263, :2] - points[33, :2]))
    noisy = points + rng.normal(0, 0.004 * iod, points.shape)
    aus = au.action_units(au.measure(frontalise(noisy)[0]), neutral)
    pain = pain_pspi(aus)
    features = {"pspi": au.pspi(aus), "pain_pspi": pain, **aus, "emotion_happy": 0.5}
    flags = ("eyes_closed",) if aus["au43"] >= 1 else ()
    return ModalityEstimate("face", au.pspi_to_score(pain), 0.9, 0.9, features, flags)


def _feed(agg, face, fps, t0_s, t1_s, event=None, seed=0):
    """Frames from t0_s to t1_s; ``event(t_s, points)`` returns the moved points (or None: no face)."""
    points, neutral = face
    rng = np.random.default_rng(seed)
    for t in np.arange(t0_s, t1_s, 1.0 / fps):
        moved = points if event is None else event(t, points)
        if moved is None:
            agg.add(int(t * S), ModalityEstimate("face", None, 0.5, 0.0, {}, ("no_face",)))
        else:
            agg.add(int(t * S), _estimate(moved, neutral, rng))


def test_a_150_ms_blink_does_not_count(face):
    agg = FaceHopAggregator()
    _feed(agg, face, 30, 0.0, 1.0, lambda t, p: _closed(p) if 0.40 <= t < 0.55 else p)
    est = agg.take(1 * S)
    assert est.features["au43"] == 0.0 and "eyes_closed" not in est.flags
    assert est.score < 0.5
    # the same frames, the newest one caught mid-blink: the single-frame reading was closed eyes
    agg = FaceHopAggregator()
    _feed(agg, face, 30, 0.0, 1.0, lambda t, p: _closed(p) if t >= 0.9 else p)
    assert agg.take(1 * S).features["au43"] == 0.0


def test_a_closure_held_0_8_s_counts(face):
    agg = FaceHopAggregator()
    _feed(agg, face, 30, 0.0, 1.0, lambda t, p: _closed(p) if 0.1 <= t < 0.9 else p)
    est = agg.take(1 * S)
    assert est.features["au43"] == 1.0 and "eyes_closed" in est.flags
    assert est.features["pain_pspi"] >= 1.0


def test_a_closure_across_the_hop_boundary_counts_once_held(face):
    agg = FaceHopAggregator()
    def closed(t, p):
        return _closed(p) if 0.7 <= t < 1.5 else p

    _feed(agg, face, 20, 0.0, 1.0, closed)
    assert agg.take(1 * S).features["au43"] == 0.0  # 0.3 s so far: could still be a blink
    _feed(agg, face, 20, 1.0, 2.0, closed)
    assert agg.take(2 * S).features["au43"] == 1.0


def test_a_300_ms_grimace_between_hops_is_seen(face):
    def grimace(t, p):
        return pain_face(p, 0.8) if 1.35 <= t < 1.65 else p

    agg = FaceHopAggregator()
    _feed(agg, face, 10, 0.0, 1.0, grimace)
    assert agg.take(1 * S).score < 0.5
    _feed(agg, face, 10, 1.0, 2.0, grimace)
    est = agg.take(2 * S)
    points, neutral = face
    full = pain_pspi(au.action_units(au.measure(frontalise(pain_face(points, 0.8))[0]), neutral))
    assert full > 4
    assert est.features["pain_pspi"] > 0.8 * full
    assert est.features["au4"] > 1.5  # the AUs published are those of the grimace
    # the frame a one-frame-per-hop reading would have taken shows nothing
    agg_last = FaceHopAggregator(sustain_s=0.0)
    _feed(agg_last, face, 10, 1.9, 2.0, grimace)
    last = agg_last.take(2 * S)
    assert last.score < 0.5


def test_a_single_frame_glitch_is_not_a_grimace(face):
    agg = FaceHopAggregator()
    _feed(agg, face, 15, 0.0, 1.0, lambda t, p: pain_face(p, 1.0) if abs(t - 0.5) < 0.03 else p)
    assert agg.take(1 * S).score < 0.5


def test_frame_counts_and_no_face(face):
    agg = FaceHopAggregator()
    _feed(agg, face, 10, 0.0, 1.0, lambda t, p: None if t >= 0.65 else p)
    est = agg.take(1 * S)
    assert est.features["frames"] == 7 and est.features["frames_seen"] == 10
    assert est.score is not None
    _feed(agg, face, 10, 1.0, 2.0, lambda t, p: None)
    est = agg.take(2 * S)
    assert est.score is None and "no_face" in est.flags and est.features["frames"] == 0


def test_no_new_frames_repeats_while_fresh_then_nothing(face):
    agg = FaceHopAggregator()
    assert agg.take(1 * S) is None
    _feed(agg, face, 10, 0.0, 1.0)
    first = agg.take(1 * S, max_age_s=2.0)
    assert first is not None and agg.take(1 * S, max_age_s=2.0) is first  # same hop, same answer
    assert agg.take(2 * S, max_age_s=2.0) is first
    assert agg.take(4 * S, max_age_s=2.0) is None


def test_a_300_ms_grimace_across_a_hop_boundary_is_seen(face):
    def grimace(t, p):
        return pain_face(p, 0.8) if 0.85 <= t < 1.15 else p

    agg = FaceHopAggregator()
    _feed(agg, face, 10, 0.0, 1.01, grimace)
    first = agg.take(1 * S)
    _feed(agg, face, 10, 1.1, 2.0, grimace)
    second = agg.take(2 * S)
    points, neutral = face
    full = pain_pspi(au.action_units(au.measure(frontalise(pain_face(points, 0.8))[0]), neutral))
    assert max(first.features["pain_pspi"], second.features["pain_pspi"]) > 0.8 * full


@pytest.mark.parametrize("flags, pain", [((), 3.0), (("uncalibrated",), 0.0)])
def test_the_hop_reads_low_brows_as_the_frames_were_read(flags, pain):
    """Against the canonical face ("uncalibrated"), brows lowered with nothing else are not pain."""
    aus = {k: 0.0 for k in au.ACTION_UNITS} | {"au4": 3.0}
    agg = FaceHopAggregator()
    for t in np.arange(0.0, 1.0, 0.1):
        agg.add(int(t * S), ModalityEstimate("face", au.pspi_to_score(pain), 0.5, 0.9,
                                             {"pspi": 3.0, "pain_pspi": pain, **aus}, flags))
    est = agg.take(1 * S)
    assert est.features["pain_pspi"] == pytest.approx(pain)
    assert est.score == pytest.approx(au.pspi_to_score(pain))
    assert ("uncalibrated" in est.flags) == bool(flags)
