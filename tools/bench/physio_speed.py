"""Speed of the device's signal path: simulated PPG 100 Hz + accelerometer 100 Hz + ECG 250 Hz
+ EDA 32 Hz through ``VitalsTracker`` (push 1 s blocks per channel, ``update`` every 1 s over
the last 10 s) on one core; real-time factor = signal seconds / processing seconds.

The signals come from ``sensors.emulated.physiology.PhysiologySimulator`` (the looping demo
scenario: rest, walking, an arousal episode with SCRs), generated once and held in memory;
generation is not timed.

The peer is NeuroKit2 doing clean + peaks per signal (``ppg_clean``/``ppg_peaks``,
``ecg_clean``/``ecg_peaks``, ``eda_clean``/``eda_phasic``/``eda_peaks``) on the same arrays,
in three forms, all in the same run:

- ``neurokit2``: the device's job - every second, the last 10 s of each signal. NeuroKit2 has
  no streaming interface, so each hop processes its windows. This is the like-for-like figure.
- ``neurokit2_batch``: one call per signal over the whole recording: the cheapest way to call
  it, which an offline analysis can do and a monitor cannot (it must answer every second).
- ``neurokit2_process``: ``ppg_process``/``ecg_process``/``eda_process`` over the whole
  recording, which add rates, quality (PPG template matching) and, for the ECG, wave
  delineation; most of their time goes to those extras.

Warm-up on the first minute, then the median of ``--repeats`` runs. Both wall-clock and CPU
time (``time.process_time``: this process only) are reported. On a shared machine the wall
clock counts the time slices other processes took; the CPU time does not, so it is the better
figure of the work done, and the ratio between the systems holds in either.

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


NK_WINDOW_S = 10


def _nk_signal(nk, name: str, x: np.ndarray) -> None:
    """NeuroKit2's clean + peaks of one signal."""
    rate = _rate(name)
    if name == "ppg_ir":
        nk.ppg_peaks(nk.ppg_clean(x, sampling_rate=rate), sampling_rate=rate)
    elif name == "ecg":
        nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=rate), sampling_rate=rate)
    else:
        phasic = nk.eda_phasic(nk.eda_clean(x, sampling_rate=rate), sampling_rate=rate)["EDA_Phasic"]
        nk.eda_peaks(phasic, sampling_rate=rate)


NK_SIGNALS = ("ppg_ir", "ecg", "eda")


def run_neurokit(data: dict[str, np.ndarray], form: str) -> tuple[float, float, float, dict[str, int]]:
    """(wall s, CPU s, signal seconds covered, windows it raised on per signal) for one form
    of the peer (see the module doc)."""
    import neurokit2 as nk

    seconds = data["ecg"].size / RATES_HZ["ecg"]
    failed: dict[str, int] = {}
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if form == "per_hop":
            hops = range(NK_WINDOW_S, int(seconds) + 1)
            for k in hops:
                for name in NK_SIGNALS:
                    r = _rate(name)
                    try:  # a window it cannot process (no SCR in it, say) is skipped, as a device would
                        _nk_signal(nk, name, data[name][round((k - NK_WINDOW_S) * r):round(k * r)])
                    except Exception:  # noqa: BLE001 - counted and reported
                        failed[name] = failed.get(name, 0) + 1
            covered = float(len(hops))
        elif form == "batch":
            for name in NK_SIGNALS:
                _nk_signal(nk, name, data[name])
            covered = seconds
        else:
            nk.ppg_process(data["ppg_ir"], sampling_rate=RATES_HZ["ppg"])
            nk.ecg_process(data["ecg"], sampling_rate=RATES_HZ["ecg"])
            nk.eda_process(data["eda"], sampling_rate=RATES_HZ["eda"])
            covered = seconds
    return time.perf_counter() - start, time.process_time() - cpu, covered, failed


PEERS = {"neurokit2": "per_hop", "neurokit2_batch": "batch", "neurokit2_process": "process"}
LABELS = {"painmon": "painmon, every 1 s over the last 10 s",
          "neurokit2": "NeuroKit2 clean+peaks, the same windows",
          "neurokit2_batch": "NeuroKit2 clean+peaks, whole recording",
          "neurokit2_process": "NeuroKit2 *_process, whole recording"}


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
    head = {k: v[: round(60 * _rate(k))] for k, v in data.items()}
    pm = results["painmon"]
    for key, form in PEERS.items():
        try:
            run_neurokit(head, form)
            walls, cpus, covered, failed = zip(*(run_neurokit(data, form) for _ in range(repeats)))
            results[key] = _figures(covered[0], walls, cpus)
            if form == "per_hop":
                results[key]["failed_windows"] = failed[-1]
            pm[f"ratio_to_{key}"] = round(results[key]["seconds"] / covered[0] * seconds / pm["seconds"], 2)
            pm[f"cpu_ratio_to_{key}"] = round(results[key]["cpu_seconds"] / covered[0] * seconds / pm["cpu_seconds"], 2)
        except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, not hidden
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"{minutes:g} min of PPG 100 Hz + acc 100 Hz + ECG 250 Hz + EDA 32 Hz, one core, "
          f"median of {repeats}")
    print(f"{'system':<42}{'x real time':>13}{'x (CPU)':>10}{'spread (wall)':>16}{'painmon is':>13}")
    for key, r in results.items():
        if "error" in r:
            print(f"{LABELS[key]:<42}  error: {r['error']}")
            continue
        lo, hi = r["realtime_factor_range"]
        vs = "" if key == "painmon" else f"{pm.get(f'cpu_ratio_to_{key}', float('nan')):.2f}x"
        print(f"{LABELS[key]:<42}{r['realtime_factor']:>13.1f}{r['cpu_realtime_factor']:>10.1f}"
              f"{f'{lo:.0f}-{hi:.0f}x':>16}{vs:>13}")
    print(f"painmon per hop (push + update): median {pm['ms_median']} ms, p99 {pm['ms_p99']} ms")
    failed = results.get("neurokit2", {}).get("failed_windows")
    if failed:
        print(f"NeuroKit2 raised on (and skipped) windows per run: {failed}")
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
