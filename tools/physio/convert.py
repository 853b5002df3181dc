"""Convert a trained physio model to TFLite: float32, float16, dynamic-range or full int8.

    TF_USE_LEGACY_KERAS=1 python -m tools.physio.convert --keras physio_lstm.h5 \\
        --data physio_steps.npz --out models/physio [--variants float32 float16 dynamic int8]

Full-integer int8 (int8 input, weights, activations and output) is calibrated on a
representative sample of real training sequences. Built-in ops only (no Flex ops, so
LiteRT and tflite-runtime on the device run every variant as is). By default the float32
reference and the device model (``DEVICE_VARIANT``) are written.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
from pathlib import Path

import numpy as np

FLOAT_NAME = "physio_lstm_float.tflite"
# Every form the converter offers, measured against each other (``tools.physio.quantize``):
#   float32 - the trained weights as they are; the parity reference
#   float16 - weights stored as float16, dequantized to float32 when loaded; float arithmetic
#   dynamic - dynamic-range: int8 weights, float activations (hybrid kernels)
#   int8    - full integer: int8 input, weights, activations and output
VARIANTS = ("float32", "float16", "dynamic", "int8")
VARIANT_NAMES = {"float32": FLOAT_NAME, "float16": "physio_lstm_float16.tflite",
                 "dynamic": "physio_lstm_dynamic.tflite", "int8": "physio_lstm_int8.tflite"}
# The device model, chosen by measurement (MODEL_CARD.md, "Choosing the device model").
DEVICE_VARIANT = "float32"
INT8_NAME = VARIANT_NAMES["int8"]
REPRESENTATIVE_SEQUENCES = 1500


def to_tflite(model, representative: np.ndarray | None, variant: str = "float32",
              seed: int = 0) -> bytes:
    """``model`` as TFLite in one of ``VARIANTS``; ``representative`` (training sequences)
    calibrates the full-integer one."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 needs representative sequences for calibration")
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


def write_models(model, representative: np.ndarray, out_dir: Path,
                 variants: tuple[str, ...] = ("float32", DEVICE_VARIANT)) -> list[Path]:
    """Write ``variants`` (by default the float reference and the device model) to
    ``out_dir`` under their ``VARIANT_NAMES``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for variant in dict.fromkeys(variants):
        path = out_dir / VARIANT_NAMES[variant]
        path.write_bytes(to_tflite(model, representative, variant))
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
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=["float32", DEVICE_VARIANT])
    args = ap.parse_args(argv)
    model = keras.models.load_model(args.keras)
    if model.input_shape[0] != 1:
        raise SystemExit(f"{args.keras}: input batch {model.input_shape[0]}, need the batch-1 "
                         "inference model that train --keras-out writes")
    steps = int(model.input_shape[1])
    x = np.concatenate([subject_sequences(s, steps, hop=5)[0] for s in load_steps(args.data)])
    for p in write_models(model, x, args.out, tuple(args.variants)):
        print(f"wrote {p} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
