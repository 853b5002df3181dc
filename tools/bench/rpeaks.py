"""R-peak detection on WFDB records: sensitivity, positive predictivity and F1 at 50 ms.

painmon runs the device's code: ``VitalsTracker`` fed the record's first lead in 1 s blocks,
``update`` every 1 s, beats read from ``new_r_peaks_ns``. The peer is NeuroKit2's default
detector (``ecg_clean`` + ``ecg_peaks``) on the whole record, same lead, same scoring: a
detection matches at most one reference beat within the tolerance (ANSI/AAMI EC57 uses
150 ms; 50 ms also checks the location).

    python -m tools.bench.rpeaks --data ../shared/data/mitbih
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from models.vitals import VitalsTracker
from sensors.types import SampleBlock
from tools.bench.hr_motion import machine
from tools.datasets import find_wfdb_records, load_wfdb_record

TOLERANCE_S = 0.05


def match(detected_s: np.ndarray, reference_s: np.ndarray, tol_s: float = TOLERANCE_S) -> dict:
    """One-to-one matching in time order (both sorted): (tp, fp, fn, se, ppv, f1)."""
    detected_s, reference_s = np.sort(detected_s), np.sort(reference_s)
    i = j = tp = 0
    while i < detected_s.size and j < reference_s.size:  # linear merge over beats
        d = detected_s[i] - reference_s[j]
        if abs(d) <= tol_s:
            tp, i, j = tp + 1, i + 1, j + 1
        elif d < 0:
            i += 1
        else:
            j += 1
    fp, fn = detected_s.size - tp, reference_s.size - tp
    se = tp / max(tp + fn, 1)
    ppv = tp / max(tp + fp, 1)
    f1 = 2 * se * ppv / max(se + ppv, 1e-12)
    return {"tp": tp, "fp": int(fp), "fn": int(fn), "sensitivity": round(se, 5),
            "ppv": round(ppv, 5), "f1": round(f1, 5)}


def painmon_beats(x: np.ndarray, rate_hz: float, hop_s: float = 1.0) -> np.ndarray:
    tracker = VitalsTracker(hop_s=hop_s)
    block = round(hop_s * rate_hz)
    beats = []
    for start in range(0, x.size, block):
        chunk = x[start:start + block]
        tracker.push(SampleBlock("ecg", rate_hz, round(start / rate_hz * 1e9), chunk, "mV"))
        tracker.update(round((start + chunk.size) / rate_hz * 1e9))
        beats.append(tracker.new_r_peaks_ns)
    return np.concatenate(beats) / 1e9


def neurokit_beats(x: np.ndarray, rate_hz: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=rate_hz), sampling_rate=rate_hz)
    return np.asarray(info["ECG_R_Peaks"]) / rate_hz


def run(data: str, seconds: float | None = None) -> dict:
    paths = find_wfdb_records(data)
    if not paths:
        raise SystemExit(f"no WFDB records with .atr annotations in {data}")
    systems = {"painmon": painmon_beats, "neurokit2": neurokit_beats}
    per: dict[str, dict] = {s: {} for s in systems}
    pooled = {s: np.zeros(3, dtype=int) for s in systems}
    errors = {}
    for path in paths:
        rec = load_wfdb_record(path)
        x = rec.signal[:, 0]
        if seconds is not None:
            x = x[: round(seconds * rec.rate_hz)]
        ref = rec.beats_s[rec.beats_s < x.size / rec.rate_hz]
        for s, fn in systems.items():
            if s in errors:
                continue
            try:
                t = time.perf_counter()
                m = match(fn(x, rec.rate_hz), ref)
                m["seconds"] = round(time.perf_counter() - t, 3)
            except Exception as exc:  # noqa: BLE001 - a peer that fails is reported
                errors[s] = f"{type(exc).__name__}: {exc}"
                continue
            per[s][rec.name] = m
            pooled[s] += [m["tp"], m["fp"], m["fn"]]
    print(f"{'record':<8}{'system':<11}{'beats':>7}{'TP':>7}{'FP':>5}{'FN':>5}{'Se':>9}{'PPV':>9}{'F1':>9}")
    for s in systems:
        for name, m in per[s].items():
            print(f"{name:<8}{s:<11}{m['tp'] + m['fn']:>7}{m['tp']:>7}{m['fp']:>5}{m['fn']:>5}"
                  f"{m['sensitivity']:>9.5f}{m['ppv']:>9.5f}{m['f1']:>9.5f}")
    results = {}
    for s in systems:
        if s in errors:
            results[s] = {"error": errors[s]}
            continue
        tp, fp, fn = (int(v) for v in pooled[s])
        total = match(np.empty(0), np.empty(0))
        se, ppv = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        total.update(tp=tp, fp=fp, fn=fn, sensitivity=round(se, 5), ppv=round(ppv, 5),
                     f1=round(2 * se * ppv / max(se + ppv, 1e-12), 5))
        results[s] = {**total, "tolerance_ms": TOLERANCE_S * 1e3, "per_record": per[s]}
    return {"bench": "rpeaks", "data": data, "results": results, "machine": machine()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding WFDB records (.hea/.dat/.atr)")
    parser.add_argument("--seconds", type=float, default=None, help="only the first seconds of each record")
    args = parser.parse_args(argv)
    out = run(args.data, args.seconds)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
