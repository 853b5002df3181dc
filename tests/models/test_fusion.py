"""Fusion: missing and degraded modalities lower confidence and never raise; hysteresis; the
personal mapping; the explanation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fusion import FusionContext, FusionSettings, PainFusion, fuse
from models.modality import ModalityEstimate
from models.pain import LevelHysteresis, PainEstimate, level_for
from models.personal import PersonalMapping


def physio(score=6.0, confidence=0.9, quality=0.9, **features):
    feats = {"hr_bpm": 88.0, "hrv_rmssd_ms": 25.0, "ppg_amp": 0.01, "eda_tonic_us": 6.0,
             "eda_phasic_us_per_s": 0.05, "motion_g": 0.01, "arousal_probability": score / 10}
    feats.update(features)
    return ModalityEstimate("physio", score, confidence, quality, feats)


def face(score=4.0, confidence=0.8, quality=0.8, flags=()):
    feats = {"pspi": score * 1.6, "au4": 3.0, "au6": 1.0, "au7": 2.0, "au9": 0.0, "au10": 0.5,
             "au43": 0.0, "negative_affect": 0.4}
    return ModalityEstimate("face", score, confidence, quality, feats, flags)


def test_weighted_mean_and_contributions_sum_to_one():
    est = fuse({"physio": physio(6.0), "face": face(4.0)})
    assert 4.0 < est.score < 6.0
    assert sum(c.weight for c in est.contributions.values()) == pytest.approx(1.0)
    assert est.level == "moderate"
    assert "face_missing" not in est.flags and "physio_missing" not in est.flags
    # the explanation: the strongest face actions first, the physio model's output
    assert list(est.contributions["face"].top_features)[0] == "au4"
    assert "arousal_probability" in est.contributions["physio"].top_features


def test_physio_explained_against_the_patient_rest():
    rest = {"hr_bpm": 65.0, "hrv_rmssd_ms": 45.0, "ppg_amp": 0.01, "eda_tonic_us": 3.0,
            "eda_phasic_us_per_s": 0.01, "motion_g": 0.01}
    est = fuse({"physio": physio(), "face": None}, FusionContext(physio_rest=rest))
    top = est.contributions["physio"].top_features
    assert top["hr_bpm_z"] == pytest.approx((88 - 65) / 10.0)
    assert top["eda_tonic_us_z"] > 0  # skin conductance rose
    assert "ppg_amp_z" not in top  # unchanged: not an explanation
    assert len(top) == 4  # the model output and the three largest changes


def test_face_explained_by_the_actions_its_score_counted():
    """A smile's cheek raise is not given as a reason; with the brows lowered it is (pain smile)."""
    from models.fusion import face_top_features

    smile = {"au4": 0.0, "au6": 4.0, "au7": 1.0, "au9": 3.0, "au10": 3.5, "au12": 5.0, "au26": 0.0, "au43": 0.0}
    top = face_top_features(ModalityEstimate("face", 0.0, 0.9, 0.9, smile))
    assert not {"au6", "au9", "au10"} & set(top)
    pain_smile = {**smile, "au4": 3.0}
    assert "au6" in face_top_features(ModalityEstimate("face", 6.0, 0.9, 0.9, pain_smile))
    # uncalibrated, low brows are not a reason unless another action corroborates them
    uncalibrated = face_top_features(ModalityEstimate("face", 0.0, 0.45, 0.9, pain_smile, ("uncalibrated",)))
    assert not {"au4", "au6", "au9", "au10"} & set(uncalibrated)
    frown = {**pain_smile, "au12": 0.0}
    assert "au4" in face_top_features(ModalityEstimate("face", 6.0, 0.45, 0.9, frown, ("uncalibrated",)))


@pytest.mark.parametrize("gone", ["face", "physio"])
def test_a_missing_modality_is_flagged_and_lowers_confidence(gone):
    both = fuse({"physio": physio(), "face": face()})
    one = fuse({"physio": physio(), "face": face(), gone: None})
    assert one.score is not None
    assert one.confidence < both.confidence
    assert f"{gone}_missing" in one.flags
    left = "face" if gone == "physio" else "physio"
    assert one.score == pytest.approx(({"physio": physio(), "face": face()})[left].score)


def test_a_face_still_recording_its_neutral_does_not_move_the_estimate():
    calibrating = fuse({"physio": physio(2.0), "face": face(9.0, flags=("calibrating",))})
    assert calibrating.score == pytest.approx(2.0)
    assert calibrating.contributions["face"].weight == 0.0
    assert {"calibrating", "face_missing"} <= set(calibrating.flags)
    alone = fuse({"physio": None, "face": face(9.0, flags=("calibrating",))})
    assert alone.score is None


def test_nothing_at_all_gives_no_score_not_an_error():
    est = fuse({})
    assert est.score is None and est.level is None and est.confidence == 0.0
    assert {"face_missing", "physio_missing", "no_estimate", "low_confidence"} <= set(est.flags)
    assert PainFusion().update(0, {"physio": None, "face": None}).score is None


def test_motion_discounts_the_physiology_and_is_flagged():
    still = fuse({"physio": physio(8.0), "face": face(2.0)}, FusionContext(motion_g=0.01))
    moving = fuse({"physio": physio(8.0), "face": face(2.0)}, FusionContext(motion_g=0.5))
    assert "motion_high" in moving.flags and "motion_high" not in still.flags
    assert moving.contributions["physio"].weight < still.contributions["physio"].weight
    assert moving.score < still.score and moving.confidence < still.confidence


