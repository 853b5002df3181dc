"""The physio model's TFLite variants side by side: size, speed and parity with float32.

    python -m tools.physio.quantize --models DIR [--data steps.npz] [--meta physio_lstm.json]

``--models`` holds the variants ``tools.physio.train --variants-out`` (or ``tools.physio.convert
--variants ...``) wrote: float32, float16, dynamic-range, full int8 (``convert.VARIANT_NAMES``).
Per variant:

- size of the file;
- one inference (batch 1, 60 x 30 inputs) through ``models.runtime`` (LiteRT) on one thread:
  median and 99th percentile of ``--repeats`` calls after a warm-up, on a real sequence when
  ``--data`` is given;
- with ``--meta`` (a training run's ``physio_lstm.json``), the out-of-subject parity its
  cross-validation measured: each variant of each fold's model against that fold's float32
  model, on every held-out sequence;
- with ``--data``, the same difference for these files on every sequence of the data set (in
  sample when the model was trained on it).

Prints a table, then one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from models.runtime import TFLiteModel
from tools.physio.convert import VARIANT_NAMES as FILE_NAMES  # TensorFlow only when converting
from tools.physio.sequences import inference_ms, predict

PARITY_TOLERANCE = 0.05


def sequences(data: Path, steps: int) -> np.ndarray:
    from tools.physio.dataset import load_steps
    from tools.physio.sequences import subject_sequences

    return np.concatenate([subject_sequences(s, steps, hop=5)[0] for s in load_steps(data)])


def measure(models_dir: Path, data: Path | None = None, meta: Path | None = None,
            repeats: int = 2000) -> dict:
    found = {v: models_dir / name for v, name in FILE_NAMES.items() if (models_dir / name).is_file()}
    if "float32" not in found:
        raise SystemExit(f"{models_dir}: no {FILE_NAMES['float32']} (the parity reference)")
    loaded = {v: TFLiteModel(p, num_threads=1) for v, p in found.items()}
    steps, width = loaded["float32"].input_shape()[1:]
    x = sequences(data, steps) if data else np.zeros((1, steps, width), np.float32)
    cv = {}
    if meta:
        cv = (json.loads(meta.read_text()).get("cross_validation") or {}).get("parity_vs_float32", {})
    reference = predict(loaded["float32"], x) if data else None
    rows = {}
    for v, model in loaded.items():
        med, p99 = inference_ms(model, x, repeats)
        row = {"file": found[v].name, "size_kb": round(found[v].stat().st_size / 1024, 1),
               "ms_median": round(med, 4), "ms_p99": round(p99, 4), "runtime": model.runtime,
               "input_dtype": np.dtype(model.inputs[0]["dtype"]).name}
        if v in cv:
            row["out_of_subject"] = cv[v]
        if data:
            d = np.abs(predict(model, x) - reference)
            row["dataset"] = {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
                              "n": int(d.size)}
        rows[v] = row
    return {"bench": "physio_quantization", "models": str(models_dir),
            "data": None if data is None else str(data), "variants": rows,
            "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1}}


def _fmt(v, spec=".3f") -> str:
    return "   -  " if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, type=Path, help="folder holding the variants")
    ap.add_argument("--data", type=Path, help="dataset .npz (tools.physio.dataset)")
    ap.add_argument("--meta", type=Path, help="physio_lstm.json of the training run")
    ap.add_argument("--repeats", type=int, default=2000)
    args = ap.parse_args(argv)
    out = measure(args.models, args.data, args.meta, args.repeats)
    print(f"{'variant':9} {'size KB':>8} {'ms median':>10} {'ms p99':>8} "
          f"{'max|d| oos':>11} {'mean|d| oos':>12} {'>0.05 oos':>10} {'AUROC diff':>11}"
          f" {'max|d| data':>12}")
    for v, r in out["variants"].items():
        oos = r.get("out_of_subject", {})
        print(f"{v:9} {r['size_kb']:8.1f} {r['ms_median']:10.3f} {r['ms_p99']:8.3f} "
              f"{_fmt(oos.get('max_abs_diff')):>11} {_fmt(oos.get('mean_abs_diff'), '.4f'):>12} "
              f"{_fmt(oos.get(f'share_over_{PARITY_TOLERANCE:g}'), '.4f'):>10} "
              f"{_fmt(oos.get('auroc_diff'), '+.4f'):>11} "
              f"{_fmt(r.get('dataset', {}).get('max_abs_diff')):>12}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
