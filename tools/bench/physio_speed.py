"""Speed of the device's signal path: simulated PPG 100 Hz + accelerometer 100 Hz + ECG 250 Hz
+ EDA 32 Hz through ``VitalsTracker`` (push 1 s blocks per channel, ``update`` every 1 s) on
one core; real-time factor = signal seconds / processing seconds.

The signals come from ``sensors.emulated.physiology.PhysiologySimulator`` (the looping demo
scenario: rest, walking, an arousal episode with SCRs), generated once and held in memory;
generation is not timed. The peer is NeuroKit2 doing the equivalent work on the same arrays -
``ppg_process``, ``ecg_process`` and ``eda_process`` (clean + peaks each) - in one batch per
signal, which is the cheapest way to call it (no windowing, no per-hop overhead). Warm-up on
the first minute, then the median of ``--repeats`` runs.

Both wall-clock and CPU time (``time.process_time``: this process only) are reported. On a
shared machine the wall clock counts the time slices other processes took; the CPU time does
not, so it is the better figure of the work done, and the ratio between the two systems holds
in either.

    python -m tools.bench.physio_speed --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from models.vitals import VitalsTracker
from sensors.emulated.physiology import PhysiologySimulator, Scenario
from sensors.types import SampleBlock
from tools.bench.hr_motion import machine

RATES_HZ = {"ppg": 100.0, "acc": 100.0, "ecg": 250.0, "eda": 32.0}


def simulate(seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    sim = PhysiologySimulator(Scenario.demo(), seed=seed)
    out: dict[str, np.ndarray] = {}
    for name, rate in RATES_HZ.items():
        t = np.arange(round(seconds * rate)) / rate
        if name == "ppg":
            out["ppg_ir"] = 2.0e5 * sim.ppg(t)["ir"]  # MAX30102-like counts
        elif name == "acc":
            a = sim.accel_g(t)
            out["acc_x"], out["acc_y"], out["acc_z"] = a[:, 0], a[:, 1], a[:, 2]
        elif name == "ecg":
            out["ecg"] = sim.ecg_mv(t)
        else:
            out["eda"] = sim.eda_us(t)
    return out


def _rate(name: str) -> float:
    return RATES_HZ["ppg" if name.startswith("ppg") else "acc" if name.startswith("acc") else name]


UNITS = {"eda": "uS", "ecg": "mV", "acc_x": "g", "acc_y": "g", "acc_z": "g", "ppg_ir": "counts"}


def make_blocks(data: dict[str, np.ndarray], seconds: float) -> list[list[SampleBlock]]:
    """Per hop, the blocks the readers would have queued (built before timing)."""
    hops = []
    for k in range(int(seconds)):
        hop = []
        for name, x in data.items():
            r = _rate(name)
            a, b = round(k * r), round((k + 1) * r)
            hop.append(SampleBlock(name, r, round(k * 1e9), x[a:b], UNITS[name]))
        hops.append(hop)
    return hops


def run_painmon(hops: list[list[SampleBlock]]) -> tuple[float, float, list[float]]:
    """(wall s, CPU s, wall s per hop)."""
    tracker = VitalsTracker()
    per_hop = []
    start, cpu = time.perf_counter(), time.process_time()
    for k, hop in enumerate(hops):
        t = time.perf_counter()
        for block in hop:
            tracker.push(block)
        tracker.update(round((k + 1) * 1e9))
        per_hop.append(time.perf_counter() - t)
    return time.perf_counter() - start, time.process_time() - cpu, per_hop


def run_neurokit(data: dict[str, np.ndarray]) -> tuple[float, float]:
    """(wall s, CPU s)."""
    import neurokit2 as nk

    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nk.ppg_process(data["ppg_ir"], sampling_rate=RATES_HZ["ppg"])
        nk.ecg_process(data["ecg"], sampling_rate=RATES_HZ["ecg"])
        nk.eda_process(data["eda"], sampling_rate=RATES_HZ["eda"])
    return time.perf_counter() - start, time.process_time() - cpu


def _pin_one_core() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def run(data_dir: str, minutes: float, repeats: int) -> dict:
    _pin_one_core()
    seconds = minutes * 60.0
    data = simulate(seconds)
    hops = make_blocks(data, seconds)
    warm = min(60, len(hops))
    run_painmon(hops[:warm])
    walls, cpus, per_hop = [], [], []
    for _ in range(repeats):
        wall, cpu, per_hop = run_painmon(hops)
        walls.append(wall)
        cpus.append(cpu)
    hop_ms = 1e3 * np.asarray(per_hop)
    results: dict = {"painmon": _figures(seconds, walls, cpus) | {
        "ms_median": round(float(np.median(hop_ms)), 3),
        "ms_p99": round(float(np.percentile(hop_ms, 99)), 3)}}
    try:
        head = {k: v[: round(60 * _rate(k))] for k, v in data.items()}
        run_neurokit(head)
        nk_walls, nk_cpus = zip(*(run_neurokit(data) for _ in range(repeats)))
        results["neurokit2"] = _figures(seconds, nk_walls, nk_cpus)
        pm, nk = results["painmon"], results["neurokit2"]
        pm["ratio_to_neurokit2"] = round(nk["seconds"] / pm["seconds"], 1)
        pm["cpu_ratio_to_neurokit2"] = round(nk["cpu_seconds"] / pm["cpu_seconds"], 1)
    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, not hidden
        results["neurokit2"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"{minutes:g} min of PPG 100 Hz + acc 100 Hz + ECG 250 Hz + EDA 32 Hz, one core, "
          f"median of {repeats}")
    print(f"{'system':<11}{'wall s':>10}{'x real time':>13}{'CPU s':>10}{'x (CPU)':>10}{'spread (wall)':>22}")
    for s, r in results.items():
        if "error" in r:
            print(f"{s:<11}  error: {r['error']}")
        else:
            lo, hi = r["realtime_factor_range"]
            print(f"{s:<11}{r['seconds']:>10.3f}{r['realtime_factor']:>13.1f}{r['cpu_seconds']:>10.3f}"
                  f"{r['cpu_realtime_factor']:>10.1f}{f'{lo:.0f}-{hi:.0f}x':>22}")
    pm = results["painmon"]
    print(f"painmon per hop (push + update): median {pm['ms_median']} ms, p99 {pm['ms_p99']} ms")
    return {"bench": "physio_speed", "data": data_dir, "results": results,
            "machine": machine() | {"threads": 1, "loadavg": [round(x, 2) for x in os.getloadavg()]}}


def _figures(seconds: float, walls, cpus) -> dict:
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    return {"realtime_factor": round(seconds / wall, 1), "seconds": round(wall, 3),
            "realtime_factor_range": [round(seconds / max(walls), 1), round(seconds / min(walls), 1)],
            "cpu_realtime_factor": round(seconds / cpu, 1), "cpu_seconds": round(cpu, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="(simulated)", help="unused: the data is simulated")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out = run(args.data, args.minutes, args.repeats)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
