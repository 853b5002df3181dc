"""The demo photo's pain expression: the warp, its table of feature points, and what the real
face path measures on it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sensors.clock import SteppedClock
from sensors.emulated.expression import (
    ASTRONAUT_FACE,
    ExpressionUnavailable,
    FacePoints,
    PainExpression,
    lid_closure,
    pain_expression,
)
from sensors.emulated.photo import PhotoSource, astronaut_photo
from sensors.emulated.scenario import Scenario

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def photo():
    return astronaut_photo()


@pytest.fixture(scope="module")
def expression():
    return PainExpression(FacePoints.astronaut())


@pytest.fixture(scope="module")
def measured(face_model_dir, photo, expression):
    """Action units and PSPI per intensity, from the real FaceEstimator whose neutral face is
    the intensity-0 photo (detection on every frame: a still image, deterministic)."""
    from models.face import FaceEstimator
    from models.face import action_units as au

    estimator = FaceEstimator(face_model_dir, tracking=False)
    neutral = estimator.observe(photo)
    assert neutral.has_face
    estimator.set_neutral(au.NeutralBaseline(neutral.measures))
    out = {}
    for level in LEVELS:
        obs = estimator.observe(expression.apply(photo, level))
        assert obs.has_face, level
        out[level] = {**obs.action_units, "pspi": obs.pspi, "landmarks": obs.landmarks}
    return out


def test_table_matches_what_facemesh_finds_on_the_photo(face_model_dir, photo):
    from models.face import FaceEstimator

    points = FaceEstimator(face_model_dir, tracking=False).observe(photo).landmarks
    assert points is not None
    for name, ((x, y), indices) in ASTRONAUT_FACE.items():
        found = points[list(indices), :2].mean(axis=0)
        assert np.hypot(found[0] - x, found[1] - y) < 2.0, (name, found, (x, y))


def test_intensity_zero_is_the_photo(photo, expression):
    assert np.array_equal(expression.apply(photo, 0.0), photo)
    clock = SteppedClock()
    plain = PhotoSource(rate_hz=10.0, clock=SteppedClock())
    calm = PhotoSource(rate_hz=10.0, clock=clock, expression=lambda t_s: 0.0)
    for _ in range(3):
        assert np.array_equal(calm.read().image, plain.read().image)


def test_the_warp_stays_on_the_face_and_never_folds(photo, expression):
    warped = expression.apply(photo, 1.0)
    y0, y1, x0, x1 = expression.box
    outside = np.ones(photo.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(warped[outside], photo[outside])
    assert np.abs(warped.astype(int) - photo).max() > 60  # the face did change
    for level in (0.5, 1.0):
        fx, fy = expression._flow(expression._xs, expression._ys, level)
        sx, sy = expression._xs + fx, expression._ys + fy
        det = (np.gradient(sx, axis=1) * np.gradient(sy, axis=0)
               - np.gradient(sx, axis=0) * np.gradient(sy, axis=1))
        assert det.min() > 0.2, level  # every pixel reads a different place, in order
        # the lids slide over the eye without turning it upside down
        _, total_y = expression.source_xy(level)
        assert np.gradient(total_y, axis=0).min() > 0.2


def test_the_lids_narrow_then_close(expression):
    assert lid_closure(0.0) == 0.0 and lid_closure(1.0) == 1.0
    assert np.all(np.diff([lid_closure(x) for x in np.linspace(0, 1, 21)]) >= 0)
    assert lid_closure(0.5) < 0.5  # a squint at moderate pain, closed eyes only near the top


def test_full_expression_reads_as_pain(measured):
    neutral, full = measured[0.0], measured[1.0]
    assert neutral["pspi"] < 0.5
    assert full["au4"] > 2.5 and full["au4"] > neutral["au4"] + 2.5
    assert max(full["au6"], full["au7"]) > 2.0
    assert max(full["au9"], full["au10"]) > 2.5
    assert full["pspi"] > 8.0
    assert full["eye_closure"] > 0.3  # the lids measurably narrowed


def test_pspi_grows_with_intensity(measured):
    pspi = [measured[level]["pspi"] for level in LEVELS]
    assert all(b > a - 0.5 for a, b in itertools.pairwise(pspi)), pspi  # monotone up to jitter
    assert pspi[2] > pspi[0] + 3.0 and pspi[4] > pspi[2] + 3.0, pspi


def test_eye_corners_stay_put(measured):
    # The inter-ocular distance and the eye line are the AUs' ruler: the grimace must not move
    # them, or it would rescale every measure.
    before, after = measured[0.0]["landmarks"], measured[1.0]["landmarks"]
    corners = [33, 133, 263, 362]
    assert np.abs(after[corners, :2] - before[corners, :2]).max() < 2.5


def test_photo_source_follows_the_expression_over_time():
    clock = SteppedClock()
    source = PhotoSource(rate_hz=10.0, clock=clock, expression=lambda t_s: 0.0 if t_s < 1.0 else 1.0)
    plain = PhotoSource(rate_hz=10.0, clock=SteppedClock())
    frames = [(source.read(), plain.read()) for _ in range(20)]
    early = [np.array_equal(a.image, b.image) for a, b in frames if a.t_ns < 1e9]
    late = [np.array_equal(a.image, b.image) for a, b in frames if a.t_ns >= 1e9]
    assert early and all(early)
    assert late and not any(late)


def test_expression_needs_the_photo_points(photo):
    other = np.zeros((300, 400, 3), np.uint8)
    with pytest.raises(ExpressionUnavailable, match="feature points"):
        PhotoSource(other, expression=lambda t_s: 0.5)
    with pytest.raises(ExpressionUnavailable, match="512"):
        PhotoSource(other, expression=lambda t_s: 0.5, face_points=FacePoints.astronaut())
    PhotoSource(other)  # without an expression any photo will do
    with pytest.raises(ValueError, match="missing feature point"):
        FacePoints({"subnasale": (1.0, 2.0)}, (10, 10))


def test_expression_out_of_range_is_refused(photo, expression):
    source = PhotoSource(rate_hz=10.0, clock=SteppedClock(), expression=lambda t_s: 1.5)
    with pytest.raises(ValueError, match="expression"):
        source.read()
    with pytest.raises(ValueError, match="intensity"):
        expression.apply(photo, float("nan"))


def test_pain_expression_follows_the_scenario():
    intensity = pain_expression(Scenario.demo())
    assert intensity(0.0) == 0.0 and intensity(60.0) == 0.0
    assert intensity(90.0) == pytest.approx(0.6)
    assert intensity(90.0 + 180.0) == pytest.approx(0.6)  # the demo loops
    assert intensity(170.0) == 0.0
    assert pain_expression(Scenario.rest(pain=10.0), pain_full=5.0)(3.0) == 1.0
    with pytest.raises(ValueError, match="pain_full"):
        pain_expression(Scenario.demo(), pain_full=0.0)


def test_the_expression_costs_little_beside_the_motion(photo, expression):
    import time

    from sensors.emulated.photo import similarity_warp

    def best_ms(fn, n=5):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * min(times)

    grimace = best_ms(lambda: expression.apply(photo, 0.6))
    motion = best_ms(lambda: similarity_warp(photo, (480, 640), 0.94, 0.05, (3.0, 4.0)))
    print(f"expression warp {grimace:.1f} ms, motion warp {motion:.1f} ms")
    assert grimace < 0.5 * motion
