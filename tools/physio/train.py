"""Train the physio LSTM, cross-validate it by subject, and write float and int8 .tflite.

    TF_USE_LEGACY_KERAS=1 nice python -m tools.physio.train \\
        --data ../shared/data/stress-predict --folds 5 --out models/physio

``--data`` is a folder of E4 subject folders, or an .npz from ``tools.physio.dataset``.
With ``--folds K`` (K >= 2) it first trains K models, each with a group of subjects held
out, and prints out-of-fold AUROC per subject (float and int8) next to a logistic
regression on the same features; then it trains on every subject and writes
``physio_lstm_float.tflite``, ``physio_lstm_int8.tflite`` and ``physio_lstm.json`` (training
subjects, settings, cross-validation figures) to ``--out``.

The model is built with tf_keras (``TF_USE_LEGACY_KERAS=1``, set here before TensorFlow is
imported): its LSTM converts to TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM, which quantizes
to full int8. Keras 3's LSTM is not fused and full-int8 calibration of it crashes the
converter (TensorFlow 2.21).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
from pathlib import Path

import numpy as np

from models.physio.features import FEATURE_NAMES, SEQUENCE_STEPS
from tools.physio import convert
from tools.physio.dataset import SubjectSteps, build, load_steps
from tools.physio.sequences import (
    auroc,
    balanced_accuracy,
    expected_calibration_error,
    grouped_folds,
    subject_sequences,
    summary_features,
)


def build_model(steps: int = SEQUENCE_STEPS, units: int = 32, batch_size: int | None = None):
    import tf_keras as keras

    return keras.Sequential([
        keras.layers.Input(shape=(steps, len(FEATURE_NAMES)), batch_size=batch_size),
        # Training-time only: sensor noise after baseline normalisation; dropped on export.
        keras.layers.GaussianNoise(0.1),
        keras.layers.LSTM(units),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def inference_model(model, steps: int, units: int):
    """The same weights with batch 1, the static shape the device runs."""
    m = build_model(steps, units, batch_size=1)
    m.set_weights(model.get_weights())
    return m


def fit(subjects: list[SubjectSteps], *, steps: int, units: int, epochs: int, hop: int,
        max_batches: int | None = None, seed: int = 0, progress: bool = True):
    import tensorflow as tf
    import tf_keras as keras
    from tqdm.keras import TqdmCallback

    tf.keras.utils.set_random_seed(seed)
    parts = [subject_sequences(s, steps, hop) for s in subjects]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.float32)
    if len(np.unique(y)) < 2:
        raise ValueError("training data holds one class only")
    # Balanced classes: rest outnumbers stress about 2:1 in Stress-Predict.
    w = {0: 0.5 / np.mean(y == 0), 1: 0.5 / np.mean(y == 1)}
    model = build_model(steps, units)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    batch = 128
    steps_per_epoch = int(np.ceil(len(x) / batch))
    if max_batches:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    ds = (tf.data.Dataset.from_tensor_slices((x, y, np.vectorize(w.get)(y).astype(np.float32)))
          .shuffle(len(x), seed=seed).repeat().batch(batch))
    model.fit(ds, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
              callbacks=[TqdmCallback(verbose=0, disable=not progress)])
    return model, x


def _predict_tflite(blob: bytes, x: np.ndarray) -> np.ndarray:
    import tempfile

    from models.runtime import TFLiteModel

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(blob)
        f.flush()
        m = TFLiteModel(f.name, num_threads=1)
        return np.array([m.run(x[i:i + 1])[0].ravel()[0] for i in range(len(x))], np.float32)


def cross_validate(subjects, folds, *, steps, units, epochs, hop, eval_hop, max_batches, progress):
    from sklearn.linear_model import LogisticRegression

    by_name = {s.subject: s for s in subjects}
    rows = {}
    pooled = {"float": [], "int8": [], "logreg": [], "y": []}
    for k, held in enumerate(grouped_folds(list(by_name), folds)):
        train = [by_name[n] for n in by_name if n not in held]
        print(f"fold {k + 1}/{folds}: held out {' '.join(held)}")
        model, x_train = fit(train, steps=steps, units=units, epochs=epochs, hop=hop,
                             max_batches=max_batches, progress=progress)
        infer = inference_model(model, steps, units)
        blob = convert.to_tflite(infer, x_train, int8=True)
        peer = LogisticRegression(max_iter=2000, class_weight="balanced").fit(
            summary_features(x_train),
            np.concatenate([subject_sequences(s, steps, hop)[1] for s in train]))
        for name in held:
            x, y, _ = subject_sequences(by_name[name], steps, eval_hop)
            p_float = infer.predict(x, batch_size=256, verbose=0).ravel()
            p_int8 = _predict_tflite(blob, x)
            p_lr = peer.predict_proba(summary_features(x))[:, 1]
            rows[name] = {"auroc_float": auroc(y, p_float), "auroc_int8": auroc(y, p_int8),
                          "auroc_logreg": auroc(y, p_lr),
                          "balanced_accuracy_int8": balanced_accuracy(y, p_int8),
                          "n": len(y)}
            for key, p in (("float", p_float), ("int8", p_int8), ("logreg", p_lr)):
                pooled[key].append(p)
            pooled["y"].append(y)
            print(f"  {name}: AUROC float {rows[name]['auroc_float']:.3f} "
                  f"int8 {rows[name]['auroc_int8']:.3f} logreg {rows[name]['auroc_logreg']:.3f}")
    y = np.concatenate(pooled["y"])
    summary = {"folds": folds, "eval_hop_s": eval_hop, "per_subject": rows}
    for key in ("float", "int8", "logreg"):
        p = np.concatenate(pooled[key])
        summary[key] = {"auroc_pooled": auroc(y, p),
                        "auroc_mean_subject": float(np.mean([r[f"auroc_{key}"] for r in rows.values()])),
                        "balanced_accuracy": balanced_accuracy(y, p),
                        "ece": expected_calibration_error(y, p)}
    summary["int8_vs_float"] = {
        "max_abs_diff": float(np.max(np.abs(np.concatenate(pooled["int8"]) - np.concatenate(pooled["float"])))),
        "auroc_diff": summary["int8"]["auroc_pooled"] - summary["float"]["auroc_pooled"]}
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="E4 folder tree or dataset .npz")
    ap.add_argument("--subjects", nargs="*", help="subjects to use (default: all)")
    ap.add_argument("--out", type=Path, default=Path("models/physio"))
    ap.add_argument("--folds", type=int, default=5, help="subject-grouped folds; < 2 skips CV")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--steps", type=int, default=SEQUENCE_STEPS, help="sequence length (s)")
    ap.add_argument("--hop", type=int, default=2, help="training sequence hop (s)")
    ap.add_argument("--eval-hop", type=int, default=5, help="evaluation sequence hop (s)")
    ap.add_argument("--max-batches", type=int, help="cap batches per epoch (smoke runs)")
    ap.add_argument("--keras-out", type=Path, help="also save the trained tf_keras model (.h5)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.data.suffix == ".npz":
        subjects = load_steps(args.data)
        if args.subjects:
            subjects = [s for s in subjects if s.subject in set(args.subjects)]
    else:
        subjects = build(args.data, args.subjects, progress=not args.no_progress)
    if not subjects:
        raise SystemExit(f"no subjects in {args.data}")
    common = dict(steps=args.steps, units=args.units, epochs=args.epochs, hop=args.hop,
                  max_batches=args.max_batches, progress=not args.no_progress)
    cv = None
    if args.folds >= 2:
        cv = cross_validate(subjects, args.folds, eval_hop=args.eval_hop, **common)
        print(json.dumps({k: v for k, v in cv.items() if k != "per_subject"}))
    print(f"final model on {len(subjects)} subjects")
    model, x_train = fit(subjects, **common)
    if args.keras_out:
        model.save(args.keras_out)
    paths = convert.write_models(inference_model(model, args.steps, args.units), x_train, args.out)
    import tensorflow as tf

    meta = {"features": list(FEATURE_NAMES), "steps": args.steps, "step_s": 1.0,
            "label": "label of the sequence's last second (1 stress, 0 rest)",
            "training_subjects": [s.subject for s in subjects], "units": args.units,
            "epochs": args.epochs, "hop_s": args.hop, "tensorflow": tf.__version__,
            "cross_validation": cv}
    (args.out / "physio_lstm.json").write_text(json.dumps(meta, indent=1) + "\n")
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
