"""Convert a trained physio model to TFLite: float, and full-integer int8.

    TF_USE_LEGACY_KERAS=1 python -m tools.physio.convert --keras physio_lstm.h5 \\
        --data physio_steps.npz --out models/physio

Full-integer int8 (int8 input, weights, activations and output) calibrated on a
representative sample of real training sequences, built-in ops only (no Flex ops, so
LiteRT and tflite-runtime on the device run it as is).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
from pathlib import Path

import numpy as np

FLOAT_NAME = "physio_lstm_float.tflite"
INT8_NAME = "physio_lstm_int8.tflite"
REPRESENTATIVE_SEQUENCES = 1500


def to_tflite(model, representative: np.ndarray, int8: bool, seed: int = 0) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(representative), min(REPRESENTATIVE_SEQUENCES, len(representative)),
                          replace=False)
        sample = representative[np.sort(pick)].astype(np.float32)

        def calibration():
            for seq in sample:
                yield [seq[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def write_models(model, representative: np.ndarray, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, int8 in ((FLOAT_NAME, False), (INT8_NAME, True)):
        path = out_dir / name
        path.write_bytes(to_tflite(model, representative, int8))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    import tf_keras as keras

    from tools.physio.dataset import load_steps
    from tools.physio.sequences import subject_sequences

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras", required=True, type=Path,
                    help="inference tf_keras model (.h5), as saved by train --keras-out")
    ap.add_argument("--data", required=True, type=Path, help="dataset .npz for calibration")
    ap.add_argument("--out", type=Path, default=Path("models/physio"))
    args = ap.parse_args(argv)
    model = keras.models.load_model(args.keras)
    if model.input_shape[0] != 1:
        raise SystemExit(f"{args.keras}: input batch {model.input_shape[0]}, need the batch-1 "
                         "inference model that train --keras-out writes")
    steps = int(model.input_shape[1])
    x = np.concatenate([subject_sequences(s, steps, hop=5)[0] for s in load_steps(args.data)])
    for p in write_models(model, x, args.out):
        print(f"wrote {p} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
