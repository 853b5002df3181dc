"""The face's pain score sets aside what a smile or an open jaw explains, unless the brows are
lowered (the pain smile); uncalibrated, lowered brows count only as far as another pain action
corroborates them; AU12, AU25 and AU26 are measured from the landmarks."""

import numpy as np
import pytest

from models.face import FaceEstimator
from models.face import action_units as au
from models.face.geometry import frontalise
from models.face.pain_context import brow_corroboration, explained_actions, pain_pspi

REST = {"au4": 0.0, "au6": 0.0, "au7": 0.0, "au9": 0.0, "au10": 0.0, "au12": 0.0, "au20": 0.0,
        "au25": 0.0, "au26": 0.0, "au43": 0.0}


def test_a_pure_smile_is_not_pain():
    smile = {**REST, "au6": 3.5, "au7": 0.6, "au9": 3.3, "au10": 4.5, "au12": 5.0, "au25": 5.0}
    assert au.pspi(smile) == pytest.approx(8.0)
    assert pain_pspi(smile) == 0.0


def test_a_weaker_smile_explains_only_up_to_its_own_intensity():
    aus = {**REST, "au6": 4.0, "au12": 1.5}
    assert pain_pspi(aus) == pytest.approx(2.5)


@pytest.mark.parametrize("au4", [0.5, 1.0])
def test_a_trace_of_brow_lowering_does_not_make_a_pain_smile(au4):
    smile = {**REST, "au4": au4, "au6": 4.0, "au10": 3.0, "au12": 5.0}
    assert pain_pspi(smile) == pytest.approx(au4)


def test_the_pain_smile_keeps_its_actions():
    pain_smile = {**REST, "au4": 2.5, "au6": 4.0, "au9": 2.0, "au10": 3.0, "au12": 4.0}
    assert pain_pspi(pain_smile) == pytest.approx(au.pspi(pain_smile))
    half = {**pain_smile, "au4": 1.5}  # half way between a trace and B level: half set aside
    assert au.pspi(half) - 4.0 - 3.0 == pytest.approx(1.5)
    assert pain_pspi(half) == pytest.approx(1.5 + (4.0 - 2.0) + (3.0 - 2.0))


def test_a_yawn_sets_closed_eyes_aside_but_a_grimace_with_closed_eyes_stays():
    yawn = {**REST, "au26": 4.0, "au25": 5.0, "au43": 1.0, "au7": 2.0}
    assert pain_pspi(yawn) == 0.0
    squeeze = {**yawn, "au4": 3.0}
    assert pain_pspi(squeeze) == pytest.approx(au.pspi(squeeze))
    assert explained_actions(yawn)["au12"] == 0.0  # the other actions pass unchanged


def test_uncalibrated_brows_alone_are_not_pain():
    """Against the canonical face, low brows may be the person's own: calibrated they count."""
    low_brows = {**REST, "au4": 3.5}
    assert pain_pspi(low_brows) == pytest.approx(3.5)
    assert pain_pspi(low_brows, calibrated=False) == 0.0


def test_uncalibrated_low_brows_do_not_keep_a_smile_as_a_pain_smile():
    smile = {**REST, "au4": 3.2, "au6": 3.7, "au7": 1.4, "au9": 2.0, "au10": 1.2, "au12": 3.6, "au25": 5.0}
    assert pain_pspi(smile) == pytest.approx(au.pspi(smile))
    # AU6 exceeds what the smile explains by 0.1: that much brow lowering is corroborated
    assert brow_corroboration(smile) == pytest.approx(0.1)
    assert pain_pspi(smile, calibrated=False) == pytest.approx(0.1 + 0.1)


def test_uncalibrated_talking_with_low_brows_is_not_pain():
    talking = {**REST, "au4": 3.6, "au7": 0.9, "au20": 5.0, "au25": 5.0, "au26": 1.7}
    assert pain_pspi(talking) == pytest.approx(4.5)
    assert pain_pspi(talking, calibrated=False) == 0.0