def test_quality_gate_and_flags_from_the_modalities():
    gated = fuse({"physio": physio(quality=0.05), "face": face(flags=("uncalibrated",))},
                 FusionContext(sensors_off=("adc",)))
    assert gated.contributions["physio"].weight == 0.0
    assert {"physio_missing", "uncalibrated", "sensor_off"} <= set(gated.flags)


def test_bad_input_names_the_modality():
    with pytest.raises(TypeError, match="physio"):
        fuse({"physio": {"score": 3}})


estimates = st.one_of(
    st.none(),
    st.builds(lambda s, c, q: (s, c, q), st.one_of(st.none(), st.floats(0, 10)),
              st.floats(0, 1), st.floats(0, 1)))


def _make(name, spec):
    if spec is None:
        return None
    s, c, q = spec
    return (physio if name == "physio" else face)(s, c, q) if s is not None else \
        ModalityEstimate(name, None, c, q)


@settings(max_examples=300, deadline=None)
@given(p=estimates, f=estimates, motion=st.one_of(st.none(), st.floats(0, 2)),
       degrade=st.floats(0, 1))
def test_dropping_or_degrading_a_modality_never_raises_confidence(p, f, motion, degrade):
    ctx = FusionContext(motion_g=motion)
    full = fuse({"physio": _make("physio", p), "face": _make("face", f)}, ctx)
    assert 0.0 <= full.confidence <= 1.0
    assert full.score is None or 0.0 <= full.score <= 10.0
    for name in ("physio", "face"):
        kept = {"physio": _make("physio", p), "face": _make("face", f)}
        kept[name] = None
        assert fuse(kept, ctx).confidence <= full.confidence + 1e-12
        spec = p if name == "physio" else f
        if spec is not None and spec[0] is not None:
            worse = dict(kept)
            worse[name] = _make(name, (spec[0], spec[1] * degrade, spec[2] * degrade))
            assert fuse(worse, ctx).confidence <= full.confidence + 1e-12
    worse_motion = fuse({"physio": _make("physio", p), "face": _make("face", f)},
                        FusionContext(motion_g=2.0))
    assert worse_motion.confidence <= full.confidence + 1e-12


def test_levels_and_hysteresis_do_not_flicker():
    assert [level_for(x) for x in (0.0, 0.6, 3.4, 3.6, 6.4, 7.0, 10.0)] == \
        ["none", "mild", "mild", "moderate", "moderate", "severe", "severe"]
    h = LevelHysteresis(0.5)
    wobble = [3.3, 3.7, 3.4, 3.8, 3.2, 3.9]
    assert {h.update(x) for x in wobble} == {"mild"}  # never 4.0 + margin
    assert h.update(4.1) == "moderate"
    assert {h.update(x) for x in (3.6, 3.1, 3.4)} == {"moderate"}
    assert h.update(2.9) == "mild"
    assert h.update(None) == "mild"
    assert LevelHysteresis(0.0).update(3.6) == "moderate"


def test_fusion_over_time_smooths_and_holds_the_level():
    fusion = PainFusion(FusionSettings(smoothing_s=5.0))
    scores = [fusion.update(int(k * 1e9), {"physio": physio(8.0), "face": face(8.0)}).score
              for k in range(30)]
    assert scores[0] == pytest.approx(8.0)
    scores = [fusion.update(int((30 + k) * 1e9), {"physio": physio(0.0), "face": face(0.0)}).score
              for k in range(3)]
    assert 0.0 < scores[-1] < 8.0 and scores[0] > scores[-1]  # decays, no jump
    est = fusion.update(int(40e9), {"physio": None, "face": None})
    assert est.score is None and "no_estimate" in est.flags


def test_personal_mapping_shrinks_towards_identity():
    # A patient who rates 2 points above what the device reads.
    scores = [1.0, 3.0, 5.0, 6.0]
    ratings = [3, 5, 7, 8]
    m = PersonalMapping.fit(scores, ratings, prior_strength=3.0)
    assert 0 < m.intercept < 2.0  # pulled towards the ratings, not all the way
    assert m.apply(4.0) > 4.0
    strong = PersonalMapping.fit(scores * 5, ratings * 5, prior_strength=3.0)
    assert strong.apply(4.0) > m.apply(4.0)  # more reports, more trust
    assert PersonalMapping.fit(scores, ratings, prior_strength=1e6).apply(4.0) == \
        pytest.approx(4.0, abs=0.01)
    # ratings going down as the score goes up cannot make the map decreasing
    assert PersonalMapping.fit([1, 5, 9], [9, 5, 1], prior_strength=0).slope > 0
    assert PersonalMapping.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="need 3"):
        PersonalMapping.fit([1.0, 2.0], [1, 2])


def test_personalised_estimate_says_so():
    mapping = PersonalMapping(2.0, 1.0, 4)
    est = PainFusion(FusionSettings(smoothing_s=0), mapping).update(
        0, {"physio": physio(3.0), "face": face(3.0)})
    assert est.personalised and est.raw_score == pytest.approx(3.0)
    assert est.score == pytest.approx(5.0) and est.level == "moderate"
    d = est.to_dict()
    assert d["personalised"] is True and d["raw_score"] == 3.0


def test_pain_estimate_refuses_nonsense():
    with pytest.raises(ValueError, match="score"):
        PainEstimate(0, 11.0, "severe", 0.5, {})
    with pytest.raises(ValueError, match="level"):
        PainEstimate(0, 1.0, "bad", 0.5, {})
    assert math.isclose(fuse({"face": face(10.0)}).score, 10.0)
