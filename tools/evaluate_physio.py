"""Evaluate the committed physio model on a folder of Empatica E4 recordings.

    python -m tools.evaluate_physio --data ../shared/data/stress-predict [--subjects S02 S03]

Each subject folder is read as ``tools.physio.dataset`` reads it (labels from a
``labels*.csv`` or the folder's own ``tags_SXX.csv``), normalised against that subject's own
rest before the first task, and scored sequence by sequence (one per ``--hop`` seconds) by
the device model and the float32 model through ``models.runtime``. Metrics: AUROC (pooled over
all sequences and per subject), balanced accuracy at 0.5, expected calibration error, device
model vs float32 parity, one inference's median time on one thread, model size. Besides the full
protocol (every labelled sequence, the headline), a restricted one, labelled ``settled_20s``,
leaves out sequences ending in the first 20 s of a task or of a recovery.

The peer, measured in the same run on the same sequences: logistic regression (scikit-learn)
on a flat summary of the same features, trained and tested in subject-grouped folds over the
evaluated subjects, so its figures are out-of-subject. The committed model was trained on
the subjects listed in ``physio_lstm.json``; its figures on those subjects are in-sample and
marked so (out-of-subject figures for them come from ``tools.physio.train --folds``).

Prints a table, then one JSON line last (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from models.physio.estimator import DEFAULT_MODEL, MODEL_DIR
from models.runtime import TFLiteModel
from tools.physio.dataset import build
from tools.physio.sequences import (
    auroc,
    balanced_accuracy,
    expected_calibration_error,
    grouped_folds,
    inference_ms,
    predict,
    settled,
    subject_sequences,
    summary_features,
)

DEFAULT_FLOAT = MODEL_DIR / "physio_lstm_float.tflite"
META = MODEL_DIR / "physio_lstm.json"


def logreg_peer(data: dict, folds: int) -> dict:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        return {"error": f"scikit-learn not installed: {exc}"}
    if len(data) < 2:
        return {"error": "needs at least 2 subjects for subject-grouped folds"}
    out = {}
    for held in grouped_folds(list(data), folds):
        train = [n for n in data if n not in held]
        x = np.concatenate([summary_features(data[n][0]) for n in train])
        y = np.concatenate([data[n][1] for n in train])
        if len(np.unique(y)) < 2:
            return {"error": "training folds hold one class only"}
        model = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x, y)
        for n in held:
            out[n] = model.predict_proba(summary_features(data[n][0]))[:, 1]
    return out


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    return {"auroc": auroc(y, p), "balanced_accuracy": balanced_accuracy(y, p),
            "ece": expected_calibration_error(y, p)}


def _fmt(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="folder of E4 subject folders")
    ap.add_argument("--subjects", nargs="*", help="e.g. S02 S03 (default: all in --data)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="device model")
    ap.add_argument("--float-model", type=Path, default=DEFAULT_FLOAT)
    ap.add_argument("--hop", type=int, default=5, help="seconds between scored sequences")
    ap.add_argument("--folds", type=int, default=5, help="subject-grouped folds for the peer")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    device = TFLiteModel(args.model, num_threads=1)
    flt = TFLiteModel(args.float_model, num_threads=1)
    steps = device.input_shape()[1]
    trained_on = set(json.loads(META.read_text())["training_subjects"]) if (
        args.model == DEFAULT_MODEL and META.is_file()) else set()

    subjects = build(args.data, args.subjects, progress=not args.no_progress)
    data = {s.subject: subject_sequences(s, steps, args.hop) for s in subjects}
    data = {n: d for n, d in data.items() if len(d[1])}
    if not data:
        raise SystemExit(f"no labelled {steps}-s sequences in {args.data}")
    p8, pf = {}, {}
    for n in tqdm(data, desc="inference", unit="subj", disable=args.no_progress):
        p8[n] = predict(device, data[n][0])
        pf[n] = predict(flt, data[n][0])
    peer = logreg_peer(data, args.folds)

    print(f"{'subject':8} {'n':>5} {'stress':>6} {'AUROC device':>12} {'float':>6} "
          f"{'logreg':>6} {'bal.acc':>7}  in training set")
    per_subject = {}
    for n, (_x, y, _) in data.items():
        row = {"n": len(y), "auroc": auroc(y, p8[n]), "auroc_float": auroc(y, pf[n]),
               "balanced_accuracy": balanced_accuracy(y, p8[n]), "in_training_set": n in trained_on}
        if isinstance(peer, dict) and "error" not in peer:
            row["auroc_logreg"] = auroc(y, peer[n])
        per_subject[n] = row
        print(f"{n:8} {len(y):5d} {float(np.mean(y)):6.2f} {_fmt(row['auroc']):>12} "
              f"{_fmt(row['auroc_float']):>6} {_fmt(row.get('auroc_logreg')):>6} "
              f"{_fmt(row['balanced_accuracy']):>7}  {'yes' if row['in_training_set'] else 'no'}")

    y = np.concatenate([data[n][1] for n in data])
    all8 = np.concatenate([p8[n] for n in data])
    allf = np.concatenate([pf[n] for n in data])
    labels = {s.subject: s.labels for s in subjects}
    keep = np.concatenate([settled(labels[n], data[n][2]) for n in data])
    ours = metrics(y, all8)
    ours_float = metrics(y, allf)
    ours["auroc_settled_20s"] = auroc(y[keep], all8[keep])
    ours_float["auroc_settled_20s"] = auroc(y[keep], allf[keep])
    subj_aurocs = [r["auroc"] for r in per_subject.values() if r["auroc"] is not None]
    ours.update({
        "auroc_mean_subject": float(np.mean(subj_aurocs)) if subj_aurocs else None,
        "auroc_float": ours_float["auroc"],
        "device_vs_float_max_abs_diff": float(np.max(np.abs(all8 - allf))),
        "device_vs_float_auroc_diff": (None if ours["auroc"] is None
                                     else ours["auroc"] - ours_float["auroc"]),
        "ms_median": inference_ms(device, data[next(iter(data))][0])[0],
        "ms_median_float": inference_ms(flt, data[next(iter(data))][0])[0],
        "size_kb": args.model.stat().st_size / 1024, "model": args.model.name,
        "in_sample_subjects": sorted(n for n in data if n in trained_on),
        "per_subject": {n: r["auroc"] for n, r in per_subject.items()},
    })
    if "error" in peer:
        peer_result = peer
    else:
        allp = np.concatenate([peer[n] for n in data])
        peer_result = metrics(y, allp)
        peer_result["auroc_settled_20s"] = auroc(y[keep], allp[keep])
        peer_result["per_subject"] = {n: r.get("auroc_logreg") for n, r in per_subject.items()}
    print()
    print(f"{'system':24} {'AUROC':>6} {'bal.acc':>7} {'ECE':>6} {'AUROC settled_20s':>17}")
    for name, m in ((f"painmon LSTM ({args.model.stem})", ours), ("painmon LSTM float", ours_float),
                    ("logreg (grouped folds)", peer_result)):
        if "error" in m:
            print(f"{name:24} error: {m['error']}")
        else:
            print(f"{name:24} {_fmt(m['auroc']):>6} {_fmt(m['balanced_accuracy']):>7} "
                  f"{_fmt(m['ece']):>6} {_fmt(m['auroc_settled_20s']):>17}")
    print(f"device vs float32: max |dp| {ours['device_vs_float_max_abs_diff']:.3f}, "
          f"AUROC diff {_fmt(ours['device_vs_float_auroc_diff'])}; "
          f"{args.model.name} {ours['size_kb']:.1f} KB, {ours['ms_median']:.3f} ms median on 1 thread "
          f"(float {ours['ms_median_float']:.3f} ms)")
    if ours["in_sample_subjects"]:
        print(f"note: {len(ours['in_sample_subjects'])} subject(s) were in the committed model's "
              "training set; their figures are in-sample")
    print(json.dumps({
        "bench": "physio",
        "data": str(args.data),
        "results": {"painmon": ours, "logreg": peer_result},
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1},
    }))


if __name__ == "__main__":
    main()
