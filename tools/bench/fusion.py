"""Fusion evaluation: AUROC of pain episode vs rest, with every modality, with the face gone,
with the physiology gone, and under limb motion, on simulated people (tools/fusion_sim.py says
what is real and what is synthetic there).

Peers measured in the same run on the same estimates: each modality alone (the "gone"
conditions are exactly that) and a naive fusion, the plain mean of the available modality
scores with the same smoothing, no quality gating or confidence weighting.

Seconds with latent pain >= 3 are positives, seconds with no pain negatives, the ramps in
between are left out, and so is the first ``SKIP_S`` (calibration, the LSTM's first minute).
A second with no estimate at all keeps the score last published (what a display shows).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from models.fusion import FusionContext, FusionSettings, PainFusion
from models.physio.estimator import PhysioEstimator
from tools.bench import cpu_name
from tools.fusion_sim import Person, Session, demo_base_landmarks, face_estimates, physio_estimates

SKIP_S = 90.0
POSITIVE_PAIN = 3.0


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg), ties counted half."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks over ties
    _, start, counts = np.unique(allv, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def sessions(person: Person, duration_s: float, rng: np.random.Generator) -> dict[str, Session]:
    level = float(rng.uniform(4, 8))
    start = float(rng.uniform(140, 170))
    episodes = ((start, start + 100.0, level), (start + 170.0, start + 230.0, level * 0.8))
    episodes = tuple(e for e in episodes if e[1] <= duration_s - 10)
    d0 = float(rng.uniform(100, duration_s - 30))
    dropouts = ((d0, d0 + float(rng.uniform(8, 20))),)
    still = Session(duration_s, episodes, (), dropouts)
    motion = ((120.0, 150.0, 0.35), (start + 40.0, start + 75.0, 0.35))
    return {"still": still, "motion": Session(duration_s, episodes, motion, dropouts)}


def run_fusion(physio, face, settings: FusionSettings, naive: bool = False) -> np.ndarray:
    fusion = PainFusion(settings)
    last, out = 0.0, []
    for k, (p, f) in enumerate(zip(physio, face)):
        t_ns = int(k * 1e9)
        if naive:
            scores = [e.score for e in (p, f) if e is not None and e.score is not None]
            raw = float(np.mean(scores)) if scores else None
            score = fusion._smooth(raw, t_ns)
        else:
            est = fusion.update(t_ns, {"physio": p, "face": f}, FusionContext())
            score = est.score
        last = last if score is None else score
        out.append(last)
    return np.array(out)


def evaluate(people: int, duration_s: float, seed: int) -> dict:
    base = demo_base_landmarks()
    settings = FusionSettings()
    rng = np.random.default_rng(seed)
    columns: dict[str, list[np.ndarray]] = {}
    labels, keep_all = [], []
    for i in range(people):
        person = Person.draw(seed * 1000 + i + 1)
        sess = sessions(person, duration_s, rng)
        est = {}
        for name, s in sess.items():
            est[name] = (physio_estimates(person, s, PhysioEstimator(ppg_polarity=-1)),
                         face_estimates(person, s, base))
        none = [None] * int(duration_s)
        (p, f), (pm, fm) = est["still"], est["motion"]
        runs = {
            "all": run_fusion(p, f, settings),
            "face_gone": run_fusion(p, none, settings),
            "physio_gone": run_fusion(none, f, settings),
            "motion": run_fusion(pm, fm, settings),
            "motion_face_gone": run_fusion(pm, none, settings),
            "naive_all": run_fusion(p, f, settings, naive=True),
            "naive_motion": run_fusion(pm, fm, settings, naive=True),
        }
        for k, v in runs.items():
            columns.setdefault(k, []).append(v)
        t = np.arange(int(duration_s), dtype=float)
        pain = sess["still"].pain_at(t)
        labels.append(pain >= POSITIVE_PAIN)
        keep_all.append((t >= SKIP_S) & ((pain >= POSITIVE_PAIN) | (pain == 0)))
    y = np.concatenate(labels)
    keep = np.concatenate(keep_all)
    return {k: auroc(np.concatenate(v)[keep], y[keep]) for k, v in columns.items()} | {
        "n_people": people, "n_seconds": int(keep.sum()), "positives": int(y[keep].sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.fusion",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=12, help="simulated people")
    parser.add_argument("--duration", type=float, default=480.0, help="seconds per session")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default=None, help="unused: the data is simulated")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    r = evaluate(args.people, args.duration, args.seed)
    elapsed = time.perf_counter() - t0
    fused = {"auroc_all": r["all"], "auroc_face_gone": r["face_gone"],
             "auroc_physio_gone": r["physio_gone"], "auroc_motion": r["motion"],
             "auroc_motion_face_gone": r["motion_face_gone"]}
    fused["auroc_drop_max"] = max(r["all"] - r["face_gone"], r["all"] - r["physio_gone"])
    print(f"fusion, {r['n_people']} simulated people, {r['n_seconds']} scored seconds "
          f"({r['positives']} in pain), {elapsed:.0f} s")
    print(f"{'condition':34s} {'painmon fusion':>15s} {'naive mean':>11s}")
    print(f"{'all modalities':34s} {r['all']:15.3f} {r['naive_all']:11.3f}")
    print(f"{'face gone (physio alone)':34s} {r['face_gone']:15.3f} {'':>11s}")
    print(f"{'physiology gone (face alone)':34s} {r['physio_gone']:15.3f} {'':>11s}")
    print(f"{'under motion':34s} {r['motion']:15.3f} {r['naive_motion']:11.3f}")
    print(f"{'under motion, face gone':34s} {r['motion_face_gone']:15.3f} {'':>11s}")
    print(f"largest drop with one modality missing: {fused['auroc_drop_max']:.3f} (target <= 0.05)")
    print(json.dumps({
        "bench": "fusion",
        "data": f"simulated: {args.people} people x {args.duration:g} s, seed {args.seed}",
        "results": {
            "painmon": fused,
            "naive_mean": {"auroc_all": r["naive_all"], "auroc_motion": r["naive_motion"]},
            "physio_alone": {"auroc_all": r["face_gone"]},
            "face_alone": {"auroc_all": r["physio_gone"]},
        },
        "machine": {"cpu": cpu_name(), "threads": 1, "load_avg_1m": os.getloadavg()[0]},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
