"""Pulse arrival time: R peak to PPG foot, on simulated signals with a known PAT."""

import numpy as np
import pytest

from models.pat import pulse_arrival_times, volume_orientation
from tests.models.sim_vitals import simulate, stream, subject


@pytest.mark.parametrize("arousal", [0.0, 0.9])
def test_pat_follows_the_simulated_arrival_time(arousal):
    sim = subject(seed=7, hr_bpm=68, arousal=arousal)
    tracker = stream(simulate(sim, 40.0, channels=("ppg_ir", "ecg")), 40.0)
    v = tracker.update(40_000_000_000)
    truth_ms = 1e3 * sim.truth(40.0)["pat_s"]
    # the second-derivative foot sits a little before the tangent foot the simulator defines
    assert v.pat["ms"] == pytest.approx(truth_ms, abs=25.0)
    assert v.pat["quality"] >= 0.5 and v.pat["n_beats"] >= 6


def test_pat_tells_arousal_apart():
    pats = []
    for arousal in (0.0, 0.9):
        sim = subject(seed=8, hr_bpm=70, arousal=arousal)
        pats.append(stream(simulate(sim, 30.0, channels=("ppg_ir", "ecg")), 30.0).update(30_000_000_000).pat["ms"])
    assert pats[0] - pats[1] > 40.0  # simulated: 255 ms at rest, ~180 ms aroused


def test_orientation_and_bad_input():
    t = np.arange(1000) / 100.0
    rising = np.concatenate([np.linspace(0, 1, 15), np.linspace(1, 0, 85)] * 10)  # fast up, slow down
    assert volume_orientation(rising) == 1.0 and volume_orientation(-rising) == -1.0
    r = np.arange(0.5, 9.0, 1.0)
    for x in (np.zeros(1000), np.full(1000, np.nan), np.random.default_rng(0).standard_normal(1000)):
        at = pulse_arrival_times(r, x, 100.0)
        assert at.median_ms is None or at.quality < 0.5
    assert pulse_arrival_times(np.empty(0), rising, 100.0).median_ms is None
    assert t.size == 1000