def test_uncalibrated_pain_face_keeps_its_corroborated_brows():
    grimace = {**REST, "au4": 3.0, "au6": 3.5, "au7": 2.0, "au9": 2.0, "au10": 1.0}
    assert pain_pspi(grimace, calibrated=False) == pytest.approx(au.pspi(grimace)) == pytest.approx(8.5)
    # brows lowered further than any other action: they count up to the strongest other one
    frown = {**grimace, "au4": 4.5}
    assert pain_pspi(frown, calibrated=False) == pytest.approx(3.5 + 3.5 + 2.0)
    assert explained_actions(frown, calibrated=False)["au4"] == pytest.approx(3.5)


def test_uncalibrated_closed_eyes_corroborate_unless_a_yawn_explains_them():
    squeeze = {**REST, "au4": 3.0, "au43": 1.0}
    assert pain_pspi(squeeze, calibrated=False) == pytest.approx(4.0)
    yawn = {**squeeze, "au25": 5.0, "au26": 4.0}
    assert pain_pspi(yawn, calibrated=False) == 0.0
    assert pain_pspi(yawn) == pytest.approx(4.0)  # calibrated, brows at B keep the closure


def test_uncalibrated_a_pain_smile_without_other_unexplained_actions_reads_as_a_smile():
    """The cost: with no neutral face the brows cannot tell a pain smile from a smile, and the
    smile's own actions cannot corroborate the brows that would keep them."""
    pain_smile = {**REST, "au4": 2.5, "au6": 4.0, "au9": 2.0, "au10": 3.0, "au12": 4.0}
    assert pain_pspi(pain_smile) == pytest.approx(au.pspi(pain_smile))
    assert pain_pspi(pain_smile, calibrated=False) == 0.0
    stronger = {**pain_smile, "au6": 5.0}  # cheeks raised beyond what the smile explains
    assert pain_pspi(stronger, calibrated=False) == pytest.approx(1.0 + 1.0)


@pytest.fixture(scope="module")
def points(face_model_dir, astronaut):
    obs = FaceEstimator(face_model_dir, tracking=False, emotion=False).observe(astronaut)
    assert obs.has_face
    return obs.landmarks.copy()


def _iod(p):
    return float(np.linalg.norm(p[list(au.EYE_CORNERS[1]), :2].mean(0) - p[list(au.EYE_CORNERS[0]), :2].mean(0)))


def _aus(points, neutral):
    return au.action_units(au.measure(frontalise(points)[0]), neutral)


def test_lip_corners_jaw_and_lips_read_as_au12_au26_au25(points):
    neutral = au.NeutralBaseline(au.measure(frontalise(points)[0]))
    d = _iod(points)
    smile = points.copy()
    smile[list(au.MOUTH_CORNERS), 1] -= 0.12 * d  # corners up
    aus = _aus(smile, neutral)
    assert aus["au12"] > 3 and aus["au26"] < 0.5 and aus["au4"] < 0.5
    jaw = points.copy()
    below = points[:, 1] > points[au.INNER_LIPS[1], 1] - 1e-6  # lower lip, chin and jaw line
    jaw[below, 1] += 0.2 * d
    aus = _aus(jaw, neutral)
    assert aus["au26"] > 2.5 and aus["au25"] > 2.5 and aus["au12"] < 0.5


def test_stored_baselines_without_the_mouth_measures_still_load():
    stored = {"measures": {m: v for m, v in au.CANONICAL_NEUTRAL.items() if m not in au.LATER_MEASURES},
              "frames": 30, "source": "calibrated"}
    baseline = au.NeutralBaseline.from_dict(stored)
    assert baseline.source == "calibrated"
    assert baseline.measures["jaw_drop"] == au.CANONICAL_NEUTRAL["jaw_drop"]
