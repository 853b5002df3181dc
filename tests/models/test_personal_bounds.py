"""Ratings shift and scale the device's reading but can never pin or flatten it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.personal import MAX_SHIFT, MIN_SLOPE, PersonalMapping

ALARM_THRESHOLD = 7.0  # pain.alarm_threshold's default


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.integers(0, 10)), min_size=3, max_size=60),
       st.floats(0, 20))
def test_no_ratings_push_the_mapping_past_its_bounds(pairs, prior):
    scores, ratings = zip(*pairs, strict=True)
    m = PersonalMapping.fit(scores, ratings, prior_strength=prior)
    grid = np.linspace(0, 10, 21)
    moved = np.array([m.intercept + m.slope * x for x in grid]) - grid
    assert np.all(np.abs(moved) <= MAX_SHIFT + 1e-6), (m, moved)
    assert m.slope >= MIN_SLOPE - 1e-9
    assert PersonalMapping.from_dict(m.to_dict()) == m


@pytest.mark.parametrize("n", [3, 10, 100])
def test_ratings_of_10_at_rest_do_not_make_every_reading_an_alarm(n):
    rest = np.clip(1.5 + np.random.default_rng(n).normal(0, 0.3, n), 0, 10)
    m = PersonalMapping.fit(rest, [10] * n)
    assert m.apply(0.0) <= MAX_SHIFT and m.apply(2.0) < ALARM_THRESHOLD
    assert m.apply(4.5) < ALARM_THRESHOLD


@pytest.mark.parametrize("n", [3, 10, 100])
def test_ratings_of_0_during_pain_do_not_silence_the_alarm(n):
    pain = np.clip(9.5 + np.random.default_rng(n).normal(0, 0.3, n), 0, 10)
    m = PersonalMapping.fit(pain, [0] * n)
    assert m.apply(10.0) >= 10.0 - MAX_SHIFT > ALARM_THRESHOLD


def test_more_and_more_spread_ratings_earn_more_room():
    # A patient who rates 2 points above the device, at rest only and then across the scale.
    few = PersonalMapping.fit([2.0, 2.1, 1.9], [4, 4, 4])
    many = PersonalMapping.fit([2.0, 2.1, 1.9] * 10, [4, 4, 4] * 10)
    assert 0 < few.intercept < many.intercept <= MAX_SHIFT
    assert abs(few.slope - 1) < 0.05  # all at rest: no evidence on the slope
    steep = PersonalMapping.fit(np.linspace(2, 9, 20), np.round(np.linspace(2, 9, 20) * 1.3 - 1.5))
    assert steep.slope > 1.15  # spread ratings may scale the reading


def test_a_stored_mapping_outside_the_bounds_is_refused():
    with pytest.raises(ValueError, match="slope"):
        PersonalMapping(0.0, 0.2, 10)
    with pytest.raises(ValueError, match="moves a score"):
        PersonalMapping(5.0, 1.0, 10)
