"""Train the physio LSTM, cross-validate it by subject, and write its .tflite variants.

    TF_USE_LEGACY_KERAS=1 nice python -m tools.physio.train \\
        --data ../shared/data/stress-predict --folds 5 --out models/physio

``--data`` is a folder of E4 subject folders, or an .npz from ``tools.physio.dataset``.
With ``--folds K`` (K >= 2) it first trains K models, each with a group of subjects held
out, and prints out-of-fold AUROC per subject (Keras float and every TFLite variant:
float32, float16, dynamic-range, full int8) next to a logistic regression on the same
features, and each variant's output difference from float32 on every held-out sequence;
then it trains on every subject and writes the float32 reference
(``physio_lstm_float.tflite``), the device model (``convert.DEVICE_VARIANT``) and
``physio_lstm.json`` (training subjects, settings, cross-validation figures) to ``--out``.
``--seeds N`` (default 2) trains N models with consecutive seeds and exports their average as
one graph; the cross-validation scores that same ensemble. ``--cv-predictions`` keeps the
out-of-fold scores for analysis.

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

from models.physio.features import SEQUENCE_STEPS
from models.physio.inputs import INPUT_NAMES
from tools.physio import convert
from tools.physio.dataset import SubjectSteps, build, load_steps, motion_cleaned
from tools.physio.sequences import (
    auroc,
    balanced_accuracy,
    expected_calibration_error,
    grouped_folds,
    predict,
    settled,
    subject_sequences,
    summary_features,
)


def build_model(steps: int = SEQUENCE_STEPS, units: int = 32, batch_size: int | None = None,
                conv_filters: int = 0, noise: float = 0.1, pool: int = 1):
    """LSTM classifier; ``conv_filters`` > 0 puts a causal 1-D convolution (5 s kernel) in
    front, which converts to int8 CONV_2D next to the fused LSTM; ``pool`` > 1 averages
    that many steps before the LSTM (fewer, smoother steps: less noise for it to carry and
    a shorter int8 recurrence)."""
    import tf_keras as keras

    layers = [
        keras.layers.Input(shape=(steps, len(INPUT_NAMES)), batch_size=batch_size),
        # Training-time only: sensor noise after baseline normalisation; dropped on export.
        keras.layers.GaussianNoise(noise),
    ]
    if conv_filters:
        layers.append(keras.layers.Conv1D(conv_filters, 5, padding="causal", activation="relu"))
    if pool > 1:
        layers.append(keras.layers.AveragePooling1D(pool))
    layers += [
        keras.layers.LSTM(units),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
    return keras.Sequential(layers)


def inference_model(model, steps: int, units: int, conv_filters: int = 0, pool: int = 1):
    """The same weights with batch 1, the static shape the device runs. A list of models
    (seeds) becomes one graph averaging their probabilities: one .tflite, one call."""
    import tf_keras as keras

    members = model if isinstance(model, list) else [model]
    copies = []
    for member in members:
        m = build_model(steps, units, batch_size=1, conv_filters=conv_filters, pool=pool)
        m.set_weights(member.get_weights())
        copies.append(m)
    if len(copies) == 1:
        return copies[0]
    x = keras.layers.Input(shape=(steps, len(INPUT_NAMES)), batch_size=1)
    return keras.Model(x, keras.layers.Average()([m(x) for m in copies]))


def fit(subjects: list[SubjectSteps], *, steps: int, units: int, epochs: int, hop: int,
        max_batches: int | None = None, seed: int = 0, seeds: int = 1, conv_filters: int = 0,
        noise: float = 0.1, pool: int = 1, truncate: float = 0.0, progress: bool = True):
    """Train ``seeds`` models (seeds ``seed``, ``seed + 1``, ...) on the same sequences;
    returns (models, training sequences)."""
    import tensorflow as tf
    import tf_keras as keras
    from tqdm.keras import TqdmCallback

    rng = np.random.default_rng(seed)
    parts = [subject_sequences(s, steps, hop, truncate=truncate, rng=rng) for s in subjects]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.float32)
    if len(np.unique(y)) < 2:
        raise ValueError("training data holds one class only")
    # Balanced classes: rest outnumbers stress about 2:1 in Stress-Predict.
    w = {0: 0.5 / np.mean(y == 0), 1: 0.5 / np.mean(y == 1)}
    batch = 128
    steps_per_epoch = int(np.ceil(len(x) / batch))
    if max_batches:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    models = []
    for member_seed in range(seed, seed + seeds):
        tf.keras.utils.set_random_seed(member_seed)
        model = build_model(steps, units, conv_filters=conv_filters, noise=noise, pool=pool)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
        ds = (tf.data.Dataset.from_tensor_slices((x, y, np.vectorize(w.get)(y).astype(np.float32)))
              .shuffle(len(x), seed=member_seed).repeat().batch(batch))
        model.fit(ds, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
                  callbacks=[TqdmCallback(verbose=0, disable=not progress)])
        models.append(model)
    return models, x


def _predict_tflite(blob: bytes, x: np.ndarray) -> np.ndarray:
    import tempfile

    from models.runtime import TFLiteModel

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(blob)
        f.flush()
        return predict(TFLiteModel(f.name, num_threads=1), x)


def parity(p: np.ndarray, reference: np.ndarray, tolerance: float = 0.05) -> dict:
    """How far one model's outputs are from the reference's, sequence by sequence."""
    d = np.abs(np.asarray(p, float) - np.asarray(reference, float))
    return {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "p99_abs_diff": float(np.percentile(d, 99)),
            f"share_over_{tolerance:g}": float(np.mean(d > tolerance)), "n": int(d.size)}


def cross_validate(subjects, folds, *, steps, units, epochs, hop, eval_hop, max_batches, progress,
                   seed=0, seeds=1, conv_filters=0, noise=0.1, pool=1, truncate=0.0,
                   predictions_out=None):
    """Subject-grouped folds: per held-out subject, the AUROC of the Keras float model, of
    every TFLite variant (``convert.VARIANTS``) of the same weights, and of the logistic
    regression peer; pooled figures per model; and each variant's output difference from the
    float32 TFLite model on every evaluated sequence (``parity``)."""
    from sklearn.linear_model import LogisticRegression

    by_name = {s.subject: s for s in subjects}
    rows = {}
    models = ("float", *convert.VARIANTS, "logreg")
    pooled = {key: [] for key in (*models, "y", "settled")}
    saved = {}
    for k, held in enumerate(grouped_folds(list(by_name), folds)):
        train = [by_name[n] for n in by_name if n not in held]
        print(f"fold {k + 1}/{folds}: held out {' '.join(held)}")
        model, x_train = fit(train, steps=steps, units=units, epochs=epochs, hop=hop,
                             max_batches=max_batches, progress=progress, seed=seed, seeds=seeds,
                             conv_filters=conv_filters, noise=noise, pool=pool,
                             truncate=truncate)
        infer = inference_model(model, steps, units, conv_filters, pool)
        blobs = {v: convert.to_tflite(infer, x_train, v) for v in convert.VARIANTS}
        peer = LogisticRegression(max_iter=2000, class_weight="balanced").fit(
            summary_features(x_train),
            np.concatenate([subject_sequences(s, steps, hop)[1] for s in train]))
        for name in held:
            x, y, ends = subject_sequences(by_name[name], steps, eval_hop)
            p = {"float": infer.predict(x, batch_size=256, verbose=0).ravel()}
            p.update({v: _predict_tflite(blob, x) for v, blob in blobs.items()})
            p["logreg"] = peer.predict_proba(summary_features(x))[:, 1]
            rows[name] = {f"auroc_{key}": auroc(y, p[key]) for key in models}
            rows[name]["balanced_accuracy_device"] = balanced_accuracy(y, p[convert.DEVICE_VARIANT])
            rows[name]["n"] = len(y)
            for key in models:
                pooled[key].append(p[key])
                saved[f"{name}/{key}"] = p[key]
            pooled["y"].append(y)
            pooled["settled"].append(settled(by_name[name].labels, ends))
            saved.update({f"{name}/ends": ends, f"{name}/y": y,
                          f"{name}/device": p[convert.DEVICE_VARIANT]})
            print(f"  {name}: AUROC " + " ".join(f"{key} {rows[name][f'auroc_{key}']:.3f}"
                                                 for key in models))
    if predictions_out:
        np.savez_compressed(predictions_out, **saved)
    y = np.concatenate(pooled["y"])
    keep = np.concatenate(pooled["settled"])
    summary = {"folds": folds, "eval_hop_s": eval_hop, "device_variant": convert.DEVICE_VARIANT,
               "per_subject": rows}
    for key in models:
        p = np.concatenate(pooled[key])
        summary[key] = {"auroc_pooled": auroc(y, p),
                        "auroc_pooled_settled_20s": auroc(y[keep], p[keep]),
                        "auroc_mean_subject": float(np.mean([r[f"auroc_{key}"] for r in rows.values()])),
                        "balanced_accuracy": balanced_accuracy(y, p),
                        "ece": expected_calibration_error(y, p)}
    reference = np.concatenate(pooled["float32"])
    summary["parity_vs_float32"] = {
        v: parity(np.concatenate(pooled[v]), reference)
        | {"auroc_diff": summary[v]["auroc_pooled"] - summary["float32"]["auroc_pooled"]}
        for v in convert.VARIANTS}
    summary["float32_vs_keras"] = parity(reference, np.concatenate(pooled["float"]))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="E4 folder tree or dataset .npz")
    ap.add_argument("--subjects", nargs="*", help="subjects to use (default: all)")
    ap.add_argument("--out", type=Path, default=Path("models/physio"))
    ap.add_argument("--folds", type=int, default=5, help="subject-grouped folds; < 2 skips CV")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--conv-filters", type=int, default=0, help="causal Conv1D before the LSTM")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=2, help="models averaged in one graph")
    ap.add_argument("--noise", type=float, default=0.2, help="training input noise (SD)")
    ap.add_argument("--pool", type=int, default=1, help="steps averaged before the LSTM")
    ap.add_argument("--truncate", type=float, default=0.0,
                    help="share of training sequences with a history cut at a random start")
    ap.add_argument("--cv-predictions", type=Path, help="save out-of-fold predictions (.npz)")
    ap.add_argument("--steps", type=int, default=SEQUENCE_STEPS, help="sequence length (s)")
    ap.add_argument("--hop", type=int, default=3, help="training sequence hop (s)")
    ap.add_argument("--eval-hop", type=int, default=5, help="evaluation sequence hop (s)")
    ap.add_argument("--max-batches", type=int, help="cap batches per epoch (smoke runs)")
    ap.add_argument("--keras-out", type=Path, help="also save the inference tf_keras model (.h5)")
    ap.add_argument("--variants-out", type=Path,
                    help="also write every TFLite variant of the final model here "
                         "(for tools.physio.quantize)")
    ap.add_argument("--motion-clean", action="store_true",
                    help="with an E4 folder: beats from the motion-cleaned BVP (an .npz says itself)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.data.suffix == ".npz":
        subjects = load_steps(args.data)
        motion_clean = motion_cleaned(args.data)
        if args.subjects:
            subjects = [s for s in subjects if s.subject in set(args.subjects)]
    else:
        motion_clean = args.motion_clean
        subjects = build(args.data, args.subjects, progress=not args.no_progress,
                         motion_clean=motion_clean)
    if not subjects:
        raise SystemExit(f"no subjects in {args.data}")
    common = {"steps": args.steps, "units": args.units, "epochs": args.epochs, "hop": args.hop,
              "max_batches": args.max_batches, "progress": not args.no_progress,
              "seed": args.seed, "seeds": args.seeds, "conv_filters": args.conv_filters,
              "noise": args.noise, "pool": args.pool, "truncate": args.truncate}
    cv = None
    if args.folds >= 2:
        cv = cross_validate(subjects, args.folds, eval_hop=args.eval_hop,
                            predictions_out=args.cv_predictions, **common)
        print(json.dumps({k: v for k, v in cv.items() if k != "per_subject"}))
    print(f"final model on {len(subjects)} subjects")
    models, x_train = fit(subjects, **common)
    infer = inference_model(models, args.steps, args.units, args.conv_filters, args.pool)
    if args.keras_out:
        infer.save(args.keras_out)
    paths = convert.write_models(infer, x_train, args.out)
    if args.variants_out:
        paths += convert.write_models(infer, x_train, args.variants_out, convert.VARIANTS)
    import tensorflow as tf

    meta = {"features": list(INPUT_NAMES), "steps": args.steps, "step_s": 1.0,
            "label": "label of the sequence's last second (1 stress, 0 rest)",
            "ppg_motion_clean": motion_clean,
            "training_subjects": [s.subject for s in subjects], "units": args.units,
            "conv_filters": args.conv_filters, "seed": args.seed, "seeds": args.seeds, "noise": args.noise,
            "pool": args.pool, "truncate": args.truncate,
            "epochs": args.epochs, "hop_s": args.hop, "tensorflow": tf.__version__,
            "device_model": convert.VARIANT_NAMES[convert.DEVICE_VARIANT],
            "device_variant": convert.DEVICE_VARIANT, "cross_validation": cv}
    (args.out / "physio_lstm.json").write_text(json.dumps(meta, indent=1) + "\n")
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
