"""Simulated recordings with ground truth, streamed through VitalsTracker, for the stage tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from models.vitals import VitalsTracker
from sensors.emulated.physiology import PhysiologySimulator, Scenario
from sensors.types import SampleBlock

RATES_HZ = {"ppg_ir": 100.0, "acc": 100.0, "ecg": 250.0, "eda": 32.0}
UNITS = {"ppg_ir": "counts", "ecg": "mV", "eda": "uS", "acc_x": "g", "acc_y": "g", "acc_z": "g"}


def simulate(sim: PhysiologySimulator, seconds: float, channels=("ppg_ir", "acc", "ecg", "eda")) -> dict:
    out = {}
    for name in channels:
        rate = RATES_HZ[name]
        t = np.arange(round(seconds * rate)) / rate
        if name == "ppg_ir":
            out[name] = 2.0e5 * sim.ppg(t)["ir"]
        elif name == "acc":
            out["acc_x"], out["acc_y"], out["acc_z"] = sim.accel_g(t).T
        elif name == "ecg":
            out[name] = sim.ecg_mv(t)
        else:
            out[name] = sim.eda_us(t)
    return out


def stream(data: dict, seconds: float, tracker: VitalsTracker | None = None, block_s: float = 0.5,
           on_update=None) -> VitalsTracker:
    """Push ``block_s`` blocks of every channel, update every ``tracker.hop_s``."""
    tracker = tracker or VitalsTracker()
    next_hop = tracker.hop_s
    k = 0
    while (k + 1) * block_s <= seconds + 1e-9:
        for name, x in data.items():
            rate = RATES_HZ["acc" if name.startswith("acc") else name]
            a, b = round(k * block_s * rate), round((k + 1) * block_s * rate)
            tracker.push(SampleBlock(name, rate, round(k * block_s * 1e9), x[a:b], UNITS[name]))
        k += 1
        while next_hop <= k * block_s + 1e-9:
            v = tracker.update(round(next_hop * 1e9))
            if on_update is not None:
                on_update(next_hop, v)
            next_hop += tracker.hop_s
    return tracker


def subject(seed: int = 0, **state) -> PhysiologySimulator:
    return PhysiologySimulator(Scenario.rest(**state), seed=seed)


def shared_data(sub: str) -> Path:
    env = os.environ.get("PAINMON_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    path = root / sub
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set PAINMON_DATA)")
    return path
