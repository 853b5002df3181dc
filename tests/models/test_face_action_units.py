import numpy as np
import pytest

from models.face import FaceEstimator
from models.face import action_units as au
from models.face.geometry import frontalise


@pytest.fixture(scope="module")
def astronaut_points(face_model_dir, astronaut):
    est = FaceEstimator(face_model_dir, tracking=False)
    obs = est.observe(astronaut)
    assert obs.has_face
    return obs.landmarks.copy()


def _aus(points, neutral):
    frontal, _ = frontalise(points)
    aus = au.action_units(au.measure(frontal), neutral)
    return aus, au.pspi(aus)


def _iod(points):
    right = points[list(au.EYE_CORNERS[0]), :2].mean(0)
    left = points[list(au.EYE_CORNERS[1]), :2].mean(0)
    return float(np.linalg.norm(left - right))


def test_own_neutral_gives_no_action(astronaut_points):
    neutral = au.NeutralBaseline(au.measure(frontalise(astronaut_points)[0]))
    aus, pspi = _aus(astronaut_points, neutral)
    assert pspi == pytest.approx(0.0, abs=1e-9)
    assert all(aus[k] == 0 for k in au.ACTION_UNITS)


@pytest.mark.parametrize("drop_iod", [0.05, 0.09])
def test_brow_lowering_raises_au4_and_pspi(astronaut_points, drop_iod):
    neutral = au.NeutralBaseline(au.measure(frontalise(astronaut_points)[0]))
    moved = astronaut_points.copy()
    brow = sorted({i for side in au.BROW + au.BROW_OUTER for i in side})
    moved[brow, 1] += drop_iod * _iod(astronaut_points)  # image y grows downwards
    # corrugator: the inner brows also come together
    inner_r, inner_l = list(au.INNER_BROW[0]), list(au.INNER_BROW[1])
    moved[inner_r, 0] += 0.02 * _iod(astronaut_points)
    moved[inner_l, 0] -= 0.02 * _iod(astronaut_points)
    aus, pspi = _aus(moved, neutral)
    assert aus["au4"] > 1.5
    assert pspi >= aus["au4"] > 0
    for other in ("au6", "au9", "au10", "au20", "au43"):
        assert aus[other] < 0.5, other


def test_stronger_lowering_scores_higher(astronaut_points):
    neutral = au.NeutralBaseline(au.measure(frontalise(astronaut_points)[0]))
    brow = sorted({i for side in au.BROW + au.BROW_OUTER for i in side})
    values = []
    for drop in (0.03, 0.06, 0.09):
        moved = astronaut_points.copy()
        moved[brow, 1] += drop * _iod(astronaut_points)
        values.append(_aus(moved, neutral)[0]["au4"])
    assert values[0] < values[1] < values[2]


def test_eye_closure_raises_au43_and_pspi(astronaut_points):
    neutral = au.NeutralBaseline(au.measure(frontalise(astronaut_points)[0]))
    closed = astronaut_points.copy()
    for upper, lower in zip(au.UPPER_LID, au.LOWER_LID):
        closed[list(upper), :2] = closed[list(lower), :2]
    aus, pspi = _aus(closed, neutral)
    assert aus["au43"] == 1.0
    assert aus["eye_closure"] > 0.9
    assert pspi >= 1.0
    assert aus["au4"] < 0.5


def test_pspi_formula():
    aus = {"au4": 2.0, "au6": 1.0, "au7": 3.5, "au9": 0.5, "au10": 0.25, "au43": 1.0, "au20": 4.0}
    assert au.pspi(aus) == pytest.approx(2.0 + 3.5 + 0.5 + 1.0)
    assert au.pspi_to_score(16.0) == 10.0 and au.pspi_to_score(8.0) == 5.0


def test_baseline_round_trip_and_validation():
    base = au.NeutralBaseline({m: 0.1 + i for i, m in enumerate(au.MEASURES)}, frames=7)
    again = au.NeutralBaseline.from_dict(base.to_dict())
    assert again == base
    broken = base.to_dict()
    del broken["measures"]["brow_eye"]
    with pytest.raises(ValueError, match="brow_eye"):
        au.NeutralBaseline.from_dict(broken)


def test_accumulator_takes_the_median():
    acc = au.BaselineAccumulator(frames=3)
    samples = [{m: v for m in au.MEASURES} for v in (0.2, 0.9, 0.3)]
    assert acc.add(samples[0]) is None and acc.add(samples[1]) is None
    base = acc.add(samples[2])
    assert base is not None and base.frames == 3
    assert base.measures["lip_nose"] == pytest.approx(0.3)
