"""EDA: SCR onsets, amplitude and rise time against simulated truth; SCL; bad input."""

import numpy as np
import pytest

from models.eda import ScrDetector, find_scrs, tonic_level
from tests.models.sim_vitals import simulate, stream, subject

RATE = 32.0


def test_one_scr_is_found_with_its_onset_amplitude_and_rise():
    t = np.arange(round(20 * RATE)) / RATE
    onset, rise, amp = 6.0, 2.0, 0.3
    tau = t - onset
    scr = np.where(tau < 0, 0.0, np.where(tau < rise, amp * 0.5 * (1 - np.cos(np.pi * tau / rise)),
                                          amp * np.exp(-(tau - rise) / 6.0)))
    x = 3.0 + scr
    on, pk, a = find_scrs(x, RATE)
    assert on.size == 1
    assert on[0] / RATE == pytest.approx(onset, abs=0.4)
    assert a[0] == pytest.approx(amp, rel=0.1)
    assert (pk[0] - on[0]) / RATE == pytest.approx(rise, abs=0.5)
    assert tonic_level(x) == pytest.approx(3.0, abs=0.01)


def test_simulated_scrs_match_the_onsets_and_scl_tracks_the_tonic_level():
    sim = subject(seed=11, arousal=0.8)
    tracker = stream(simulate(sim, 240.0, channels=("eda",)), 240.0)
    truth = sim.scr_onsets(5.0, 238.0)
    got = np.array([s.onset_ns for s in tracker.scrs.scrs]) / 1e9
    got = got[(got >= 5.0) & (got < 238.0)]
    hits = sum(np.any(np.abs(got - t0) <= 2.0) for t0 in truth)
    assert truth.size >= 10
    assert hits / truth.size >= 0.7  # small SCRs riding on a recovering one are hard to split
    assert got.size <= 1.3 * truth.size
    v = tracker.update(240_000_000_000)
    assert v.scl_us == pytest.approx(sim.truth(240.0)["scl_us"], rel=0.15)
    assert v.scr["rate_per_min"] == pytest.approx(tracker.scrs.rate_per_min(240_000_000_000))


@pytest.mark.parametrize("kind", ["flat", "noise", "open"])
def test_bad_eda_gives_no_scrs(kind):
    rng = np.random.default_rng(0)
    n = round(60 * RATE)
    x = {"flat": np.full(n, 4.0), "noise": 4.0 + 0.003 * rng.standard_normal(n),
         "open": np.zeros(n)}[kind]
    tracker = stream({"eda": x}, 60.0)
    v = tracker.update(60_000_000_000)
    assert tracker.scrs.scrs == []
    if kind == "open":
        assert v.eda_us is None and v.scl_us is None and v.quality["eda"] == 0.0


def test_detector_commits_each_scr_once_across_hops():
    t = np.arange(round(30 * RATE)) / RATE
    x = 2.0 + 0.2 * np.clip((t - 10) / 2, 0, 1) * np.exp(-np.clip(t - 12, 0, None) / 8)
    det = ScrDetector()
    for end in range(10, 31):
        w = x[max(0, round((end - 10) * RATE)):round(end * RATE)]
        det.update(w, RATE, end * 1_000_000_000)
    assert len(det.scrs) == 1
    assert det.scrs[0].onset_ns / 1e9 == pytest.approx(10.0, abs=0.4)
